//! The committed fuzz corpus (`tests/fuzz/corpus/<target>/`), replayed on the stable
//! toolchain: every file goes through the same body as its fuzz target (`tests/fuzz/targets/`),
//! so an input that once made a parser panic stays in CI without cargo-fuzz or nightly.

use std::path::Path;

#[path = "fuzz/targets/listing.rs"]
mod listing;
#[path = "fuzz/targets/names.rs"]
mod names;
#[path = "fuzz/targets/querybuilder.rs"]
mod querybuilder;
#[path = "fuzz/targets/sling.rs"]
mod sling;
#[path = "fuzz/targets/tags.rs"]
mod tags;

/// Feeds every file of the corpus of `target` to `run`; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{}: the {target} target panicked on it", path.display());
        count += 1;
    }
    assert!(count > 0, "{}: no corpus file to replay", dir.display());
    count
}

#[test]
fn listing_corpus() {
    replay("listing", listing::run);
}

#[test]
fn sling_corpus() {
    replay("sling", sling::run);
}

#[test]
fn querybuilder_corpus() {
    replay("querybuilder", querybuilder::run);
}

#[test]
fn tags_corpus() {
    replay("tags", tags::run);
}

#[test]
fn names_corpus() {
    replay("names", names::run);
}
