//! cargo-fuzz target `alerts`: its body is `tests/fuzz_support/targets.rs::alerts`, the same
//! function `cargo test --test fuzz` runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_support/targets.rs"]
#[allow(dead_code)]
mod targets;

fuzz_target!(|data: &[u8]| targets::alerts(data));
