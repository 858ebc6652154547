//! HTTPS as AEM deployments run it, through a real kernel mount: nginx terminates TLS on
//! loopback in front of `damfs serve`, with certificates made by the `openssl` tool the way
//! admins make them (a private CA and a leaf it signs, a self-signed `openssl req -x509`
//! certificate as in AEM's SSL setup, a client certificate for a mutual-TLS proxy). Each test
//! owns its temp dir, its nginx and its mounts, all stopped in Drop, and bounds every wait.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use common::TestServer;
use common::mount::{Mounted, damfs_bin, force_unmount, wait_until, within};
use common::nginx::Nginx;
use damfs::mount::mountinfo;
use damfs::sample::{SampleOptions, generate};

/// Longest one openssl command may take (an RSA 2048 key takes well under a second).
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a `damfs mount` expected to fail may take (it waits for the remote at most twice
/// the 5 s fetch timeout, plus slack).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(40);

/// Longest a read through a mount may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `command` without standard input, its output collected, within `timeout` (killing
/// it and failing the test otherwise).
fn run(command: &mut Command, timeout: Duration, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if !wait_until(timeout, || child.try_wait().ok().flatten().is_some()) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {timeout:?}");
    }
    child.wait_with_output().expect("cannot collect the output")
}

/// Certificates and keys in a folder, made with the openssl tool.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    /// `NAME.pem` (or `.key`) in the folder.
    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let out = run(Command::new("openssl").args(args).current_dir(&self.dir), OPENSSL_TIMEOUT, "openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `NAME.pem` and `NAME.key`: a self-signed certificate as AEM's SSL setup makes it
    /// (`openssl req -x509 -newkey rsa:2048 -nodes`: CA:TRUE, a common name and no other).
    fn self_signed(&self, name: &str, common_name: &str) {
        let (cert, key, subject) =
            (format!("{name}.pem"), format!("{name}.key"), format!("/CN={common_name}"));
        self.openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &cert, "-days", "30",
            "-subj", &subject,
        ]);
    }

    /// `NAME.pem` and `NAME.key`: a certificate signed by the CA `ca` (its `.pem` and
    /// `.key`) with the X.509 extensions `extensions` (one `key=value` a line).
    fn signed(&self, name: &str, ca: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(self.path(&ext), extensions).unwrap();
        let (csr, key, subject) = (format!("{name}.csr"), format!("{name}.key"), format!("/CN={name}"));
        self.openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &ext,
        ]);
    }

    /// `ca` (a private CA) and `server`, a certificate it signs for 127.0.0.1 and localhost.
    fn private_ca(&self) {
        self.self_signed("ca", "damfs test CA");
        self.signed(
            "server",
            "ca",
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
             extendedKeyUsage=serverAuth\n",
        );
    }
}

/// nginx terminating TLS with the certificate `cert` (files of `pki`) in front of
/// `upstream`; with `client_ca`, it requires a client certificate signed by that CA.
fn tls_proxy(dir: &Path, upstream: &TestServer, pki: &Pki, cert: &str, client_ca: Option<&str>) -> Nginx {
    let client = match client_ca {
        Some(ca) => {
            format!(
                "ssl_client_certificate {}; ssl_verify_client on;",
                pki.path(&format!("{ca}.pem")).display()
            )
        }
        None => String::new(),
    };
    let server = format!(
        "ssl_certificate {}; ssl_certificate_key {}; {client}\n\
         location / {{ proxy_pass http://{}; proxy_buffering off; }}",
        pki.path(&format!("{cert}.pem")).display(),
        pki.path(&format!("{cert}.key")).display(),
        upstream.addr(),
    );
    Nginx::start(&dir.join("nginx"), "ssl", &server)
}

/// One test's world: a temp dir, certificates in it, a sample DAM with its server, and nginx
/// terminating TLS in front. Fields drop in order: nginx and the server before the folder.
struct Site {
    nginx: Nginx,
    /// Serves the sample until the site is dropped.
    _server: TestServer,
    /// The sample DAM.
    root: PathBuf,
    /// An image of the sample, relative to `root`.
    image: String,
    pki: Pki,
    tmp: tempfile::TempDir,
}

impl Site {
    /// `make` writes the certificates; nginx presents `cert`, and requires a client
    /// certificate signed by `client_ca` if given.
    fn new(make: impl FnOnce(&Pki), cert: &str, client_ca: Option<&str>) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::new(tmp.path());
        make(&pki);
        let (server, root, image) = sample(tmp.path());
        let nginx = tls_proxy(tmp.path(), &server, &pki, cert, client_ca);
        Site { nginx, _server: server, root, image, pki, tmp }
    }

    /// `https://127.0.0.1:PORT`.
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.nginx.port)
    }

    /// A fresh cache path in the test's folder.
    fn cache(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs `damfs mount` of this site on `cache` as an admin would (in the background, no
    /// trust from the environment but `env`) where it is expected to fail, and answers its
    /// exit status and stderr. A mount that comes up anyway is taken down, and fails the test.
    fn mount_fails(&self, cache: &Path, args: &[&str], env: &[(&str, &Path)]) -> (ExitStatus, String) {
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                force_unmount(&self.0);
            }
        }
        let mountpoint = self.tmp.path().join("refused");
        std::fs::create_dir_all(&mountpoint).unwrap();
        let _unmount = Unmount(mountpoint.clone());
        let out = run(
            Command::new(damfs_bin())
                .arg("mount")
                .arg(self.url())
                .arg(&mountpoint)
                .arg("--cache-dir")
                .arg(cache)
                .args(args)
                .env_remove("SSL_CERT_FILE")
                .env_remove("SSL_CERT_DIR")
                .envs(env.iter().copied()),
            MOUNT_TIMEOUT,
            "damfs mount",
        );
        assert!(mountinfo::find(&mountpoint).is_none(), "the mount came up");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A sample DAM in `dir` and a server of it; answers the server, the DAM folder, and an
/// image of it (a relative path).
fn sample(dir: &Path) -> (TestServer, PathBuf, String) {
    let root = dir.join("dam");
    generate(&SampleOptions { dir: root.clone(), assets: 8, seed: 11, large_size: 0 }).unwrap();
    let mut stack = vec![root.clone()];
    let mut images = Vec::new();
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jpg" || e == "png") {
                images.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    images.sort();
    let image = images.into_iter().next().expect("the sample has an image");
    (TestServer::start(&root), root, image)
}

/// Reads `rel` through `mount` and checks it is byte-identical to the served file.
fn read_matches(mount: &Mounted, root: &Path, rel: &str) {
    let path = mount.path(rel);
    let got = within(READ_TIMEOUT, "a read through the mount", move || std::fs::read(path));
    let got =
        got.unwrap_or_else(|e| panic!("reading {rel} through the mount: {e}\nlog:\n{}", mount.log_text()));
    assert_eq!(got, std::fs::read(root.join(rel)).unwrap(), "{rel}");
}

/// Mounts `url` in the foreground on a fresh cache with `args` and `env`.
fn mount(url: &str, args: &[&str], env: &[(&str, &Path)]) -> Mounted {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    Mounted::start_with_env(url, &cache, dir, args, env)
}

/// Checks that `stderr` is one line holding every piece of `expected`.
fn one_line_with(stderr: &str, expected: &[&str]) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    for piece in expected {
        assert!(stderr.contains(piece), "{piece:?} missing from: {stderr}");
    }
}

#[test]
fn a_leaf_signed_by_a_private_ca_mounts_with_ca_file_or_with_the_ca_in_ssl_cert_file_or_dir() {
    let site = Site::new(Pki::private_ca, "server", None);
    let ca = site.pki.path("ca.pem");

    let with_flag = mount(&site.url(), &["--ca-file", ca.to_str().unwrap()], &[]);
    read_matches(&with_flag, &site.root, &site.image);
    drop(with_flag);

    let from_file = mount(&site.url(), &[], &[("SSL_CERT_FILE", &ca)]);
    read_matches(&from_file, &site.root, &site.image);
    drop(from_file);

    let dir = site.tmp.path().join("cert-dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&ca, dir.join("company-ca.pem")).unwrap();
    let from_dir = mount(&site.url(), &[], &[("SSL_CERT_DIR", &dir)]);
    read_matches(&from_dir, &site.root, &site.image);
    drop(from_dir);

    // A store named that cannot be read is refused at once, naming the variable.
    let missing = site.tmp.path().join("missing.pem");
    let env = [("SSL_CERT_FILE", missing.as_path())];
    let (status, stderr) = site.mount_fails(&site.cache("cache"), &[], &env);
    assert!(!status.success(), "{stderr}");
    one_line_with(&stderr, &[&format!("SSL_CERT_FILE {}: No such file", missing.display())]);
}

#[test]
fn a_self_signed_certificate_as_aem_setup_makes_it_mounts_with_ca_file_naming_it() {
    // Named for a host the URL does not use: the certificate is trusted as given, exactly.
    let site = Site::new(|pki| pki.self_signed("aem", "aem.example.com"), "aem", None);
    let cert = site.pki.path("aem.pem");

    let pinned = mount(&site.url(), &["-o", &format!("ca_file={}", cert.display())], &[]);
    read_matches(&pinned, &site.root, &site.image);
    drop(pinned);

    let (status, stderr) = site.mount_fails(&site.cache("cache"), &[], &[]);
    assert!(!status.success(), "{stderr}");
    one_line_with(
        &stderr,
        &[
            &format!("the certificate of 127.0.0.1:{} is not trusted", site.nginx.port),
            "a CA certificate used as the server's own (self-signed)",
            "--ca-file FILE",
        ],
    );

    // Another self-signed certificate given is not this one.
    site.pki.self_signed("other", "aem.example.com");
    let other = site.pki.path("other.pem");
    let args = ["--ca-file", other.to_str().unwrap()];
    let (status, stderr) = site.mount_fails(&site.cache("cache"), &args, &[]);
    assert!(!status.success(), "{stderr}");
    one_line_with(&stderr, &["not trusted"]);
}

#[test]
fn an_untrusted_certificate_refuses_the_mount_in_one_line_even_with_a_warm_cache() {
    let site = Site::new(Pki::private_ca, "server", None);
    let ca = site.pki.path("ca.pem");
    let cache = site.cache("cache");

    let (status, stderr) = site.mount_fails(&cache, &[], &[]);
    assert!(!status.success(), "{stderr}");
    let expected = [
        &format!("the certificate of 127.0.0.1:{} is not trusted: unknown issuer", site.nginx.port)[..],
        "--ca-file FILE",
        "system trust store",
    ];
    one_line_with(&stderr, &expected);
    assert!(!stderr.contains("cannot reach"), "{stderr}");

    // Warm the cache through a trusted mount.
    let trusted = ["--ca-file", ca.to_str().unwrap()];
    let mut warm = Mounted::start_with_cache(&site.url(), &cache, tempfile::tempdir().unwrap(), &trusted);
    read_matches(&warm, &site.root, &site.image);
    warm.unmount();

    let (status, stderr) = site.mount_fails(&cache, &[], &[]);
    assert!(!status.success(), "{stderr}");
    one_line_with(&stderr, &expected);

    // The same cache with the remote gone is an outage, not a matter of trust: it serves.
    let url = site.url();
    drop(site.nginx);
    let offline = Mounted::start_with_cache(&url, &cache, tempfile::tempdir().unwrap(), &trusted);
    read_matches(&offline, &site.root, &site.image);
    assert!(offline.log_text().contains("starting offline"), "{}", offline.log_text());
}

#[test]
fn a_mutual_tls_proxy_takes_the_client_certificate_and_says_so_without_one() {
    let make = |pki: &Pki| {
        pki.private_ca();
        pki.signed("client", "ca", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
    };
    let site = Site::new(make, "server", Some("ca"));
    let (ca, cert, key) = (site.pki.path("ca.pem"), site.pki.path("client.pem"), site.pki.path("client.key"));
    let (ca, cert, key) = (ca.to_str().unwrap(), cert.to_str().unwrap(), key.to_str().unwrap());

    let with_flags = mount(&site.url(), &["--ca-file", ca, "--client-cert", cert, "--client-key", key], &[]);
    read_matches(&with_flags, &site.root, &site.image);
    drop(with_flags);

    let options = format!("ca_file={ca},client_cert={cert},client_key={key}");
    let with_options = mount(&site.url(), &["-o", &options], &[]);
    read_matches(&with_options, &site.root, &site.image);
    drop(with_options);

    let (status, stderr) = site.mount_fails(&site.cache("cache"), &["--ca-file", ca], &[]);
    assert!(!status.success(), "{stderr}");
    one_line_with(
        &stderr,
        &[
            &format!(
                "127.0.0.1:{} answered 400 Bad Request after asking for a client certificate",
                site.nginx.port
            ),
            "--client-cert FILE and --client-key FILE",
        ],
    );

    // A bad key file fails at once, naming the flag and the file.
    let args = ["--client-cert", cert, "--client-key", ca];
    let (status, stderr) = site.mount_fails(&site.cache("cache"), &args, &[]);
    assert!(!status.success(), "{stderr}");
    one_line_with(&stderr, &[&format!("--client-key {ca}: no PEM private key in the file")]);
}
