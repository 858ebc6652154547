//! Target `tags`: the input as a tag ID (UTF-8, invalid sequences replaced) and as the JSON
//! of a tag node.

use damfs::remote::wire;

/// Feeds `data` to the tag parsers; they must return, whatever it holds.
pub fn run(data: &[u8]) {
    let _ = wire::tag_id(&String::from_utf8_lossy(data));
    let _ = wire::tag_node(data);
}
