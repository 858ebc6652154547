//! Target `names`: the input (UTF-8, invalid sequences replaced) as a DAM path to encode,
//! as a Siren href to take a name from, as a name to validate, and, one asset path a line,
//! as the assets a `.tags` or `.search` directory names links after.

use damfs::names::{invalid_name, link_names};
use damfs::remote::{encode_segment, wire};
use damfs::vfs::reserved::link_target;

/// Feeds `data` to the functions that build or check names; they must return, whatever it
/// holds. An encoded DAM path must decode back to the path.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(encoded) = wire::encode_dam_path(&text) {
        let decoded: Vec<String> = encoded
            .split('/')
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        assert_eq!(decoded.join("/"), text, "encoded as {encoded:?}");
    }
    let _ = encode_segment(&text);
    let _ = wire::name_from_href(&text);
    let _ = invalid_name(&text);
    let depth = data.len() % 8;
    for (name, asset) in link_names(text.lines().map(str::to_string)) {
        let _ = invalid_name(&name);
        let _ = link_target(depth, &asset);
    }
}
