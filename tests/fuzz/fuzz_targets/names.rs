//! Fuzz target `names`: the body is in `targets/names.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.

#![no_main]

#[path = "../targets/names.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
