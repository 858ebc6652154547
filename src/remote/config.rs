//! How to reach the DAM: its base URL, credentials, trust, client certificate and proxy.
//! Plain data, shared by the AEM client and the HTTP plumbing under it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// How to authenticate: sent preemptively on every request to the DAM's origin.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Anonymous.
    None,
    /// `Authorization: Basic …` (a technical user).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>` (Cloud Service developer or service token).
    Bearer(String),
    /// A bearer token read from a file, and read again when the file changes or the DAM
    /// answers 401 (checked readable by `config`).
    TokenFile(PathBuf),
    /// Service credentials: tokens obtained from IMS and renewed before they expire.
    Service(Arc<super::ims::ServiceCredentials>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: <redacted> }}"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::TokenFile(path) => write!(f, "TokenFile({})", path.display()),
            Credentials::Service(creds) => write!(f, "{creds:?}"),
        }
    }
}

/// How to reach the DAM.
#[derive(Clone)]
pub struct AemConfig {
    /// Scheme, host and port, plus an optional context path (as from `aem::parse_remote_url`).
    pub base: Url,
    /// Authentication.
    pub credentials: Credentials,
    /// Extra trusted CA certificates (a PEM file), beside the built-in roots and the system
    /// trust store; each is also accepted as the server's own certificate when it is
    /// presented exactly (pinned).
    pub ca_file: Option<PathBuf>,
    /// An HTTP(S) proxy URL for every request.
    pub proxy: Option<String>,
    /// Bound on establishing a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Bound on one JSON request (a listing page, a query page, a metadata node), from
    /// sending it to the end of its body. Binary transfers are bounded by their readers.
    pub request_timeout: Duration,
    /// A PEM client certificate (chain) offered to a server that asks for one (mutual TLS).
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert` (None: it is in `client_cert`'s file).
    pub client_key: Option<PathBuf>,
}

impl AemConfig {
    /// A configuration for `base`: anonymous, no proxy, no extra CA, no client certificate, a
    /// 5 s connect timeout.
    pub fn new(base: Url) -> AemConfig {
        AemConfig {
            base,
            credentials: Credentials::None,
            ca_file: None,
            proxy: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            client_cert: None,
            client_key: None,
        }
    }
}

impl fmt::Debug for AemConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The proxy URL may carry proxy credentials.
        f.debug_struct("AemConfig")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .field("ca_file", &self.ca_file)
            .field("proxy", &self.proxy.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}
