//! One rule file's text: YAML, rule fields, matchers, CEL `when`, durations, templates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("/nonexistent/tocsin-fuzz/rules/fuzz.yaml");
    match tocsin::config::load_rules_str(path, text) {
        Ok(rules) => {
            for loaded in &rules {
                assert!(!loaded.rule.name.is_empty());
            }
        }
        Err(errors) => {
            for e in &errors.0 {
                assert!(e.line >= 1 && e.column >= 1, "{e}");
            }
        }
    }
});
