//! Where the `Authorization` header comes from, and how it stays valid on a mount that
//! lives for months:
//! - fixed credentials (a technical user's password, a token given once) never change;
//! - a token file is re-read when it changes (another inode or mtime) and after a 401, so a
//!   token refresher or a Kubernetes secret can rotate it under a live mount;
//! - service credentials get a token from IMS at the first request, renew it in the
//!   background at 80 % of its lifetime, and after a 401 — one renewal at a time.
//!
//! Tokens live in memory only: never logged, never on a command line, never in the cache.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use reqwest::header::HeaderValue;

use super::config::Credentials;
use super::ims::ServiceCredentials;
use super::{RemoteError, RemoteErrorKind, RemoteResult};

/// Part of a token's lifetime after which it is renewed.
const RENEW_AT: f64 = 0.8;

/// Wait before trying again when a background renewal failed (the old token still serves).
const RENEW_RETRY: Duration = Duration::from_secs(30);

/// What `damfs status` says of authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStatus {
    /// `none`, `basic`, `token`, `token file`, `service credentials (JWT)`, …
    pub kind: &'static str,
    /// When the token in use expires, when known.
    pub expires: Option<SystemTime>,
}

/// The source of the header.
enum Source {
    /// Never changes.
    Fixed(&'static str),
    /// Re-read from this file.
    TokenFile(PathBuf),
    /// Obtained from IMS.
    Ims(Box<ServiceCredentials>),
}

/// Which version of the token file the header came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    len: u64,
}

#[derive(Default)]
struct Current {
    header: Option<HeaderValue>,
    stamp: Option<FileStamp>,
    expires: Option<SystemTime>,
    /// IMS: when the token is renewed (None: get one now).
    renew_at: Option<SystemTime>,
}

/// The `Authorization` header of a mount's requests.
pub(crate) struct Auth {
    source: Source,
    current: Mutex<Current>,
    /// Held by the one task that renews an IMS token.
    renewing: Arc<tokio::sync::Mutex<()>>,
    /// For IMS requests.
    client: reqwest::Client,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth({})", self.status().kind)
    }
}

impl Auth {
    /// The header source for `credentials`; a token file is read now (an unreadable one is
    /// an error naming it). An IMS token is obtained at the first request.
    pub(crate) fn new(credentials: &Credentials, client: reqwest::Client) -> anyhow::Result<Arc<Auth>> {
        let (source, current) = match credentials {
            Credentials::None => (Source::Fixed("none"), Current::default()),
            Credentials::Basic { user, password } => {
                use base64::engine::general_purpose::STANDARD;
                let text = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
                (Source::Fixed("basic"), Current { header: Some(header(&text)?), ..Current::default() })
            }
            Credentials::Bearer(token) => {
                let current = Current {
                    header: Some(header(&format!("Bearer {}", token.trim()))?),
                    expires: token_expiry(token),
                    ..Current::default()
                };
                (Source::Fixed("token"), current)
            }
            Credentials::TokenFile(path) => {
                let (token, stamp) = read_token_file(path)?;
                let current = Current {
                    header: Some(header(&format!("Bearer {token}"))?),
                    stamp: Some(stamp),
                    expires: token_expiry(&token),
                    renew_at: None,
                };
                (Source::TokenFile(path.clone()), current)
            }
            Credentials::Service(creds) => (Source::Ims(Box::new((**creds).clone())), Current::default()),
        };
        Ok(Arc::new(Auth { source, current: Mutex::new(current), renewing: Arc::default(), client }))
    }

    /// The kind of authentication and when the token in use expires.
    pub(crate) fn status(&self) -> AuthStatus {
        let kind = match &self.source {
            Source::Fixed(kind) => kind,
            Source::TokenFile(_) => "token file",
            Source::Ims(creds) => creds.kind(),
        };
        AuthStatus { kind, expires: self.current.lock().expires }
    }

    /// The header for the next request to the DAM. A token file that changed is read
    /// again; an IMS token past 80 % of its life is renewed in the background while it
    /// still serves, and obtained first when there is none or it has expired.
    pub(crate) async fn header(self: &Arc<Self>) -> RemoteResult<Option<HeaderValue>> {
        match &self.source {
            Source::Fixed(_) => Ok(self.current.lock().header.clone()),
            Source::TokenFile(path) => {
                let changed = stamp(path).ok() != self.current.lock().stamp;
                if changed {
                    self.reread(path);
                }
                Ok(self.current.lock().header.clone())
            }
            Source::Ims(_) => {
                let now = SystemTime::now();
                let (header, due, valid) = {
                    let c = self.current.lock();
                    let due = c.renew_at.is_none_or(|t| now >= t);
                    (c.header.clone(), due, c.expires.is_some_and(|e| now < e))
                };
                match (due, valid, header) {
                    (false, _, header) => Ok(header),
                    (true, true, Some(header)) => {
                        self.renew_in_background();
                        Ok(Some(header))
                    }
                    _ => self.renew(None).await.map(Some),
                }
            }
        }
    }

    /// After a 401 to a request sent with `sent`: a header worth one retry, if there is a
    /// newer one (the token file was rewritten; IMS gave a new token).
    pub(crate) async fn after_denied(self: &Arc<Self>, sent: Option<&HeaderValue>) -> Option<HeaderValue> {
        let fresh = match &self.source {
            Source::Fixed(_) => return None,
            Source::TokenFile(path) => {
                self.reread(path);
                self.current.lock().header.clone()
            }
            Source::Ims(_) => self.renew(sent.cloned()).await.ok(),
        };
        fresh.filter(|h| Some(h) != sent)
    }

    /// Reads the token file again; a file that cannot be read (mid-rewrite, emptied) leaves
    /// the token in use as it is.
    fn reread(&self, path: &Path) {
        match read_token_file(path) {
            Ok((token, stamp)) => match header(&format!("Bearer {token}")) {
                Ok(value) => {
                    let mut c = self.current.lock();
                    if c.header.as_ref() != Some(&value) {
                        log::info!("--token-file {}: read a new token", path.display());
                    }
                    *c = Current {
                        header: Some(value),
                        stamp: Some(stamp),
                        expires: token_expiry(&token),
                        renew_at: None,
                    };
                }
                Err(e) => log::warn!("{e:#}; the token in use stays"),
            },
            Err(e) => log::warn!("{e:#}; the token in use stays"),
        }
    }

    fn renew_in_background(self: &Arc<Self>) {
        let Ok(guard) = Arc::clone(&self.renewing).try_lock_owned() else { return };
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = this.exchange().await {
                log::warn!("{e}; the token in use serves until it expires, renewal is tried again");
                this.current.lock().renew_at = Some(SystemTime::now() + RENEW_RETRY);
            }
        });
    }

    /// Gets a new IMS token, one task at a time: a caller that waited for another's renewal
    /// takes its result, unless that is still `stale` (the header a 401 answered).
    async fn renew(&self, stale: Option<HeaderValue>) -> RemoteResult<HeaderValue> {
        let _guard = self.renewing.lock().await;
        {
            let c = self.current.lock();
            let now = SystemTime::now();
            let usable = c.expires.is_some_and(|e| now < e) && c.renew_at.is_some_and(|t| now < t);
            if let (true, Some(h)) = (usable, &c.header)
                && stale.as_ref() != Some(h)
            {
                return Ok(h.clone());
            }
        }
        self.exchange().await
    }

    /// One exchange at IMS; the caller holds `renewing`.
    async fn exchange(&self) -> RemoteResult<HeaderValue> {
        let Source::Ims(creds) = &self.source else {
            return Err(RemoteError::new(RemoteErrorKind::Other, "auth", "no service credentials"));
        };
        let token = creds.exchange(&self.client).await?;
        let value = header(&format!("Bearer {}", token.access_token)).map_err(|e| {
            RemoteError::new(RemoteErrorKind::Other, format!("IMS {}", creds.ims_host()), e.to_string())
        })?;
        let now = SystemTime::now();
        log::info!("IMS {}: new token, valid for {} s", creds.ims_host(), token.lifetime.as_secs());
        *self.current.lock() = Current {
            header: Some(value.clone()),
            stamp: None,
            expires: Some(now + token.lifetime),
            renew_at: Some(now + token.lifetime.mul_f64(RENEW_AT)),
        };
        Ok(value)
    }
}

/// A sensitive header value (never printed by reqwest).
fn header(text: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(text)
        .map_err(|_| anyhow::anyhow!("the credentials contain characters an HTTP header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    let m = std::fs::metadata(path)?;
    Ok(FileStamp { dev: m.dev(), ino: m.ino(), mtime: (m.mtime(), m.mtime_nsec()), len: m.len() })
}

/// Checks that a token file holds a token (config does, so a bad file stops the mount).
pub fn check_token_file(path: &Path) -> anyhow::Result<()> {
    read_token_file(path).map(|_| ())
}

/// Reads a token file: the first line, or the JSON a developer console downloads (the token
/// in `accessToken` or `access_token`). Errors name the file, never the token.
fn read_token_file(path: &Path) -> anyhow::Result<(String, FileStamp)> {
    let what = format!("--token-file {}", path.display());
    let before = stamp(path).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let token = parse_token(&text).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok((token, before))
}

/// The token in a token file's text.
fn parse_token(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|e| format!("not JSON (line {} column {})", e.line(), e.column()))?;
        let token = ["accessToken", "access_token"]
            .iter()
            .find_map(|key| value.get(key)?.as_str())
            .ok_or("the JSON has no \"accessToken\"")?;
        if token.trim().is_empty() {
            return Err("\"accessToken\" is empty".into());
        }
        return Ok(token.trim().to_string());
    }
    let line = trimmed.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(line.to_string())
}

/// When a JWT access token expires: `exp` (seconds), or IMS's `created_at` + `expires_in`
/// (milliseconds). None for an opaque token.
fn token_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.trim().split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let number = |key: &str| match claims.get(key)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    };
    if let Some(exp) = number("exp") {
        return UNIX_EPOCH.checked_add(Duration::from_secs(exp));
    }
    let end = number("created_at")?.checked_add(number("expires_in")?)?;
    UNIX_EPOCH.checked_add(Duration::from_millis(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files() {
        assert_eq!(parse_token("abc\n").unwrap(), "abc");
        assert_eq!(parse_token("  abc  \nsecond line\n").unwrap(), "abc");
        let console = r#"{"ok": true, "statusCode": 200, "accessToken": "eyJ.x.y"}"#;
        assert_eq!(parse_token(console).unwrap(), "eyJ.x.y");
        assert_eq!(parse_token(r#"{"access_token": "t"}"#).unwrap(), "t");
        assert!(parse_token("").unwrap_err().contains("empty"));
        assert!(parse_token(r#"{"token": "t"}"#).unwrap_err().contains("accessToken"));
        assert!(parse_token("{nope").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn fixed_headers() {
        let client = reqwest::Client::new();
        let none = Auth::new(&Credentials::None, client.clone()).unwrap();
        assert!(none.current.lock().header.is_none());
        let basic = Credentials::Basic { user: "admin".into(), password: "admin".into() };
        let basic = Auth::new(&basic, client.clone()).unwrap();
        let value = basic.current.lock().header.clone().unwrap();
        assert_eq!(value.to_str().unwrap(), "Basic YWRtaW46YWRtaW4=");
        assert!(value.is_sensitive());
        let bearer = Auth::new(&Credentials::Bearer("tok\n".into()), client.clone()).unwrap();
        assert_eq!(bearer.current.lock().header.clone().unwrap().to_str().unwrap(), "Bearer tok");
        assert!(Auth::new(&Credentials::Bearer("a\nb".into()), client).is_err());
    }

    #[test]
    fn expiry_from_the_token() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = |claims: &str| format!("h.{}.s", b64.encode(claims));
        assert_eq!(token_expiry(&jwt(r#"{"exp": 100}"#)), Some(UNIX_EPOCH + Duration::from_secs(100)));
        let ims = jwt(r#"{"created_at": "1000", "expires_in": "86400000"}"#);
        assert_eq!(token_expiry(&ims), Some(UNIX_EPOCH + Duration::from_millis(86_401_000)));
        assert_eq!(token_expiry("opaque"), None);
        assert_eq!(token_expiry(&jwt("{}")), None);
    }
}
