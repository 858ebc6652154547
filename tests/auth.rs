//! Credentials with a lifetime, through real kernel mounts against `damfs serve`: a token
//! file rotated under a live mount, service credentials whose tokens expire every few
//! seconds, and signed download URLs that expire.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use common::faults::{Fault, FaultProxy};
use common::mount::{Mounted, within};
use damfs::serve::{Auth, ImsClient};

/// A DAM folder of `n` small JPEGs, `a00.jpg` …
fn dam_of(n: usize) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dam) = common::dam_dir();
    for i in 0..n {
        common::write_jpeg(&dam.join(format!("a{i:02}.jpg")), 24 + i as u32, 16);
    }
    (tmp, dam)
}

fn bearer(token: &str) -> Auth {
    Auth { bearer: Some(token.into()), ..Auth::default() }
}

/// Reads a file of the mount whole, within 20 s.
fn read(mount: &Mounted, rel: &str) -> std::io::Result<Vec<u8>> {
    let path = mount.path(rel);
    within(Duration::from_secs(20), rel, move || std::fs::read(path))
}

/// Replaces a file's content in place (same inode: only the mtime and length change).
fn rewrite(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_token_file_rotated_before_the_old_token_is_revoked_keeps_cold_reads_working() {
    let (tmp, dam) = dam_of(3);
    let server = TestServer::start_with(&dam, None, bearer("first"));
    let token = tmp.path().join("token");
    rewrite(&token, "first\n");
    let mount = Mounted::start(&server.url(), &["--token-file", token.to_str().unwrap()]);
    assert_eq!(read(&mount, "a00.jpg").unwrap(), std::fs::read(dam.join("a00.jpg")).unwrap());

    // A refresher writes the new token (atomically, as a Kubernetes secret update does),
    // then the old one is revoked.
    let staged = tmp.path().join("token.new");
    rewrite(&staged, r#"{"ok": true, "statusCode": 200, "accessToken": "second"}"#);
    std::fs::rename(&staged, &token).unwrap();
    server.catalog().set_auth(bearer("second"));
    assert_eq!(read(&mount, "a01.jpg").unwrap(), std::fs::read(dam.join("a01.jpg")).unwrap());
    assert!(!mount.log_text().contains("second"), "the token reached the log");
}

#[test]
fn a_token_file_rewritten_after_the_old_token_was_revoked_works_on_the_next_read() {
    let (tmp, dam) = dam_of(3);
    let server = TestServer::start_with(&dam, None, bearer("first"));
    let token = tmp.path().join("token");
    rewrite(&token, "first\n");
    let mount = Mounted::start(&server.url(), &["--token-file", token.to_str().unwrap()]);
    assert!(read(&mount, "a00.jpg").is_ok());

    server.catalog().set_auth(bearer("second"));
    let denied = read(&mount, "a01.jpg").unwrap_err();
    assert_eq!(denied.raw_os_error(), Some(libc::EACCES), "{denied}");
    rewrite(&token, "second\n");
    assert_eq!(read(&mount, "a01.jpg").unwrap(), std::fs::read(dam.join("a01.jpg")).unwrap());
}

/// The test key of `tests/data`, as the AEM Developer Console writes it (CRLF lines).
fn test_key() -> String {
    let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ims-test-key.pem"));
    pem.unwrap().replace('\n', "\r\n")
}

fn ims_client(lifetime: Duration) -> Auth {
    let client = ImsClient { client_id: "cid".into(), client_secret: "csecret".into(), lifetime };
    Auth { ims: Some(client), ..Auth::default() }
}

/// Reads one cold asset after another for `span`; every read must succeed. Returns how
/// many were read.
fn read_for(mount: &Mounted, dam: &Path, n: usize, span: Duration) -> usize {
    let started = Instant::now();
    let mut read_count = 0;
    while started.elapsed() < span {
        let name = format!("a{:02}.jpg", read_count % n);
        let bytes = read(mount, &name).unwrap_or_else(|e| panic!("{name}: {e}\nlog:\n{}", mount.log_text()));
        assert_eq!(bytes, std::fs::read(dam.join(&name)).unwrap());
        read_count += 1;
        if read_count % n == 0 {
            // Every asset is cached now: evict them so that reads stay cold.
            let out = std::process::Command::new(common::mount::damfs_bin())
                .args(["cache", "clear", "--drop-from-mount", "--cache-dir"])
                .arg(&mount.cache_dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    read_count
}

fn status_of(mount: &Mounted) -> String {
    let out = std::process::Command::new(common::mount::damfs_bin())
        .arg("status")
        .arg(&mount.mountpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn service_credentials_renew_a_short_lived_token_once_per_lifetime() {
    let (tmp, dam) = dam_of(12);
    let lifetime = Duration::from_secs(2);
    let server = TestServer::start_with(&dam, None, ims_client(lifetime));
    let creds = serde_json::json!({
        "ok": true,
        "statusCode": 200,
        "integration": {
            "imsEndpoint": server.url(),
            "metascopes": "ent_aem_cloud_api",
            "technicalAccount": {"clientId": "cid", "clientSecret": "csecret"},
            "email": "acct@techacct.adobe.com",
            "id": "acct@techacct.adobe.com",
            "org": "org@AdobeOrg",
            "privateKey": test_key(),
        }
    });
    let file = tmp.path().join("service.json");
    std::fs::write(&file, creds.to_string()).unwrap();
    let mount = Mounted::start(&server.url(), &["--credentials-file", file.to_str().unwrap()]);
    let status = status_of(&mount);
    assert!(status.contains("service credentials (JWT)"), "{status}");
    assert!(status.contains("token expires"), "{status}");

    let span = Duration::from_secs(7);
    let started = Instant::now();
    let reads = read_for(&mount, &dam, 12, span);
    let elapsed = started.elapsed();
    let issued = server.catalog().tokens_issued();
    let requests = server.catalog().requests().len();
    // A renewal at 80 % of each lifetime, plus the first token and one in progress.
    let most = (elapsed.as_secs_f64() / (lifetime.as_secs_f64() * 0.8)).ceil() as u64 + 2;
    assert!(issued >= 3, "{issued} tokens over {elapsed:?}: never renewed");
    assert!(issued <= most, "{issued} tokens over {elapsed:?} ({reads} reads): more than one per lifetime");
    assert!(requests as u64 > 10 * issued, "{requests} requests for {issued} tokens");
    assert!(!mount.log_text().contains("ims-"), "a token reached the log");
}

#[test]
fn oauth_server_to_server_credentials_mount_and_read() {
    let (tmp, dam) = dam_of(2);
    let server = TestServer::start_with(&dam, None, ims_client(Duration::from_secs(3600)));
    let creds = serde_json::json!({
        "client_id": "cid",
        "client_secrets": ["csecret"],
        "scopes": ["openid", "AdobeID", "aem.assets"],
        "ims_endpoint": server.url(),
    });
    let file = tmp.path().join("oauth.json");
    std::fs::write(&file, creds.to_string()).unwrap();
    let mount = Mounted::start(&server.url(), &["--credentials-file", file.to_str().unwrap()]);
    assert_eq!(read(&mount, "a00.jpg").unwrap(), std::fs::read(dam.join("a00.jpg")).unwrap());
    assert!(status_of(&mount).contains("service credentials (OAuth)"));
    assert_eq!(server.catalog().tokens_issued(), 1);
}

#[test]
fn refused_service_credentials_stop_the_mount_with_a_clear_error() {
    let (tmp, dam) = dam_of(1);
    let server = TestServer::start_with(&dam, None, ims_client(Duration::from_secs(3600)));
    let creds = serde_json::json!({"client_id": "cid", "client_secret": "wrong", "scopes": "a",
                                   "ims_endpoint": server.url()});
    let file = tmp.path().join("oauth.json");
    std::fs::write(&file, creds.to_string()).unwrap();
    let mountpoint = tmp.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let out = std::process::Command::new(common::mount::damfs_bin())
        .args(["mount", &server.url()])
        .arg(&mountpoint)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--credentials-file")
        .arg(&file)
        .arg("-f")
        .output()
        .unwrap();
    common::mount::force_unmount(&mountpoint);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the secret reached the message: {stderr}");
}

#[test]
fn an_expired_signed_url_is_asked_of_the_dam_again_and_never_gets_the_credentials() {
    let (tmp, dam) = dam_of(2);
    // The DAM wants a password; the blob store is another server, holding the same bytes.
    let auth = Auth { basic: Some(("admin".into(), "s3cret".into())), ..Auth::default() };
    let origin = TestServer::start_with(&dam, None, auth);
    let blob_backend = TestServer::start(&dam);
    let blob = FaultProxy::start(blob_backend.addr());
    let front = FaultProxy::start(origin.addr());
    front.add("/renditions/", Fault::Redirect(blob.url()));
    // The first signed URL has expired.
    blob.add_times("/renditions/original", Fault::Status(403), Some(1));

    let password = tmp.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let mount =
        Mounted::start(&front.url(), &["--user", "admin", "--password-file", password.to_str().unwrap()]);
    assert_eq!(read(&mount, "a00.jpg").unwrap(), std::fs::read(dam.join("a00.jpg")).unwrap());
    let heads = blob.heads();
    let originals = heads.iter().filter(|h| h.contains("/renditions/original")).count();
    assert!(originals >= 2, "no retry reached the blob store: {heads:#?}");
    assert!(
        heads.iter().all(|h| !h.to_ascii_lowercase().contains("authorization")),
        "credentials reached the blob store: {heads:#?}"
    );
    let log = mount.log_text();
    assert!(log.contains("asking the DAM for a fresh URL"), "{log}");
}
