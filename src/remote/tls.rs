//! TLS towards the DAM: which server certificates are trusted, which client certificate is
//! offered, and how a TLS failure reads.
//!
//! Trusted are the bundled Mozilla roots, the system trust store (as curl finds it, with
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured) and the certificates of `--ca-file`. Each
//! `--ca-file` certificate is also *pinned*: a server that presents exactly that certificate
//! is accepted whatever names, dates or CA flag it carries, which is what an admin means by
//! handing damfs the self-signed certificate that AEM's SSL setup makes (`openssl req -x509`
//! marks it `CA:TRUE`, which the path validation would refuse as a server's certificate).
//! Everything else goes through the ordinary validation. The handshake signature is checked
//! in both cases, so a pinned certificate proves its key is at the other end.
//!
//! A certificate that is not trusted, or a server that wants a client certificate it did not
//! get, is [`RemoteErrorKind::Tls`]: a configuration error, reported in one line that names
//! the host, the reason and the fix. This module does not send requests; the HTTP plumbing
//! hands its [`ClientConfig`] to reqwest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use reqwest::{StatusCode, Url};
use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::config::AemConfig;
use super::url::label;
use super::{RemoteError, RemoteErrorKind, RemoteResult};

/// The fix for a certificate whose issuer is not trusted.
const ADD_CA: &str =
    "give the CA that signed it with --ca-file FILE, or add that CA to the system trust store";

/// The fix for a certificate that is right but would not validate: trust it as it is.
const PIN: &str = "give this very certificate with --ca-file FILE to trust it exactly";

/// The fix for a server that wants a client certificate.
const CLIENT_CERT: &str = "give one with --client-cert FILE and --client-key FILE";

/// Checks everything TLS will read (`--ca-file`, `--client-cert`, `--client-key`, the
/// system trust store named by `SSL_CERT_FILE` or `SSL_CERT_DIR`), so that a bad file fails
/// `damfs mount` at once, with the flag, the file and the cause, before any daemon starts.
pub fn check_tls(config: &AemConfig) -> anyhow::Result<()> {
    Material::load(config, &provider()).map(drop)
}

/// The crypto provider: the one reqwest is built with.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side of TLS, as reqwest takes it, and what watches for a server that wants a
/// client certificate none was configured for.
pub(crate) struct Tls {
    /// For `reqwest::ClientBuilder::use_preconfigured_tls`.
    pub(crate) config: ClientConfig,
    /// Watches for a server that asks for a client certificate when none is configured.
    pub(crate) watch: ClientCertWatch,
}

impl Tls {
    /// Builds the client configuration from `config`'s files and the system trust store.
    pub(crate) fn new(config: &AemConfig) -> anyhow::Result<Tls> {
        let provider = provider();
        let material = Material::load(config, &provider)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(material.roots), provider.clone())
            .build()
            .context("cannot set up certificate validation")?;
        let verifier = Arc::new(PinningVerifier { pins: material.pins, webpki });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let (mut tls, watch) = match material.identity {
            Some(identity) => {
                let resolver = Arc::new(SingleCertAndKey::from(identity));
                (builder.with_client_cert_resolver(resolver), ClientCertWatch(None))
            }
            None => {
                let asked = Arc::new(NoClientCert::default());
                (builder.with_client_cert_resolver(asked.clone()), ClientCertWatch(Some(asked)))
            }
        };
        // HTTP/1.1 only, as reqwest asks for it without its http2 feature.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { config: tls, watch })
    }
}

/// What the client configuration is made of, read and checked.
struct Material {
    /// Trust anchors: the bundled roots, the system store's, `--ca-file`'s.
    roots: RootCertStore,
    /// The certificates of `--ca-file`, each accepted when presented exactly.
    pins: Vec<CertificateDer<'static>>,
    /// The client certificate and its key.
    identity: Option<CertifiedKey>,
}

impl Material {
    fn load(config: &AemConfig, provider: &CryptoProvider) -> anyhow::Result<Material> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        roots.add_parsable_certificates(system_store()?);
        let pins = match &config.ca_file {
            Some(path) => ca_file(path, &mut roots)?,
            None => Vec::new(),
        };
        let identity = match (&config.client_cert, &config.client_key) {
            (Some(cert), key) => Some(identity(cert, key.as_deref(), provider)?),
            (None, Some(key)) => {
                bail!("--client-key {}: give the certificate with --client-cert", key.display())
            }
            (None, None) => None,
        };
        Ok(Material { roots, pins, identity })
    }
}

/// The system trust store. A file or directory named by `SSL_CERT_FILE` or `SSL_CERT_DIR`
/// must be readable and hold certificates, as for curl; trouble with one file of such a
/// directory, or with the default locations, is only logged, since the other certificates,
/// the bundled roots and `--ca-file` may be all that is needed.
fn system_store() -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let found = rustls_native_certs::load_native_certs();
    let mut named = Vec::new();
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        named.push(("SSL_CERT_FILE", PathBuf::from(file)));
    }
    if let Some(dirs) = std::env::var_os("SSL_CERT_DIR") {
        let dirs = std::env::split_paths(&dirs).filter(|dir| !dir.as_os_str().is_empty());
        named.extend(dirs.map(|dir| ("SSL_CERT_DIR", dir)));
    }
    for error in &found.errors {
        if let rustls_native_certs::ErrorKind::Io { inner, path } = &error.kind
            && let Some((var, _)) = named.iter().find(|(_, named)| named == path)
        {
            bail!("{var} {}: {inner}", path.display());
        }
        log::warn!("system trust store: {error}");
    }
    if !named.is_empty() && found.certs.is_empty() {
        let named: Vec<String> =
            named.iter().map(|(var, path)| format!("{var} {}", path.display())).collect();
        bail!("{}: no PEM certificate there", named.join(", "));
    }
    Ok(found.certs)
}

/// Reads `--ca-file`: every certificate becomes a trust anchor and a pin.
fn ca_file(path: &Path, roots: &mut RootCertStore) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let what = format!("--ca-file {}", path.display());
    let (_, certs) = certificates(path, &what)?;
    for (n, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).with_context(|| format!("{what}: certificate {} is unusable", n + 1))?;
    }
    Ok(certs)
}

/// Reads the client certificate chain, and its key from `key` (or from the certificate's
/// own file when `key` is None), and checks that they belong together.
fn identity(cert: &Path, key: Option<&Path>, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let cert_what = format!("--client-cert {}", cert.display());
    let (pem, chain) = certificates(cert, &cert_what)?;
    let (key_what, key_pem) = match key {
        Some(key) => {
            let what = format!("--client-key {}", key.display());
            let pem = std::fs::read(key).with_context(|| what.clone())?;
            (what, pem)
        }
        None => (cert_what.clone(), pem),
    };
    let private = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(private) => private,
        Err(PemError::NoItemsFound) if key.is_none() => {
            bail!("{key_what}: no PEM private key in the file: give the key with --client-key FILE")
        }
        Err(PemError::NoItemsFound) => bail!("{key_what}: no PEM private key in the file"),
        Err(e) => bail!("{key_what}: not a PEM private key ({e})"),
    };
    CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            anyhow::anyhow!("{key_what}: the key does not belong to the certificate of {cert_what}")
        }
        other => anyhow::anyhow!("{key_what}: unusable private key: {other}"),
    })
}

/// The bytes of the PEM file at `path` (named `what` in errors) and its certificates, at
/// least one.
fn certificates(path: &Path, what: &str) -> anyhow::Result<(Vec<u8>, Vec<CertificateDer<'static>>)> {
    let pem = std::fs::read(path).with_context(|| what.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{what}: not a PEM file ({e})"))?;
    if certs.is_empty() {
        bail!("{what}: no PEM certificate in the file");
    }
    Ok((pem, certs))
}

/// Accepts a pinned certificate exactly as given; asks the ordinary validation otherwise.
#[derive(Debug)]
struct PinningVerifier {
    pins: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.iter().any(|pin| pin.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Offers no client certificate, and remembers whether a server asked for one.
#[derive(Debug, Default)]
struct NoClientCert {
    asked: AtomicBool,
}

impl ResolvesClientCert for NoClientCert {
    fn resolve(&self, _issuers: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// Tells a refusal for want of a client certificate from an ordinary `400 Bad Request`.
/// Some proxies (nginx among them) finish the handshake without the certificate they asked
/// for and answer 400; a server that asked, and got none because none was configured, is
/// then named as the cause.
#[derive(Debug, Clone)]
pub(crate) struct ClientCertWatch(Option<Arc<NoClientCert>>);

impl ClientCertWatch {
    /// An error when `status` answers `url` after a server asked for a client certificate
    /// and none was configured.
    pub(crate) fn check(&self, url: &Url, status: StatusCode) -> RemoteResult<()> {
        let asked = self.0.as_ref().is_some_and(|n| n.asked.load(Ordering::Relaxed));
        if asked && status == StatusCode::BAD_REQUEST {
            let cause = format!(
                "{} answered {status} after asking for a client certificate, and none is configured: {CLIENT_CERT}",
                host(url)
            );
            return Err(RemoteError::new(RemoteErrorKind::Tls, label(url), cause));
        }
        Ok(())
    }
}

/// The cause of a TLS refusal in `error`'s chain, in one line that names the host, the
/// reason and the fix; None when `error` is something else.
pub(crate) fn refusal(error: &reqwest::Error) -> Option<String> {
    let host = error.url().map(host).unwrap_or_else(|| "the remote".into());
    explain(&host, rustls_error(error)?)
}

/// `host` or `host:port`, as the URL names it.
fn host(url: &Url) -> String {
    let name = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_string(),
    }
}

/// The first rustls error in a cause chain. It sits inside an `io::Error` (sometimes inside
/// two), whose `source` skips what it wraps, so an `io::Error` is opened rather than followed.
fn rustls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        cause = match wrapped {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The line for a rustls error that is a matter of trust; None for any other.
fn explain(host: &str, error: &rustls::Error) -> Option<String> {
    match error {
        rustls::Error::InvalidCertificate(e) => {
            let (reason, fix) = untrusted(e);
            Some(format!("the certificate of {host} is not trusted: {reason}; {fix}"))
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            Some(format!("{host} requires a client certificate: {CLIENT_CERT}"))
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied),
        ) => Some(format!(
            "{host} refused the TLS handshake ({alert:?}): it wants a client certificate it accepts \
             (--client-cert FILE, --client-key FILE)"
        )),
        _ => None,
    }
}

/// Why a certificate is not trusted, and what to do about it.
fn untrusted(error: &CertificateError) -> (String, &'static str) {
    match error {
        CertificateError::UnknownIssuer => ("unknown issuer".into(), ADD_CA),
        CertificateError::Expired => ("expired".into(), "renew the server's certificate"),
        CertificateError::ExpiredContext { not_after, .. } => {
            (format!("expired on {}", date(*not_after)), "renew the server's certificate")
        }
        CertificateError::NotValidYet => ("not valid yet".into(), "check this machine's clock"),
        CertificateError::NotValidYetContext { not_before, .. } => {
            (format!("not valid before {}", date(*not_before)), "check this machine's clock")
        }
        CertificateError::NotValidForName => ("issued for another name".into(), PIN),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names = if presented.is_empty() { "no name".into() } else { presented.join(", ") };
            (format!("issued for another name ({names})"), PIN)
        }
        CertificateError::Other(other)
            if matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) =>
        {
            ("a CA certificate used as the server's own (self-signed)".into(), PIN)
        }
        other => (format!("{other}").to_lowercase(), ADD_CA),
    }
}

/// `2024-05-01` for a certificate time.
fn date(time: UnixTime) -> String {
    let secs = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(|| "?".into(), |t| t.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests;
