//! Fuzz target `tags`: the body is in `targets/tags.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.

#![no_main]

#[path = "../targets/tags.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
