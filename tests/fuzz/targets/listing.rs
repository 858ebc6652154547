//! Target `listing`: the input as the Siren JSON of the Assets HTTP API, read both as one
//! page of a folder listing and as the rendition entities of an asset.

use damfs::remote::wire;

/// Feeds `data` to the Siren parsers; they must return, whatever it holds.
pub fn run(data: &[u8]) {
    if let Ok((children, _total)) = wire::listing_page(data) {
        for child in &children {
            std::hint::black_box(child.name.len());
        }
    }
    let _ = wire::rendition_entities(data);
}
