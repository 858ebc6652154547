//! Fuzz target `listing`: the body is in `targets/listing.rs`, shared with the corpus replay in
//! `tests/fuzz_corpus.rs`.

#![no_main]

#[path = "../targets/listing.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::run(data));
