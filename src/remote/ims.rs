//! Service credentials and the Adobe IMS token exchange: a credentials file, as downloaded
//! from a developer console, turned into access tokens for unattended mounts.
//!
//! Two kinds of file are read:
//! - the AEM Developer Console's service credentials (`integration` with a `privateKey`): a
//!   JWT signed with that key is exchanged at `https://<imsEndpoint>/ims/exchange/jwt`; IMS
//!   gives the token's lifetime in milliseconds;
//! - OAuth Server-to-Server credentials (a client ID, a client secret and scopes, flat or
//!   inside an Adobe Developer Console project download): the `client_credentials` grant at
//!   `https://<ims>/ims/token/v3`; IMS gives the lifetime in seconds.
//!
//! `imsEndpoint` may carry a scheme (`http://127.0.0.1:8080`), which `damfs serve` uses to
//! stand in for IMS in tests. Secrets never appear in a message or a log line.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine as _;
use reqwest::Url;
use serde_json::{Value, json};

use super::{RemoteError, RemoteErrorKind, RemoteResult};

/// The IMS host when a file names none.
const DEFAULT_IMS: &str = "ims-na1.adobelogin.com";

/// Lifetime of the signed JWT itself (it is used at once).
const JWT_LIFETIME: Duration = Duration::from_secs(600);

/// Largest answer read from IMS.
const MAX_ANSWER: usize = 1 << 20;

/// How a token is obtained.
#[derive(Clone, PartialEq, Eq)]
enum Grant {
    /// A JWT signed with the technical account's key, exchanged for a token.
    Jwt {
        /// The key, DER (PKCS#1 or PKCS#8).
        key: KeyDer,
        /// `org`: the IMS organization (the JWT's issuer).
        org: String,
        /// `id`: the technical account (the JWT's subject).
        account: String,
        /// `metascopes`, each a JWT claim.
        metascopes: Vec<String>,
    },
    /// OAuth Server-to-Server: the client credentials grant.
    ClientCredentials {
        /// Scopes, comma-separated as IMS takes them.
        scope: String,
    },
}

/// A private key in DER form.
#[derive(Clone, PartialEq, Eq)]
enum KeyDer {
    Pkcs1(Vec<u8>),
    Pkcs8(Vec<u8>),
}

/// Service credentials read from a file (sensitive: never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceCredentials {
    /// The IMS origin, e.g. `https://ims-na1.adobelogin.com`.
    ims: Url,
    client_id: String,
    client_secret: String,
    grant: Grant,
}

impl fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ServiceCredentials {{ {}, ims: {}, client_id: {} }}",
            self.kind(),
            self.ims,
            self.client_id
        )
    }
}

/// A token from IMS.
#[derive(Debug)]
pub(crate) struct Token {
    /// The access token (sensitive).
    pub access_token: String,
    /// How long it lives from now.
    pub lifetime: Duration,
}

impl ServiceCredentials {
    /// Reads a credentials file; every failure names the file and what is missing.
    pub fn read(path: &Path) -> anyhow::Result<ServiceCredentials> {
        let what = format!("--credentials-file {}", path.display());
        let text = std::fs::read_to_string(path).with_context(|| what.clone())?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{what}: not JSON (line {} column {})", e.line(), e.column()))?;
        ServiceCredentials::from_json(&value).map_err(|e| anyhow::anyhow!("{what}: {e}"))
    }

    /// Reads the JSON of a credentials file.
    fn from_json(value: &Value) -> Result<ServiceCredentials, String> {
        if let Some(integration) = value.get("integration").filter(|v| v.is_object()) {
            return from_integration(integration);
        }
        let oauth = find_object(value, "oauth_server_to_server").unwrap_or(value);
        let client_id = string(oauth, "client_id").ok_or("no \"client_id\" (nor \"integration\")")?;
        let client_secret = string(oauth, "client_secret")
            .or_else(|| oauth.get("client_secrets")?.as_array()?.first()?.as_str().map(str::to_string))
            .ok_or("no \"client_secret\" or \"client_secrets\"")?;
        let scope = match oauth.get("scopes").or_else(|| oauth.get("scope")) {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            Some(Value::String(s)) => s.clone(),
            _ => return Err("no \"scopes\"".into()),
        };
        let ims = ims_origin(string(value, "ims_endpoint").or_else(|| string(oauth, "ims_endpoint")))?;
        Ok(ServiceCredentials { ims, client_id, client_secret, grant: Grant::ClientCredentials { scope } })
    }

    /// `jwt` or `oauth`, as `damfs status` shows it.
    pub fn kind(&self) -> &'static str {
        match self.grant {
            Grant::Jwt { .. } => "service credentials (JWT)",
            Grant::ClientCredentials { .. } => "service credentials (OAuth)",
        }
    }

    /// The host tokens come from (for messages).
    pub fn ims_host(&self) -> String {
        self.ims.host_str().unwrap_or("?").to_string()
    }

    /// Asks IMS for a token.
    pub(crate) async fn exchange(&self, client: &reqwest::Client) -> RemoteResult<Token> {
        let (path, form, unit) = match &self.grant {
            Grant::Jwt { .. } => {
                let jwt = self.signed_jwt().map_err(|e| self.error(RemoteErrorKind::Other, e))?;
                let form = vec![
                    ("client_id", self.client_id.clone()),
                    ("client_secret", self.client_secret.clone()),
                    ("jwt_token", jwt),
                ];
                ("ims/exchange/jwt", form, Duration::from_millis(1))
            }
            Grant::ClientCredentials { scope } => {
                let form = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", self.client_id.clone()),
                    ("client_secret", self.client_secret.clone()),
                    ("scope", scope.clone()),
                ];
                ("ims/token/v3", form, Duration::from_secs(1))
            }
        };
        let url = self.ims.join(path).map_err(|e| self.error(RemoteErrorKind::Other, e.to_string()))?;
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| super::http::transport_error(&self.label(), &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| super::http::transport_error(&self.label(), &e))?;
        if bytes.len() > MAX_ANSWER {
            return Err(self.error(RemoteErrorKind::Other, "answer larger than 1 MiB"));
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let kind = match status.as_u16() {
                400 | 401 | 403 => RemoteErrorKind::Denied,
                _ => RemoteErrorKind::Other,
            };
            let reason = [string(&answer, "error"), string(&answer, "error_description")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let shown = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
            return Err(self.error(kind, format!("token refused: HTTP {status}{shown}")));
        }
        let access_token = string(&answer, "access_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.error(RemoteErrorKind::Other, "the answer has no \"access_token\""))?;
        let count = match answer.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| self.error(RemoteErrorKind::Other, "the answer has no \"expires_in\""))?;
        let lifetime = unit.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX));
        Ok(Token { access_token, lifetime })
    }

    fn label(&self) -> String {
        format!("IMS {}", self.ims_host())
    }

    fn error(&self, kind: RemoteErrorKind, cause: impl Into<String>) -> RemoteError {
        RemoteError::new(kind, self.label(), cause)
    }

    /// The JWT of the exchange, signed RS256 with the account's key.
    fn signed_jwt(&self) -> Result<String, String> {
        let Grant::Jwt { key, org, account, metascopes } = &self.grant else {
            return Err("not JWT credentials".into());
        };
        let origin = self.ims.as_str().trim_end_matches('/');
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + JWT_LIFETIME;
        let mut claims = json!({
            "exp": exp.as_secs(),
            "iss": org,
            "sub": account,
            "aud": format!("{origin}/c/{}", self.client_id),
        });
        for scope in metascopes {
            claims[format!("{origin}/s/{scope}")] = Value::Bool(true);
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let signing_input = format!("{header}.{}", b64.encode(claims.to_string()));
        let pair = match key {
            KeyDer::Pkcs1(der) => ring::signature::RsaKeyPair::from_der(der),
            KeyDer::Pkcs8(der) => ring::signature::RsaKeyPair::from_pkcs8(der),
        }
        .map_err(|e| format!("the private key is not a usable RSA key ({e})"))?;
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "signing the JWT failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64.encode(signature)))
    }
}

/// The AEM Developer Console form: `integration.technicalAccount`, `imsEndpoint`, and for
/// the JWT exchange `privateKey`, `org`, `id`, `metascopes`.
fn from_integration(integration: &Value) -> Result<ServiceCredentials, String> {
    let account = integration.get("technicalAccount").ok_or("no \"integration.technicalAccount\"")?;
    let client_id = string(account, "clientId").ok_or("no \"technicalAccount.clientId\"")?;
    let client_secret = string(account, "clientSecret").ok_or("no \"technicalAccount.clientSecret\"")?;
    let ims = ims_origin(string(integration, "imsEndpoint"))?;
    let metascopes: Vec<String> = match integration.get("metascopes") {
        Some(Value::String(s)) => {
            s.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
        }
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let Some(pem) = string(integration, "privateKey") else {
        // No key: the OAuth Server-to-Server form of the same download.
        let scope = metascopes.join(",");
        return Ok(ServiceCredentials {
            ims,
            client_id,
            client_secret,
            grant: Grant::ClientCredentials { scope },
        });
    };
    let key = parse_key(&pem)?;
    let org = string(integration, "org").ok_or("no \"integration.org\"")?;
    let account_id = string(integration, "id").ok_or("no \"integration.id\"")?;
    if metascopes.is_empty() {
        return Err("no \"integration.metascopes\"".into());
    }
    Ok(ServiceCredentials {
        ims,
        client_id,
        client_secret,
        grant: Grant::Jwt { key, org, account: account_id, metascopes },
    })
}

/// A PEM RSA private key (PKCS#1 or PKCS#8), checked to be usable for signing.
fn parse_key(pem: &str) -> Result<KeyDer, String> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = pem.replace("\r\n", "\n");
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "\"privateKey\" is not a PEM private key".to_string())?;
    let key = match der {
        rustls_pki_types::PrivateKeyDer::Pkcs1(k) => KeyDer::Pkcs1(k.secret_pkcs1_der().to_vec()),
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => KeyDer::Pkcs8(k.secret_pkcs8_der().to_vec()),
        _ => return Err("\"privateKey\" is not an RSA key".into()),
    };
    let usable = match &key {
        KeyDer::Pkcs1(der) => ring::signature::RsaKeyPair::from_der(der).is_ok(),
        KeyDer::Pkcs8(der) => ring::signature::RsaKeyPair::from_pkcs8(der).is_ok(),
    };
    if !usable {
        return Err("\"privateKey\" is not a usable RSA key".into());
    }
    Ok(key)
}

/// `https://<host>` for a bare host name; an endpoint with a scheme is taken as it is.
fn ims_origin(endpoint: Option<String>) -> Result<Url, String> {
    let endpoint = endpoint.unwrap_or_else(|| DEFAULT_IMS.to_string());
    let text = if endpoint.contains("://") { endpoint.clone() } else { format!("https://{endpoint}") };
    let url = Url::parse(&text).map_err(|e| format!("IMS endpoint {endpoint:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("IMS endpoint {endpoint:?}: not an http(s) host"));
    }
    // Paths are joined under the origin.
    Url::parse(&format!("{}/", url.origin().ascii_serialization())).map_err(|e| e.to_string())
}

fn string(value: &Value, key: &str) -> Option<String> {
    value.get(key)?.as_str().map(str::to_string)
}

/// The first object under `key`, anywhere in `value` (a project download nests it deeply).
fn find_object<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => {
            map.get(key).filter(|v| v.is_object()).or_else(|| map.values().find_map(|v| find_object(v, key)))
        }
        Value::Array(list) => list.iter().find_map(|v| find_object(v, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_forms() {
        let flat = json!({"client_id": "c", "client_secret": "s", "scopes": ["openid", "AdobeID"]});
        let creds = ServiceCredentials::from_json(&flat).unwrap();
        assert!(creds.grant == Grant::ClientCredentials { scope: "openid,AdobeID".into() });
        assert_eq!(creds.ims.as_str(), "https://ims-na1.adobelogin.com/");
        assert_eq!(creds.kind(), "service credentials (OAuth)");

        let project = json!({"project": {"workspace": {"details": {"credentials": [
            {"oauth_server_to_server": {"client_id": "c", "client_secrets": ["s1", "s2"], "scopes": ["a"]}}
        ]}}}});
        let creds = ServiceCredentials::from_json(&project).unwrap();
        assert_eq!(creds.client_secret, "s1");

        let local = json!({"client_id": "c", "client_secret": "s", "scopes": "a",
                           "ims_endpoint": "http://127.0.0.1:9/"});
        assert_eq!(ServiceCredentials::from_json(&local).unwrap().ims.as_str(), "http://127.0.0.1:9/");
    }

    #[test]
    fn defects_are_named() {
        let cases = [
            (json!({}), "client_id"),
            (json!({"client_id": "c", "scopes": []}), "client_secret"),
            (json!({"client_id": "c", "client_secret": "s"}), "scopes"),
            (json!({"integration": {}}), "technicalAccount"),
            (
                json!({"integration": {"technicalAccount": {"clientId": "c", "clientSecret": "s"},
                        "privateKey": "nope", "org": "o", "id": "i", "metascopes": "m"}}),
                "privateKey",
            ),
            (
                json!({"client_id": "c", "client_secret": "s", "scopes": "a", "ims_endpoint": "ftp://x"}),
                "ftp",
            ),
        ];
        for (value, named) in cases {
            let e = ServiceCredentials::from_json(&value).unwrap_err();
            assert!(e.contains(named), "{value}: {e}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let flat = json!({"client_id": "c", "client_secret": "very-secret", "scopes": "a"});
        let creds = ServiceCredentials::from_json(&flat).unwrap();
        assert!(!format!("{creds:?}").contains("very-secret"));
    }
}
