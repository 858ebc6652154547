//! A stand-in for Adobe IMS, so that unattended mounts can be tested: `POST /ims/exchange/jwt`
//! (service credentials: a JWT naming the client) and `POST /ims/token/v3` (OAuth
//! Server-to-Server: the client credentials grant) issue bearer tokens with a configurable
//! lifetime, which the DAM then accepts until they expire (401 after).
//!
//! The JWT's signature is not verified (the server has no public key to check it with);
//! its shape, audience, subject and expiry are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The client allowed to obtain tokens, and how long they live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImsClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
    /// Lifetime of each token issued.
    pub lifetime: Duration,
}

/// The token endpoints.
pub(super) const JWT_EXCHANGE: &str = "/ims/exchange/jwt";
/// The OAuth Server-to-Server endpoint.
pub(super) const TOKEN_V3: &str = "/ims/token/v3";

/// Largest form body read.
const MAX_FORM: usize = 64 << 10;

/// Tokens issued, with when each expires.
#[derive(Debug, Default)]
pub(super) struct Issued {
    tokens: Mutex<HashMap<String, Instant>>,
    count: AtomicU64,
}

impl Issued {
    /// Whether `token` was issued here and has not expired; None if it was never issued.
    pub(super) fn valid(&self, token: &str) -> Option<bool> {
        self.tokens.lock().get(token).map(|expires| Instant::now() < *expires)
    }

    /// How many tokens were issued.
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn issue(&self, lifetime: Duration) -> String {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let token = format!("ims-{n}-{}", crate::digest::short_tag(format!("{n}:{nanos}").as_bytes()));
        let mut tokens = self.tokens.lock();
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + lifetime);
        token
    }
}

/// Answers a POST to one of the token endpoints.
pub(super) async fn token(client: Option<ImsClient>, issued: &Issued, path: &str, body: Body) -> Response {
    let Some(client) = client else {
        return error(StatusCode::NOT_FOUND, "not_found", "no IMS client is configured");
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "unreadable form");
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&bytes).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if field("client_id") != client.client_id {
        return error(StatusCode::BAD_REQUEST, "invalid_client", "invalid client_id parameter");
    }
    if field("client_secret") != client.client_secret {
        return error(StatusCode::UNAUTHORIZED, "invalid_client", "invalid client_secret parameter");
    }
    let expires_in = if path == JWT_EXCHANGE {
        if let Err(why) = check_jwt(field("jwt_token"), &client.client_id) {
            return error(StatusCode::BAD_REQUEST, "invalid_token", &why);
        }
        client.lifetime.as_millis() as u64
    } else {
        if field("grant_type") != "client_credentials" {
            return error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "expected client_credentials");
        }
        client.lifetime.as_secs().max(1)
    };
    let token = issued.issue(client.lifetime);
    let answer = json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in});
    ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
}

/// Checks what IMS checks of a JWT that it can without the key: three parts, an audience
/// naming the client, a subject and an issuer, an expiry in the future.
fn check_jwt(jwt: &str, client_id: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [_, payload, signature] = parts[..] else { return Err("not a JWT".into()) };
    if signature.is_empty() {
        return Err("the JWT is not signed".into());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the JWT payload is not base64url".to_string())?;
    let claims: Value =
        serde_json::from_slice(&bytes).map_err(|_| "the JWT payload is not JSON".to_string())?;
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or("");
    if !aud.ends_with(&format!("/c/{client_id}")) {
        return Err(format!("audience {aud:?} does not name the client"));
    }
    for claim in ["iss", "sub"] {
        if claims.get(claim).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(format!("no {claim:?} claim"));
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now => Ok(()),
        _ => Err("the JWT has expired or has no \"exp\"".into()),
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = json!({"error": code, "error_description": description});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("h.{}.sig", b64.encode(claims.to_string()))
    }

    #[test]
    fn jwt_checks() {
        let later = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 60;
        let good = json!({"aud": "https://ims/c/cid", "iss": "org", "sub": "acct", "exp": later});
        assert!(check_jwt(&jwt(good.clone()), "cid").is_ok());
        assert!(check_jwt(&jwt(good.clone()), "other").unwrap_err().contains("audience"));
        let mut expired = good.clone();
        expired["exp"] = json!(1);
        assert!(check_jwt(&jwt(expired), "cid").unwrap_err().contains("expired"));
        let mut anonymous = good;
        anonymous["sub"] = json!("");
        assert!(check_jwt(&jwt(anonymous), "cid").unwrap_err().contains("sub"));
        assert!(check_jwt("a.b", "cid").is_err());
    }

    #[test]
    fn tokens_expire() {
        let issued = Issued::default();
        let token = issued.issue(Duration::from_millis(30));
        assert_eq!(issued.valid(&token), Some(true));
        assert_eq!(issued.valid("never"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(issued.valid(&token), Some(false));
        assert_eq!(issued.count(), 1);
    }
}
