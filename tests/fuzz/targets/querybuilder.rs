//! Target `querybuilder`: the input as a QueryBuilder answer, read as the attributes of the
//! assets directly in a fixed folder (and in the DAM root) and as search hits.

use damfs::remote::wire;

/// The folder the attribute query is read for, as in the corpus.
const FOLDER: &str = "we-retail/activities";

/// Feeds `data` to the QueryBuilder parsers; they must return, whatever it holds.
pub fn run(data: &[u8]) {
    let _ = wire::query_attrs(data, FOLDER);
    let _ = wire::query_attrs(data, "");
    let _ = wire::search_hits(data);
}
