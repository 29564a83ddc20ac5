//! Alertmanager-style matchers (`name="value"`, `=~`, `!=`, `!~`): parse, then match the
//! input itself and a few values against what parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::config::Matcher;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(matcher) = text.parse::<Matcher>() {
        for value in ["", "storage", "china-east", text, &text.repeat(4)] {
            let _ = matcher.matches_value(value);
        }
        // What parsed prints back as a matcher that parses to the same.
        let again: Matcher = matcher
            .to_string()
            .parse()
            .expect("a printed matcher parses");
        assert_eq!(again, matcher);
    }
});
