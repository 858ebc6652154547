//! Target `sling`: the input as plain Sling JSON, read as a `renditions.2.json`, as a
//! metadata node and as a `jcr:content.1.json`.

use damfs::remote::wire;

/// Feeds `data` to the Sling parsers; they must return, whatever it holds.
pub fn run(data: &[u8]) {
    let _ = wire::renditions(data);
    let _ = wire::metadata(data);
    let _ = wire::content_attrs(data);
}
