//! Which assets the mount shows (`--formats`), and the MIME type a name suggests when the
//! remote gave none.

/// Which assets the mount shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formats {
    /// Images only (`image/*`), as the Connected Assets feature fetches.
    Images,
    /// Every asset.
    All,
    /// Assets whose MIME type is in the list (`image/*` style prefixes allowed).
    List(Vec<String>),
}

impl Formats {
    /// Parses `images`, `all`, or a list of MIME types separated by commas or colons (colons
    /// survive mount(8)'s comma-separated `-o`).
    pub fn parse(text: &str) -> Result<Formats, String> {
        match text.trim() {
            "images" | "image" | "image/*" => Ok(Formats::Images),
            "all" | "*" => Ok(Formats::All),
            list => {
                let items: Vec<String> =
                    list.split([',', ':']).map(|s| s.trim().to_ascii_lowercase()).collect();
                if items.iter().any(|i| i.is_empty() || !i.contains('/')) {
                    return Err(format!(
                        "'{text}' is not 'images', 'all' or a list of MIME types like image/*,application/pdf"
                    ));
                }
                Ok(Formats::List(items))
            }
        }
    }

    /// Whether an asset of this format (or, without one, this name) is shown.
    pub fn allows(&self, format: Option<&str>, name: &str) -> bool {
        let guessed;
        let format = match format {
            Some(f) => f.to_ascii_lowercase(),
            None => {
                guessed = guess_format(name);
                guessed.to_string()
            }
        };
        match self {
            Formats::All => true,
            Formats::Images => format.starts_with("image/"),
            Formats::List(items) => items.iter().any(|i| match i.strip_suffix('*') {
                Some(prefix) => format.starts_with(prefix),
                None => format == *i,
            }),
        }
    }
}

/// A MIME type from a file name's extension, for assets whose listing gave none.
pub fn guess_format(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "tif" | "tiff" => "image/tiff",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "avif" => "image/avif",
        "heic" => "image/heic",
        "psd" => "image/vnd.adobe.photoshop",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "json" => "application/json",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(Formats::Images.allows(Some("image/jpeg"), "x.pdf"));
        assert!(!Formats::Images.allows(Some("application/pdf"), "x.jpg"));
        assert!(Formats::Images.allows(None, "x.JPG"));
        assert!(!Formats::Images.allows(None, "x.txt"));
        assert!(Formats::All.allows(None, "x.txt"));
        let list = Formats::parse("image/png, application/*").unwrap();
        assert_eq!(Formats::parse("image/png:application/*").unwrap(), list);
        assert!(list.allows(Some("application/pdf"), "x"));
        assert!(!list.allows(Some("image/jpeg"), "x"));
        assert!(Formats::parse("jpeg").is_err());
    }
}
