//! The pinning verifier, the reading of the TLS files, and the lines TLS failures read as.
//! The certificates are self-signed P-256 certificates made with `openssl req -x509` (so
//! `CA:TRUE`), valid from 2026-12-03 for a hundred years; the keys serve these tests only.

use std::io::Write;
use std::time::Duration;

use super::*;

/// Self-signed, `CN=pin-a.test`, `CA:TRUE`.
const CERT_A: &str = "-----BEGIN CERTIFICATE-----
MIIBgDCCASegAwIBAgIUXU0z3N0tL6ANTYxHBtpD/jPAy7kwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKcGluLWEudGVzdDAgFw0yNjEyMDMwNzU4NDBaGA8yMTI2MTEw
OTA3NTg0MFowFTETMBEGA1UEAwwKcGluLWEudGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABJHRzwKG5PBHzU8Hk2yyV+IddBKHgJDJLCEQ+qDu/AfPhcrwTbyj
Ren5tO1TeDTgGU/mF3v6lvuEWET4uljAKoejUzBRMB0GA1UdDgQWBBTkMQiHfUvh
zttmeIibGCGDlWtbmjAfBgNVHSMEGDAWgBTkMQiHfUvhzttmeIibGCGDlWtbmjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIB3f+AgsYb3VDlkt08fV
HoIF2nJ74GTnJH5kPXmICaHgAiAtCiC7BVina7lnWLXkxmX7UgrU++a44z/d+QWU
tmut4w==
-----END CERTIFICATE-----
";

/// The key of [`CERT_A`].
const KEY_A: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKYRyCVQ6ZOZTeujZ
YqzFdEvuag2kUrCoQf5S5znaDO2hRANCAASR0c8ChuTwR81PB5NsslfiHXQSh4CQ
ySwhEPqg7vwHz4XK8E28o0Xp+bTtU3g04BlP5hd7+pb7hFhE+LpYwCqH
-----END PRIVATE KEY-----
";

/// Self-signed, `CN=pin-b.test`, `CA:TRUE`.
const CERT_B: &str = "-----BEGIN CERTIFICATE-----
MIIBgDCCASegAwIBAgIUNAnoqWkIAAOZLCGvxvU1kqh28J4wCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKcGluLWIudGVzdDAgFw0yNjEyMDMwNzU4NDBaGA8yMTI2MTEw
OTA3NTg0MFowFTETMBEGA1UEAwwKcGluLWIudGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABLMhckyD/yoUM5bKMdDL/xJUH7/3oPfj4D5znj9COxvhWPmSjWYJ
V8AKOsrJEAgntCgWEdeFNKN0IWIe9wRq8cmjUzBRMB0GA1UdDgQWBBQ8f45HEG42
SOw8HnGSBlQn8F6BkjAfBgNVHSMEGDAWgBQ8f45HEG42SOw8HnGSBlQn8F6BkjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIDQTtqNXvTDQrmU9AJRk
fMahT8Q5XPnoBjP0kqiM+7C/AiBqHRXcMUx3dKBuWNAfG6YHbflwuL9onm6qj1bT
pQY7aQ==
-----END CERTIFICATE-----
";

/// The key of [`CERT_B`].
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgj3AzHEvNyycWIRIN
FKYXttFF1iV9hRC0dQ7pvsnIUf+hRANCAASzIXJMg/8qFDOWyjHQy/8SVB+/96D3
4+A+c54/Qjsb4Vj5ko1mCVfACjrKyRAIJ7QoFhHXhTSjdCFiHvcEavHJ
-----END PRIVATE KEY-----
";

/// A moment inside both certificates' validity (2030-01-01).
fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_893_456_000))
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A verifier over the bundled roots plus `anchors`, pinning `pins`.
fn verifier(anchors: &[&str], pins: &[&str]) -> PinningVerifier {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for anchor in anchors {
        roots.add(der(anchor)).unwrap();
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
    PinningVerifier { pins: pins.iter().map(|p| der(p)).collect(), webpki }
}

fn verify(verifier: &PinningVerifier, cert: &str, name: &str) -> Result<ServerCertVerified, rustls::Error> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier.verify_server_cert(&der(cert), &[], &name, &[], now())
}

/// A file in `dir` holding `parts`, one after the other.
fn file(dir: &tempfile::TempDir, name: &str, parts: &[&str]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    for part in parts {
        f.write_all(part.as_bytes()).unwrap();
    }
    path
}

fn config() -> AemConfig {
    AemConfig::new(Url::parse("https://dam.example.com").unwrap())
}

#[test]
fn a_pinned_certificate_is_accepted_exactly_whatever_its_name() {
    let pinning = verifier(&[CERT_A], &[CERT_A]);
    assert!(verify(&pinning, CERT_A, "dam.example.com").is_ok());
    assert!(verify(&pinning, CERT_A, "pin-a.test").is_ok());
    // Another self-signed certificate is not the pinned one: the path validation refuses it
    // (as a CA certificate presented as the server's, before it gets to its issuer).
    let other = verify(&pinning, CERT_B, "pin-b.test").unwrap_err();
    assert!(matches!(other, rustls::Error::InvalidCertificate(_)), "{other:?}");
    assert!(explain("h", &other).unwrap().contains("a CA certificate used as the server's own"));
}

#[test]
fn a_self_signed_ca_certificate_as_a_mere_anchor_is_refused_and_the_line_says_why() {
    // What trusting `--ca-file` as an anchor alone gives: the path validation refuses a CA
    // certificate as the server's own. Pinning is what lets it through.
    let anchored = verifier(&[CERT_A], &[]);
    let error = verify(&anchored, CERT_A, "pin-a.test").unwrap_err();
    let line = explain("127.0.0.1:8443", &error).unwrap();
    assert_eq!(
        line,
        "the certificate of 127.0.0.1:8443 is not trusted: a CA certificate used as the server's own \
         (self-signed); give this very certificate with --ca-file FILE to trust it exactly"
    );
}

#[test]
fn untrusted_certificates_read_as_host_reason_and_fix() {
    let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    assert_eq!(
        explain("dam.example.com", &unknown).unwrap(),
        "the certificate of dam.example.com is not trusted: unknown issuer; give the CA that signed it \
         with --ca-file FILE, or add that CA to the system trust store"
    );
    let expired = rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
        time: now(),
        not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_714_521_600)),
    });
    let line = explain("h", &expired).unwrap();
    assert!(line.contains("expired on 2024-05-01; renew"), "{line}");
    let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: ServerName::try_from("dam.example.com").unwrap(),
        presented: vec!["localhost".into(), "127.0.0.1".into()],
    });
    let line = explain("dam.example.com", &name).unwrap();
    assert!(line.contains("issued for another name (localhost, 127.0.0.1); give this very"), "{line}");
    let required = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
    assert_eq!(
        explain("h:443", &required).unwrap(),
        "h:443 requires a client certificate: give one with --client-cert FILE and --client-key FILE"
    );
    let refused = explain("h", &rustls::Error::AlertReceived(AlertDescription::UnknownCA)).unwrap();
    assert!(refused.contains("refused the TLS handshake (UnknownCA)"), "{refused}");
    // Not a matter of trust: left to the ordinary transport error.
    assert!(explain("h", &rustls::Error::AlertReceived(AlertDescription::ProtocolVersion)).is_none());
    assert!(explain("h", &rustls::Error::DecryptError).is_none());
}

#[test]
fn the_rustls_error_is_found_inside_an_io_error() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    let outer = Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, inner.clone()));
    assert_eq!(rustls_error(&outer), Some(&inner));
    let twice = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, inner.clone()));
    assert_eq!(rustls_error(&Outer(twice)), Some(&inner));
    let plain = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(rustls_error(&plain), None);
}

#[test]
fn ca_file_problems_name_the_flag_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.ca_file = Some(dir.path().join("missing.pem"));
    let error = format!("{:#}", check_tls(&config).unwrap_err());
    assert!(
        error.starts_with(&format!("--ca-file {}: ", dir.path().join("missing.pem").display())),
        "{error}"
    );
    assert!(error.contains("No such file"), "{error}");
    config.ca_file = Some(file(&dir, "key-only.pem", &[KEY_A]));
    let error = format!("{:#}", check_tls(&config).unwrap_err());
    assert!(error.ends_with("key-only.pem: no PEM certificate in the file"), "{error}");
    config.ca_file = Some(file(&dir, "two.pem", &[CERT_A, CERT_B]));
    assert_eq!(Material::load(&config, &provider()).unwrap().pins, vec![der(CERT_A), der(CERT_B)]);
}

#[test]
fn client_certificates_are_read_and_checked_against_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.client_cert = Some(file(&dir, "a.pem", &[CERT_A]));
    config.client_key = Some(file(&dir, "a.key", &[KEY_A]));
    let identity = Material::load(&config, &provider()).unwrap().identity.unwrap();
    assert_eq!(identity.cert, vec![der(CERT_A)]);
    // One file holding both.
    config.client_cert = Some(file(&dir, "both.pem", &[CERT_A, KEY_A]));
    config.client_key = None;
    assert!(Material::load(&config, &provider()).unwrap().identity.is_some());
    // A certificate alone.
    config.client_cert = Some(dir.path().join("a.pem"));
    let error = format!("{:#}", check_tls(&config).unwrap_err());
    assert!(
        error.ends_with("a.pem: no PEM private key in the file: give the key with --client-key FILE"),
        "{error}"
    );
    // The key of another certificate.
    config.client_key = Some(file(&dir, "b.key", &[KEY_B]));
    let error = format!("{:#}", check_tls(&config).unwrap_err());
    assert!(error.contains("b.key: the key does not belong to the certificate of --client-cert"), "{error}");
    // Not a key at all.
    config.client_key = Some(dir.path().join("a.pem"));
    let error = format!("{:#}", check_tls(&config).unwrap_err());
    assert!(
        error.starts_with("--client-key ") && error.ends_with("a.pem: no PEM private key in the file"),
        "{error}"
    );
    // A key without a certificate.
    config.client_cert = None;
    let error = format!("{:#}", check_tls(&config).unwrap_err());
    assert!(error.ends_with("give the certificate with --client-cert"), "{error}");
}

#[test]
fn a_400_after_an_unanswered_request_for_a_client_certificate_says_so() {
    let url = Url::parse("https://dam.example.com:8443/api/assets.json").unwrap();
    let probe = Arc::new(NoClientCert::default());
    let watch = ClientCertWatch(Some(probe.clone()));
    assert!(watch.check(&url, StatusCode::BAD_REQUEST).is_ok(), "no request yet: a plain 400");
    assert!(probe.resolve(&[], &[]).is_none());
    let error = watch.check(&url, StatusCode::BAD_REQUEST).unwrap_err();
    assert_eq!(error.kind, RemoteErrorKind::Tls);
    assert!(error.cause.starts_with("dam.example.com:8443 answered 400 Bad Request after asking"), "{error}");
    assert!(watch.check(&url, StatusCode::OK).is_ok());
    // With a client certificate configured, a 400 is the server's own.
    assert!(ClientCertWatch(None).check(&url, StatusCode::BAD_REQUEST).is_ok());
}
