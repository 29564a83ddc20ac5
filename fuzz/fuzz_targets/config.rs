//! The config loader on any text: `tocsin check` and every reload run this. It must answer
//! Ok or file:line:column errors, never panic, hang or blow up.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `rule_files` globs the filesystem (a pattern like "/**" walks all of it): that is I/O,
    // not parsing, and the `rules` target covers rule files. The other files a config names
    // are read too, but only regular ones and at most 16 MiB each: bounded.
    if text.contains("rule_files") {
        return;
    }
    let path = std::path::Path::new("/nonexistent/tocsin-fuzz/config.yaml");
    if let Err(errors) = tocsin::config::load_str(path, text) {
        for e in &errors.0 {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(!e.message.is_empty());
        }
    }
});
