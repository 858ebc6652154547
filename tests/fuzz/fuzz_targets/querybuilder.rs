//! Fuzz target `querybuilder`: the body is in `targets/querybuilder.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.

#![no_main]

#[path = "../targets/querybuilder.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
