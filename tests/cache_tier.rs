//! The cache tier of damfs(7): nginx run with `contrib/nginx-cache-tier.conf` (the file as
//! shipped, with its CHANGE values set for the test) in front of `damfs serve`, three damfs
//! mounts through it, each with its own cache, reading the same 50 assets and all their
//! renditions at once. The origin must see each URL, binaries and JSON alike, once; the tier
//! refuses clients that do not authenticate to it, and holds the origin's credentials itself;
//! an expired entry is revalidated (If-Modified-Since for binaries, If-None-Match for JSON)
//! and costs the origin a 304.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::TestServer;
use common::mount::{Mounted, within};
use common::nginx::Nginx;
use damfs::serve::Auth;

/// Assets read through every mount.
const ASSETS: usize = 50;

/// Longest one mount may take to read every asset and rendition.
const READ_ALL: Duration = Duration::from_secs(120);

/// The shipped configuration with the test's values in place of its CHANGE values; each
/// replaced text must be in the file, so the test follows it as it changes.
fn tier_config(
    port: u16,
    origin: &str,
    cache: &Path,
    htpasswd: &Path,
    origin_basic: &str,
    validity: &str,
) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/nginx-cache-tier.conf");
    let mut conf = std::fs::read_to_string(path).expect("contrib/nginx-cache-tier.conf");
    let replacements = [
        ("/var/cache/nginx/damfs", cache.display().to_string()),
        ("listen 8080;", format!("listen 127.0.0.1:{port};")),
        ("/etc/nginx/damfs.htpasswd", htpasswd.display().to_string()),
        ("https://dam.example.com", origin.to_string()),
        ("c3ZjLWRhbTpDSEFOR0UtTUU=", origin_basic.to_string()),
        ("proxy_cache_valid 200 1m;", format!("proxy_cache_valid 200 {validity};")),
        // The test's origin speaks plain HTTP.
        ("proxy_ssl_verify on;", "proxy_ssl_verify off;".to_string()),
        ("proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;", String::new()),
    ];
    for (from, to) in replacements {
        assert!(conf.contains(from), "contrib/nginx-cache-tier.conf no longer holds {from:?}");
        conf = conf.replace(from, &to);
    }
    conf
}

/// One test's world. Fields drop in order: mounts, then nginx, then the origin, then the
/// folder holding them all.
struct Tier {
    mounts: Vec<Mounted>,
    nginx: Nginx,
    origin: TestServer,
    dam: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Tier {
    /// `mounts` mounts through a tier that keeps answers fresh for `validity`.
    fn start(mounts: usize, validity: &str) -> Tier {
        let (tmp, dam) = common::dam_dir();
        for i in 0..ASSETS {
            common::write_png(&dam.join(format!("asset-{i:02}.png")), 40 + (i as u32 % 7), 30, i as u32);
        }
        let origin = TestServer::start_with(
            &dam,
            None,
            Auth { basic: Some(("svc-dam".into(), "origin-secret".into())), ..Auth::default() },
        );
        let htpasswd = tmp.path().join("htpasswd");
        std::fs::write(&htpasswd, "site-farm:{PLAIN}tier-secret\n").unwrap();
        let password = tmp.path().join("tier-password");
        std::fs::write(&password, "tier-secret\n").unwrap();
        let origin_basic = base64::engine::general_purpose::STANDARD.encode("svc-dam:origin-secret");
        let cache = tmp.path().join("tier-cache");
        let nginx = Nginx::start_http(&tmp.path().join("nginx"), |port| {
            tier_config(port, &origin.url(), &cache, &htpasswd, &origin_basic, validity)
        });
        let url = format!("http://127.0.0.1:{}", nginx.port);
        let password = password.display().to_string();
        let mounts = (0..mounts)
            .map(|_| Mounted::start(&url, &["--user", "site-farm", "--password-file", &password]))
            .collect();
        Tier { mounts, nginx, origin, dam, _tmp: tmp }
    }
}

/// Reads every asset and every rendition through `mount`; returns the assets' bytes.
fn read_everything(mount: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut originals = BTreeMap::new();
    for i in 0..ASSETS {
        let name = format!("asset-{i:02}.png");
        let bytes = std::fs::read(mount.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let renditions = mount.join(".renditions").join(&name);
        let listed = std::fs::read_dir(&renditions).unwrap_or_else(|e| panic!("{name} renditions: {e}"));
        let mut count = 0;
        for entry in listed {
            let path = entry.unwrap().path();
            let rendition = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!rendition.is_empty(), "{} is empty", path.display());
            count += 1;
        }
        assert_eq!(count, 5, "{name}: the sample DAM makes five renditions");
        originals.insert(name, bytes);
    }
    originals
}

#[test]
fn three_mounts_behind_one_tier_cost_the_origin_one_get_per_url() {
    let tier = Tier::start(3, "1m");
    let readers: Vec<_> = tier
        .mounts
        .iter()
        .map(|m| {
            let root = m.mountpoint.clone();
            std::thread::spawn(move || {
                within(READ_ALL, "reading every asset", move || read_everything(&root))
            })
        })
        .collect();
    for (reader, mount) in readers.into_iter().zip(&tier.mounts) {
        let originals = reader.join().unwrap_or_else(|_| {
            panic!("a mount failed to read\nlog:\n{}\nnginx:\n{}", mount.log_text(), tier.nginx.error_log())
        });
        for (name, bytes) in originals {
            assert_eq!(bytes, std::fs::read(tier.dam.join(&name)).unwrap(), "{name}");
        }
    }

    let requests = tier.origin.catalog().requests();
    let mut gets: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &requests {
        assert_eq!(r.status, 200, "the origin answered {} {} with {}", r.method, r.path, r.status);
        *gets.entry(r.path.as_str()).or_default() += 1;
    }
    let binaries: Vec<&str> = requests.iter().filter(|r| r.is_binary()).map(|r| r.path.as_str()).collect();
    let mut distinct = binaries.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ASSETS * 5, "every original and rendition reached the origin");
    assert_eq!(binaries.len(), distinct.len(), "a binary was fetched from the origin more than once");
    let repeated: Vec<_> = gets.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "the origin saw these more than once: {repeated:?}");
    let stats = damfs::stats::read_from(&tier.mounts[2].mountpoint).unwrap();
    assert_eq!(stats["renditions_fetched"].as_u64(), Some((ASSETS * 5) as u64), "{stats:?}");
}

#[test]
fn the_tier_refuses_clients_that_do_not_authenticate_to_it() {
    let tier = Tier::start(0, "1m");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", tier.nginx.port).parse().unwrap();
    let path = "/content/dam/asset-00.png";
    assert_eq!(common::raw_request(addr, "GET", path, &[]).status, 401);
    let origin_creds = base64::engine::general_purpose::STANDARD.encode("svc-dam:origin-secret");
    let with_origin_creds = [("Authorization", format!("Basic {origin_creds}"))];
    let headers: Vec<(&str, &str)> = with_origin_creds.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        common::raw_request(addr, "GET", path, &headers).status,
        401,
        "the origin's creds are not the tier's"
    );
    let tier_creds = base64::engine::general_purpose::STANDARD.encode("site-farm:tier-secret");
    let value = format!("Basic {tier_creds}");
    let answer = common::raw_request(addr, "GET", path, &[("Authorization", &value)]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, std::fs::read(tier.dam.join("asset-00.png")).unwrap());
    assert_eq!(common::raw_request(addr, "DELETE", path, &[("Authorization", &value)]).status, 403);
    let reached: Vec<_> =
        tier.origin.catalog().requests().iter().map(|r| (r.method.clone(), r.status)).collect();
    assert_eq!(reached, [("GET".to_string(), 200)], "only the authenticated GET reached the origin");
}

#[test]
fn an_expired_entry_costs_the_origin_a_304_not_the_bytes() {
    let tier = Tier::start(0, "1s");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", tier.nginx.port).parse().unwrap();
    let creds =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("site-farm:tier-secret"));
    let binary = "/content/dam/asset-01.png";
    let json = "/content/dam/asset-01.png/jcr:content/metadata.json";
    let get = |path: &str| common::raw_request(addr, "GET", path, &[("Authorization", &creds)]);
    let (first_binary, first_json) = (get(binary), get(json));
    assert_eq!((first_binary.status, first_json.status), (200, 200));
    std::thread::sleep(Duration::from_millis(2100));
    // Stale entries are served at once and revalidated in the background.
    assert_eq!(get(binary).body, first_binary.body);
    assert_eq!(get(json).body, first_json.body);
    let catalog = tier.origin.catalog();
    let seen = |path: &str| -> Vec<(u16, u64)> {
        catalog.requests().iter().filter(|r| r.path == path).map(|r| (r.status, r.bytes)).collect()
    };
    let revalidated = common::mount::wait_until(Duration::from_secs(10), || {
        seen(binary).len() == 2 && seen(json).len() == 2
    });
    assert!(revalidated, "no revalidation reached the origin: {:?}", catalog.requests());
    for path in [binary, json] {
        let answers = seen(path);
        assert_eq!(answers[0].0, 200, "{path}");
        assert_eq!(answers[1], (304, 0), "{path}: the revalidation cost more than a 304");
    }
}
