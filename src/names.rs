//! The one rule for names the kernel sees: a remote folder child, a rendition, a
//! `.metadata` document, a `.tags` directory or a `.tags`/`.search` link all pass it, or are
//! left out. Derived names (`name (2).ext`, `name.json`) are built here to fit it.

/// The longest name a Linux filesystem accepts (NAME_MAX), in bytes.
pub const NAME_MAX: usize = 255;

/// Why a name cannot appear in the mount, if it cannot.
pub fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it is . or ..")
    } else if name.contains('/') {
        Some("it contains /")
    } else if name.contains('\0') {
        Some("it contains NUL")
    } else if name.len() > NAME_MAX {
        Some("it is longer than 255 bytes")
    } else {
        None
    }
}

/// `folder/name`, or `name` in the root (the empty path). Paths here are the slash-joined
/// names that every layer uses: DAM paths, served paths, taxonomy paths.
pub fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() { name.to_string() } else { format!("{folder}/{name}") }
}

/// `(folder, name)` of a path: `("a/b", "c")` for `a/b/c`, `("", "c")` for `c`.
pub fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// `stem` cut at a character boundary so that `stem` followed by `suffix` fits NAME_MAX.
fn fit(stem: &str, suffix: &str) -> String {
    let room = NAME_MAX.saturating_sub(suffix.len());
    let mut end = stem.len().min(room);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &stem[..end])
}

/// The `n`th name for `base` when several things would be called `base`: `base` itself
/// for the first, then `stem (n).ext` (or `base (n)` without an extension), the stem
/// shortened so that the result fits NAME_MAX.
pub fn numbered(base: &str, n: usize) -> String {
    if n <= 1 {
        return base.to_string();
    }
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() + 8 < NAME_MAX => {
            fit(stem, &format!(" ({n}).{ext}"))
        }
        _ => fit(base, &format!(" ({n})")),
    }
}

/// `name` + `suffix` (`a.jpg` -> `a.jpg.json`), if that still fits NAME_MAX.
pub fn with_suffix(name: &str, suffix: &str) -> Option<String> {
    let joined = format!("{name}{suffix}");
    invalid_name(&joined).is_none().then_some(joined)
}

/// Names links after the assets' names; a name taken twice gets ` (2)`, ` (3)`… in the
/// order of the assets' paths, so names are stable. A numbered name never takes a name an
/// earlier link has, and every name fits NAME_MAX.
pub fn link_names(assets: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut next: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut links = Vec::new();
    for asset in assets {
        let base = asset.rsplit('/').next().unwrap_or(&asset).to_string();
        if invalid_name(&base).is_some() {
            continue;
        }
        let n = next.entry(base.clone()).or_insert(1);
        let mut name = numbered(&base, *n);
        while taken.contains(&name) {
            *n += 1;
            name = numbered(&base, *n);
        }
        *n += 1;
        taken.insert(name.clone());
        links.push((name, asset));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(invalid_name("Café au lait.jpg").is_none());
        assert!(invalid_name("..").is_some());
        assert!(invalid_name("a/b").is_some());
        assert!(invalid_name("a\0b").is_some());
        assert!(invalid_name(&"x".repeat(256)).is_some());
        assert!(invalid_name(&"é".repeat(127)).is_none());
    }

    #[test]
    fn paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", "b"), "a/b");
        assert_eq!(split("a/b/c"), ("a/b", "c"));
        assert_eq!(split("c"), ("", "c"));
    }

    #[test]
    fn derived_names_fit() {
        assert_eq!(numbered("hiking.jpg", 1), "hiking.jpg");
        assert_eq!(numbered("hiking.jpg", 2), "hiking (2).jpg");
        assert_eq!(numbered("README", 3), "README (3)");
        assert_eq!(numbered(".hidden", 2), ".hidden (2)");
        for base in ["x".repeat(255), format!("{}.jpeg", "é".repeat(125)), "y".repeat(250) + ".a"] {
            for n in [2, 10, 12345] {
                let name = numbered(&base, n);
                assert!(invalid_name(&name).is_none(), "{name:?} from {base:?}");
                assert!(name.contains(&format!("({n})")), "{name}");
            }
        }
        assert_eq!(with_suffix("a.jpg", ".json").as_deref(), Some("a.jpg.json"));
        assert_eq!(with_suffix(&"a".repeat(251), ".json"), None);
    }
}
