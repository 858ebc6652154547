//! Which renditions the first open of an asset materializes (`--renditions`): a list of
//! glob patterns over rendition names, `original` always among what it matches, and the
//! one rule for renditions that are never fetched eagerly (text and metadata). The others
//! are fetched when they are opened themselves.

/// The extended attribute of a mount's root that names its selection (as [`RenditionSelection::parse`]
/// reads it), so that `damfs prefetch` fetches what a first open would.
pub const XATTR: &str = "user.damfs.renditions";

/// The renditions materialized at the first open of an asset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenditionSelection {
    /// Glob patterns (`*` any run of characters, `?` one character); `None` selects every
    /// rendition.
    patterns: Option<Vec<String>>,
}

impl RenditionSelection {
    /// Every rendition (the default).
    pub fn all() -> RenditionSelection {
        RenditionSelection { patterns: None }
    }

    /// Parses `all` or a list of glob patterns separated by commas or colons (colons survive
    /// mount(8)'s comma-separated `-o`). The list must select `original`: the asset file
    /// itself is the original, so it is always materialized.
    pub fn parse(text: &str) -> Result<RenditionSelection, String> {
        let text = text.trim();
        if text == "all" || text == "*" {
            return Ok(RenditionSelection::all());
        }
        let patterns: Vec<String> = text.split([',', ':']).map(|p| p.trim().to_string()).collect();
        if let Some(bad) = patterns.iter().find(|p| p.is_empty() || p.contains('/')) {
            return Err(format!(
                "'{text}': {bad:?} is not a rendition name or pattern (give names or globs like \
                 original,cq5dam.web.*, separated by commas, or by colons inside -o)"
            ));
        }
        let selection = RenditionSelection { patterns: Some(patterns) };
        if !selection.selects("original") {
            return Err(format!(
                "'{text}' leaves out original: the asset file is its original rendition, which \
                 every first open materializes (add original to the list)"
            ));
        }
        Ok(selection)
    }

    /// Whether the list names `name` (before the never-eager rule).
    fn selects(&self, name: &str) -> bool {
        match &self.patterns {
            None => true,
            Some(patterns) => patterns.iter().any(|p| glob(p.as_bytes(), name.as_bytes())),
        }
    }

    /// Whether the first open of an asset fetches its rendition `name`: selected, and not a
    /// text or metadata rendition.
    pub fn eager(&self, name: &str) -> bool {
        name == "original" || (self.selects(name) && !never_eager(name))
    }
}

/// `all`, or the patterns separated by commas: what [`RenditionSelection::parse`] reads back.
impl std::fmt::Display for RenditionSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.patterns {
            None => f.write_str("all"),
            Some(patterns) => f.write_str(&patterns.join(",")),
        }
    }
}

/// Renditions that are never fetched at first open, whatever the list says: they are text
/// or metadata about the asset, not pictures of it (`cqdam.text.txt`, XMP, the
/// `cqdam.metadata.xml` and `cqdam.machine.metadata.*.json` of Cloud Service, any JSON or
/// XML). They are still listed under `.renditions/` and fetched when opened.
pub fn never_eager(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "cqdam.text.txt"
        || [".xmp", ".json", ".xml"].iter().any(|ext| lower.ends_with(ext))
        || lower.split('.').any(|part| part == "metadata")
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` any one byte). Iterative,
/// with one backtrack point: linear in practice, never exponential.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_metadata_renditions_are_never_eager() {
        for name in [
            "cqdam.text.txt",
            "cqdam.metadata.xml",
            "cqdam.machine.metadata.json",
            "cqdam.machine.metadata.v2.json",
            "metadata",
            "photo.XMP",
            "cqdam.xmp",
            "anything.json",
        ] {
            assert!(never_eager(name), "{name}");
            assert!(!RenditionSelection::all().eager(name), "{name}");
        }
        for name in ["original", "cq5dam.web.1280.1280.jpeg", "cq5dam.thumbnail.48.48.png", "metadatum.png"] {
            assert!(!never_eager(name), "{name}");
            assert!(RenditionSelection::all().eager(name), "{name}");
        }
    }

    #[test]
    fn a_list_selects_by_glob_and_must_keep_the_original() {
        let s = RenditionSelection::parse("original, cq5dam.web.*:cq5dam.thumbnail.319.*").unwrap();
        assert!(s.eager("original"));
        assert!(s.eager("cq5dam.web.1280.1280.jpeg"));
        assert!(s.eager("cq5dam.thumbnail.319.319.png"));
        assert!(!s.eager("cq5dam.thumbnail.48.48.png"));
        assert!(!s.eager("cq5dam.zoom.2048.2048.jpeg"));
        // Selected by name, still never eager.
        let text = RenditionSelection::parse("original,cqdam.text.txt,*.json").unwrap();
        assert!(!text.eager("cqdam.text.txt") && !text.eager("cqdam.machine.metadata.json"));
        assert_eq!(RenditionSelection::parse("all").unwrap(), RenditionSelection::all());
        assert!(RenditionSelection::parse("*").unwrap().eager("cq5dam.thumbnail.48.48.png"));
        assert!(RenditionSelection::parse("orig*,x").unwrap().eager("original"));
        assert!(RenditionSelection::parse("cq5dam.web.*").unwrap_err().contains("leaves out original"));
        assert!(RenditionSelection::parse("original,,x").is_err());
        assert!(RenditionSelection::parse("original,a/b").is_err());
        for text in ["all", "original,cq5dam.web.*"] {
            assert_eq!(RenditionSelection::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn globs() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(!glob(b"a*b", b"aXXc"));
        assert!(glob(b"*.png", b"cq5dam.thumbnail.48.48.png"));
        assert!(!glob(b"cq5dam.web.*", b"cq5dam.web"));
        assert!(glob(&[b'*'; 40], &[b'a'; 200]));
    }
}
