//! Fuzz target `sling`: the body is in `targets/sling.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.

#![no_main]

#[path = "../targets/sling.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
