//! DAM paths to URLs and back: splitting a `REMOTE_URL` into base and root, percent-encoding
//! each path segment when a request URL is built, and decoding the hrefs and paths the remote
//! sends back. No I/O here; the client in `aem` is the only caller.
//!
//! Every segment a user or the remote named (folder, asset, rendition and tag names) is
//! encoded as UTF-8 with everything but the RFC 3986 unreserved characters escaped (a space
//! becomes `%20`, `+` becomes `%2B`); the fixed segments of the protocol (`jcr:content`,
//! `cq:tags`) are written as they are, colon included.

use anyhow::{Context, bail};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::Url;

use super::{RemoteError, RemoteErrorKind, RemoteResult};

/// Characters escaped in a path segment: all but ALPHA, DIGIT and `-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The DAM root as an absolute repository path.
pub(crate) const DAM_ROOT: &str = "/content/dam";

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay as they are).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a DAM path (`a/b c` → `a/b%20c`). Refuses empty, `.` and `..` segments,
/// which no remote item can have and which URL normalisation would rewrite.
pub(crate) fn encode_dam_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::with_capacity(path.len() + 8);
    for (i, segment) in path.split('/').enumerate() {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("'{path}' is not a valid DAM path"));
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&encode_segment(segment));
    }
    Ok(out)
}

/// Percent-decodes `text` as UTF-8 (invalid sequences become U+FFFD).
pub(crate) fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The name an href points at: its last path segment without `.json`, percent-decoded
/// (`…/activities/caf%C3%A9%20au%20lait.jpg.json` → `café au lait.jpg`).
pub(crate) fn name_from_href(href: &str) -> Option<String> {
    let path = href.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    let last = last.strip_suffix(".json").unwrap_or(last);
    if last.is_empty() {
        return None;
    }
    Some(decode(last))
}

/// The DAM path of an absolute repository path (`/content/dam/a/b` → `a/b`, `/content/dam`
/// → the empty root); `None` outside the DAM.
pub(crate) fn dam_path_from_jcr(path: &str) -> Option<String> {
    let rest = path.strip_prefix(DAM_ROOT)?;
    if rest.is_empty() || rest == "/" {
        return Some(String::new());
    }
    let rest = rest.strip_prefix('/')?;
    Some(rest.trim_end_matches('/').to_string())
}

/// The URL of an asset's original on the remote at `remote_url` (its base, no
/// credentials): percent-encoded per segment.
pub fn asset_url(remote_url: &str, asset: &str) -> String {
    let encoded: Vec<String> = asset.split('/').map(encode_segment).collect();
    format!("{}/content/dam/{}", remote_url.trim_end_matches('/'), encoded.join("/"))
}

/// The human-readable path of a request URL for logs and errors: the decoded path, no query,
/// no credentials.
pub(crate) fn label(url: &Url) -> String {
    decode(url.path())
}

/// Splits a REMOTE_URL such as `https://dam.example.com`,
/// `https://dam.example.com/content/dam/we-retail` or
/// `http://127.0.0.1:4502/content/dam/we%20retail/` into (base URL, DAM root path
/// `we retail`).
///
/// The base keeps scheme, host, port and any context path before `/content/dam`, and ends with
/// `/`. Rejects schemes other than http(s), a user or password in the URL, a query or
/// fragment, and a path not under `/content/dam`.
pub fn parse_remote_url(text: &str) -> anyhow::Result<(Url, String)> {
    // The text may carry a password: it is echoed only after that has been ruled out.
    let url = Url::parse(text.trim()).context("REMOTE_URL is not a valid URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "REMOTE_URL must not contain a user or password: use --user with --password-file, \
             or --token-file"
        );
    }
    if url.scheme() != "http" && url.scheme() != "https" {
        bail!("{text}: the scheme must be http or https, not '{}'", url.scheme());
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("{text}: no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("{text}: a REMOTE_URL has no query (?…) or fragment (#…)");
    }
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let (context, root) = if segments.is_empty() {
        (&segments[..], &segments[..])
    } else {
        let at = segments
            .windows(2)
            .position(|w| w[0] == "content" && w[1] == "dam")
            .with_context(|| format!("{text}: the path must be /content/dam or a folder under it"))?;
        (&segments[..at], &segments[at + 2..])
    };
    let mut names = Vec::with_capacity(root.len());
    for segment in root {
        let name = percent_decode_str(segment)
            .decode_utf8()
            .with_context(|| format!("{text}: '{segment}' is not UTF-8 once decoded"))?;
        if name.contains('/') || name == "." || name == ".." {
            bail!("{text}: '{name}' cannot be a folder name");
        }
        names.push(name.into_owned());
    }
    let mut base = url.clone();
    let mut base_path = String::from("/");
    for segment in context {
        base_path.push_str(segment);
        base_path.push('/');
    }
    base.set_path(&base_path);
    Ok((base, names.join("/")))
}

/// Builds every URL the client requests, relative to a base URL with an optional context
/// path. Built once per client.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    base: Url,
    /// The base's path without its trailing slash (`""` or `/ctx`), already encoded.
    prefix: String,
}

/// Where tags live: `/content/cq:tags` since AEM 6.4, `/etc/tags` before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagRoot {
    /// `/content/cq:tags`.
    Content,
    /// `/etc/tags`.
    Etc,
}

impl Endpoints {
    /// Endpoints under `base` (scheme, host, port and optional context path).
    pub(crate) fn new(base: &Url) -> Endpoints {
        let mut base = base.clone();
        base.set_query(None);
        base.set_fragment(None);
        let prefix = base.path().trim_end_matches('/').to_string();
        Endpoints { base, prefix }
    }

    fn url(&self, encoded_path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{}", self.prefix, encoded_path));
        url
    }

    /// `/api/assets/<folder>.json?offset=O&limit=L` (`/api/assets.json` for the root).
    pub(crate) fn folder_page(&self, folder: &str, offset: u64, limit: u64) -> RemoteResult<Url> {
        let encoded = encode(folder)?;
        let path = if encoded.is_empty() {
            "/api/assets.json".to_string()
        } else {
            format!("/api/assets/{encoded}.json")
        };
        let mut url = self.url(&path);
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string())
            .append_pair("limit", &limit.to_string());
        Ok(url)
    }

    /// `/api/assets/<asset>.json`: the Assets API view of one asset.
    pub(crate) fn api_asset(&self, asset: &str) -> RemoteResult<Url> {
        Ok(self.url(&format!("/api/assets/{}.json", encode_asset(asset)?)))
    }

    /// `/api/assets/<asset>/renditions.json`.
    pub(crate) fn api_renditions(&self, asset: &str) -> RemoteResult<Url> {
        Ok(self.url(&format!("/api/assets/{}/renditions.json", encode_asset(asset)?)))
    }

    /// `/content/dam/<asset><suffix>`, the suffix written as it is
    /// (e.g. `/jcr:content/metadata.json`).
    pub(crate) fn asset_node(&self, asset: &str, suffix: &str) -> RemoteResult<Url> {
        Ok(self.url(&format!("{DAM_ROOT}/{}{suffix}", encode_asset(asset)?)))
    }

    /// `/content/dam/<asset>/jcr:content/renditions/<name>`.
    pub(crate) fn rendition(&self, asset: &str, name: &str) -> RemoteResult<Url> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(invalid(&format!("{asset}/{name}"), "not a valid rendition name"));
        }
        let suffix = format!("/jcr:content/renditions/{}", encode_segment(name));
        self.asset_node(asset, &suffix)
    }

    /// `/content/cq:tags/<namespace>/<local>.json` or `/etc/tags/…`.
    pub(crate) fn tag(&self, root: TagRoot, namespace: &str, local: &[String]) -> RemoteResult<Url> {
        let mut path = String::from(match root {
            TagRoot::Content => "/content/cq:tags",
            TagRoot::Etc => "/etc/tags",
        });
        for segment in std::iter::once(namespace).chain(local.iter().map(String::as_str)) {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(invalid(namespace, "not a valid tag ID"));
            }
            path.push('/');
            path.push_str(&encode_segment(segment));
        }
        path.push_str(".json");
        Ok(self.url(&path))
    }

    /// `/bin/querybuilder.json?<params>` (form-encoded: spaces as `+`).
    pub(crate) fn querybuilder(&self, params: &[(&str, String)]) -> Url {
        let mut url = self.url("/bin/querybuilder.json");
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in params {
                query.append_pair(key, value);
            }
        }
        url
    }
}

/// The absolute repository path of a DAM path (`a/b` → `/content/dam/a/b`).
pub(crate) fn jcr_path(dam_path: &str) -> String {
    if dam_path.is_empty() { DAM_ROOT.to_string() } else { format!("{DAM_ROOT}/{dam_path}") }
}

fn invalid(path: &str, cause: &str) -> RemoteError {
    RemoteError::new(RemoteErrorKind::NotFound, path, cause)
}

fn encode(path: &str) -> RemoteResult<String> {
    encode_dam_path(path).map_err(|cause| invalid(path, &cause))
}

fn encode_asset(asset: &str) -> RemoteResult<String> {
    if asset.is_empty() {
        return Err(invalid("/content/dam", "the DAM root is a folder, not an asset"));
    }
    encode(asset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(base: &str) -> Endpoints {
        Endpoints::new(&Url::parse(base).unwrap())
    }

    #[test]
    fn segments_are_encoded_and_round_trip() {
        let cases = [
            ("hiking.jpg", "hiking.jpg"),
            ("we retail", "we%20retail"),
            ("a+b", "a%2Bb"),
            ("100% pure", "100%25%20pure"),
            ("Café au lait.jpg", "Caf%C3%A9%20au%20lait.jpg"),
            ("日本語.png", "%E6%97%A5%E6%9C%AC%E8%AA%9E.png"),
            ("it's (1), a=b; c@d $e!", "it%27s%20%281%29%2C%20a%3Db%3B%20c%40d%20%24e%21"),
            ("tilde~under_score-dash.", "tilde~under_score-dash."),
            ("emoji 🙂", "emoji%20%F0%9F%99%82"),
        ];
        for (name, encoded) in cases {
            assert_eq!(encode_segment(name), encoded, "{name}");
            assert_eq!(decode(encoded), name);
            // As the remote would send it back in an href.
            let href = format!("https://dam.example.com/api/assets/f/{encoded}.json");
            assert_eq!(name_from_href(&href).as_deref(), Some(name), "{href}");
        }
    }

    #[test]
    fn dam_paths_encode_per_segment() {
        assert_eq!(encode_dam_path("").unwrap(), "");
        assert_eq!(encode_dam_path("we retail/en/a+b.jpg").unwrap(), "we%20retail/en/a%2Bb.jpg");
        for bad in ["/a", "a/", "a//b", "a/./b", "..", "a/.."] {
            assert!(encode_dam_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_built_with_encoded_segments() {
        let e = endpoints("http://127.0.0.1:4502/");
        assert_eq!(
            e.folder_page("", 0, 1000).unwrap().as_str(),
            "http://127.0.0.1:4502/api/assets.json?offset=0&limit=1000"
        );
        assert_eq!(
            e.folder_page("we retail/Café", 7, 7).unwrap().as_str(),
            "http://127.0.0.1:4502/api/assets/we%20retail/Caf%C3%A9.json?offset=7&limit=7"
        );
        assert_eq!(
            e.asset_node("a+b/x y.jpg", "/jcr:content/metadata.json").unwrap().as_str(),
            "http://127.0.0.1:4502/content/dam/a%2Bb/x%20y.jpg/jcr:content/metadata.json"
        );
        assert_eq!(
            e.rendition("a/x.jpg", "cq5dam.web.1280.1280.jpeg").unwrap().path(),
            "/content/dam/a/x.jpg/jcr:content/renditions/cq5dam.web.1280.1280.jpeg"
        );
        assert_eq!(e.api_renditions("a/x.jpg").unwrap().path(), "/api/assets/a/x.jpg/renditions.json");
        let local = vec!["activity".to_string(), "winter sports".to_string()];
        assert_eq!(
            e.tag(TagRoot::Content, "we-retail", &local).unwrap().path(),
            "/content/cq:tags/we-retail/activity/winter%20sports.json"
        );
        assert_eq!(e.tag(TagRoot::Etc, "ns", &[]).unwrap().path(), "/etc/tags/ns.json");
        assert!(e.asset_node("", "").is_err());
        assert!(e.rendition("a.jpg", "x/y").is_err());
        let qb = e.querybuilder(&[("path", "/content/dam/we retail".into()), ("p.properties", "a b".into())]);
        assert_eq!(qb.query(), Some("path=%2Fcontent%2Fdam%2Fwe+retail&p.properties=a+b"));
    }

    #[test]
    fn context_path_is_kept() {
        let e = endpoints("https://dam.example.com/author/");
        assert_eq!(e.folder_page("", 0, 1).unwrap().path(), "/author/api/assets.json");
        assert_eq!(e.querybuilder(&[]).path(), "/author/bin/querybuilder.json");
    }

    #[test]
    fn hrefs_and_jcr_paths() {
        assert_eq!(name_from_href("/api/assets/a/b%2Bc.json?x=1").as_deref(), Some("b+c"));
        assert_eq!(name_from_href("https://h/api/assets/a/folder/").as_deref(), Some("folder"));
        assert_eq!(name_from_href(""), None);
        assert_eq!(dam_path_from_jcr("/content/dam/we retail/a.jpg").as_deref(), Some("we retail/a.jpg"));
        assert_eq!(dam_path_from_jcr("/content/dam").as_deref(), Some(""));
        assert_eq!(dam_path_from_jcr("/content/dam/").as_deref(), Some(""));
        assert_eq!(dam_path_from_jcr("/content/damage/a"), None);
        assert_eq!(dam_path_from_jcr("/etc/a"), None);
        assert_eq!(jcr_path(""), "/content/dam");
        assert_eq!(jcr_path("a/b"), "/content/dam/a/b");
    }

    #[test]
    fn remote_urls() {
        let good = [
            ("https://dam.example.com", "https://dam.example.com/", ""),
            ("https://dam.example.com/", "https://dam.example.com/", ""),
            ("https://dam.example.com/content/dam", "https://dam.example.com/", ""),
            ("https://dam.example.com/content/dam/we-retail", "https://dam.example.com/", "we-retail"),
            ("http://127.0.0.1:4502/content/dam/we%20retail/", "http://127.0.0.1:4502/", "we retail"),
            ("http://h/content/dam/a/Caf%C3%A9/", "http://h/", "a/Café"),
            ("https://h/author/content/dam/x", "https://h/author/", "x"),
            (" https://h:8443/content/dam/a+b ", "https://h:8443/", "a+b"),
        ];
        for (text, base, root) in good {
            let (b, r) = parse_remote_url(text).unwrap_or_else(|e| panic!("{text}: {e:#}"));
            assert_eq!((b.as_str(), r.as_str()), (base, root), "{text}");
        }
        let bad = [
            ("ftp://h/content/dam", "scheme"),
            ("file:///content/dam", "scheme"),
            ("https://user:secret@h/content/dam", "user or password"),
            ("https://user@h/", "user or password"),
            ("https://h/content/dam?x=1", "query"),
            ("https://h/content/dam#top", "fragment"),
            ("https://h/etc/tags", "/content/dam"),
            ("https://h/content/damage", "/content/dam"),
            ("https://h/content/dam/a%2Fb", "folder name"),
            ("not a url", "not a valid URL"),
        ];
        for (text, needle) in bad {
            let err = format!("{:#}", parse_remote_url(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
