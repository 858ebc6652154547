//! The AEM client against a stub AEM written here (not `damfs serve`): paging, QueryBuilder
//! and its fallback, status mapping, cancellation, ranges, redirects without credentials,
//! preemptive authentication and percent-encoded names. Every test is bounded in time.

#[path = "remote/stub.rs"]
mod stub;

use std::future::Future;
use std::time::{Duration, Instant, UNIX_EPOCH};

use damfs::remote::aem::{AemClient, AemConfig, Credentials, parse_remote_url};
use damfs::remote::{AssetAttrs, Download, EntryKind, Remote, RemoteErrorKind};
use futures_util::StreamExt;
use reqwest::Url;
use serde_json::json;
use stub::{Dam, StubAsset, binary, json_response, serve, status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bound on every test: only a hang reaches it.
const BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(BOUND, test).await.expect("the test hung");
}

fn client(url: &str, credentials: Credentials) -> AemClient {
    let mut config = AemConfig::new(Url::parse(url).unwrap());
    config.credentials = credentials;
    config.connect_timeout = Duration::from_secs(5);
    AemClient::new(config).unwrap()
}

async fn body(download: Download) -> Result<Vec<u8>, damfs::remote::RemoteError> {
    let mut stream = download.body;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

const MODIFIED_SECS: u64 = 1_729_879_917; // Fri Oct 25 2024 18:11:57 GMT+0000

fn sample_dam() -> Dam {
    let mut dam = Dam::new();
    dam.folder("we-retail/en/activities/summer");
    dam.asset("we-retail/en/activities/hiking.jpg", StubAsset::new(&[7u8; 1000], "image/jpeg"));
    dam.asset("we-retail/en/activities/climbing.png", StubAsset::new(b"png bytes", "image/png"));
    let mut odd = StubAsset::new(b"gif", "image/gif");
    odd.metadata =
        json!({"dam:size": "3", "dc:format": ["image/gif"], "cq:tags": "we-retail:activity/hiking"});
    dam.asset("we-retail/en/activities/odd.gif", odd);
    dam
}

#[tokio::test]
async fn listing_pages_through_a_clamp_without_next_links() {
    bounded(async {
        let mut dam = Dam::new();
        for i in 0..57 {
            if i % 10 == 3 {
                dam.folder(&format!("big/folder {i:02}"));
            } else {
                dam.asset(&format!("big/asset {i:02}.jpg"), StubAsset::new(b"x", "image/jpeg"));
            }
        }
        dam.clamp = 7;
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);
        let listing = remote.list_folder("big").await.unwrap();
        let names: Vec<&str> = listing.children.iter().map(|c| c.name.as_str()).collect();
        let expected: Vec<String> = (0..57)
            .map(|i| if i % 10 == 3 { format!("folder {i:02}") } else { format!("asset {i:02}.jpg") })
            .collect();
        assert_eq!(names, expected);
        assert_eq!(listing.children[3].kind, EntryKind::Folder);
        assert_eq!(listing.children[4].kind, EntryKind::Asset);

        let pages = server.seen_under("/api/assets/big.json");
        assert_eq!(pages.len(), 9, "ceil(57 / 7) pages");
        let offsets: Vec<&str> = pages.iter().map(|p| p.params["offset"].as_str()).collect();
        assert_eq!(offsets, ["0", "7", "14", "21", "28", "35", "42", "49", "56"]);
        assert!(pages.iter().all(|p| p.params["limit"] == "1000"));
    })
    .await;
}

#[tokio::test]
async fn listing_of_root_asset_and_missing() {
    bounded(async {
        let mut dam = sample_dam();
        dam.names_only_in_hrefs = true;
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);
        let root = remote.list_folder("").await.unwrap();
        assert_eq!(root.children.len(), 1);
        assert_eq!((root.children[0].name.as_str(), root.children[0].kind), ("we-retail", EntryKind::Folder));
        assert_eq!(server.seen()[0].path, "/api/assets.json");
        let e = remote.list_folder("we-retail/en/activities/hiking.jpg").await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::Other);
        assert!(e.cause.contains("not a folder"), "{e}");
        let e = remote.list_folder("we-retail/nope").await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::NotFound);
        assert_eq!(e.path, "/api/assets/we-retail/nope.json");
    })
    .await;
}

fn by_path(mut attrs: Vec<AssetAttrs>) -> Vec<AssetAttrs> {
    attrs.sort_by(|a, b| a.path.cmp(&b.path));
    attrs
}

#[tokio::test]
async fn folder_attributes_by_querybuilder_and_by_fallback_agree() {
    bounded(async {
        let folder = "we-retail/en/activities";
        let assets: Vec<String> = ["hiking.jpg", "climbing.png", "odd.gif", "gone.jpg"]
            .iter()
            .map(|n| format!("{folder}/{n}"))
            .collect();
        let modified = Some(UNIX_EPOCH + Duration::from_secs(MODIFIED_SECS));
        let expected = by_path(vec![
            AssetAttrs {
                path: format!("{folder}/hiking.jpg"),
                size: Some(1000),
                modified,
                format: Some("image/jpeg".into()),
                ..AssetAttrs::default()
            },
            AssetAttrs {
                path: format!("{folder}/climbing.png"),
                size: Some(9),
                modified,
                format: Some("image/png".into()),
                ..AssetAttrs::default()
            },
            AssetAttrs {
                path: format!("{folder}/odd.gif"),
                size: Some(3),
                modified,
                format: Some("image/gif".into()),
                ..AssetAttrs::default()
            },
        ]);

        let server = sample_dam().serve().await;
        let remote = client(&server.url(), Credentials::None);
        assert_eq!(by_path(remote.folder_attrs(folder, &assets).await.unwrap()), expected);
        let queries = server.seen_under("/bin/querybuilder.json");
        assert_eq!(queries.len(), 1);
        let q = &queries[0].params;
        assert_eq!(q["path"], "/content/dam/we-retail/en/activities");
        assert_eq!(
            (q["path.flat"].as_str(), q["type"].as_str(), q["p.limit"].as_str()),
            ("true", "dam:Asset", "1000")
        );
        assert_eq!(q["p.guessTotal"], "true");
        assert_eq!(q["p.hits"], "selective");
        assert_eq!(
            q["p.properties"],
            "jcr:path jcr:content/jcr:lastModified jcr:content/dam:assetState jcr:content/metadata/dam:size \
             jcr:content/metadata/dc:format"
        );
        assert_eq!(server.seen().len(), 1, "one request for the whole folder");

        for refusal in [403, 404] {
            let mut dam = sample_dam();
            dam.refuse_querybuilder = Some(refusal);
            let server = dam.serve().await;
            let remote = client(&server.url(), Credentials::None);
            assert_eq!(by_path(remote.folder_attrs(folder, &assets).await.unwrap()), expected, "{refusal}");
            assert_eq!(server.seen_under("/bin/querybuilder.json").len(), 1);
            assert_eq!(server.seen_under("/content/dam/").len(), 4, "one request per asset");
            // The refusal is remembered: the next folder goes straight to the fallback.
            let names = vec!["hiking.jpg".to_string()];
            let again = remote.folder_attrs(folder, &names).await.unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(server.seen_under("/bin/querybuilder.json").len(), 1);
        }

        // Cloud Service renders the metadata child as {}: metadata.json is asked too.
        let mut dam = sample_dam();
        dam.refuse_querybuilder = Some(403);
        dam.empty_metadata_child = true;
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);
        assert_eq!(by_path(remote.folder_attrs(folder, &assets).await.unwrap()), expected);
        assert_eq!(server.seen_under("/content/dam/").len(), 4 + 3);
    })
    .await;
}

#[tokio::test]
async fn statuses_map_to_kinds() {
    bounded(async {
        let server = serve(|seen| {
            Some(match seen.decoded_path().as_str() {
                "/api/assets/denied.json" => status(401),
                "/api/assets/forbidden.json" => status(403),
                "/api/assets/broken.json" => status(500),
                "/api/assets/choices.json" => status(300),
                "/api/assets/malformed.json" => json_response_text("{\"class\": [\"assets/folder\"], "),
                "/api/assets/html.json" => json_response_text("<html>login</html>"),
                "/api/assets/entities.json" => {
                    json_response(&json!({"class": ["assets/folder"], "entities": 5}))
                }
                _ => status(404),
            })
        })
        .await;
        let remote = client(&server.url(), Credentials::None);
        let cases = [
            ("denied", RemoteErrorKind::Denied, "HTTP 401 Unauthorized"),
            ("forbidden", RemoteErrorKind::Denied, "HTTP 403 Forbidden"),
            ("missing", RemoteErrorKind::NotFound, "HTTP 404 Not Found"),
            ("broken", RemoteErrorKind::Other, "HTTP 500 Internal Server Error"),
            ("choices", RemoteErrorKind::Other, "HTTP 300 Multiple Choices"),
            (
                "malformed",
                RemoteErrorKind::Other,
                "invalid JSON at line 1 column 29: EOF while parsing a value",
            ),
            ("html", RemoteErrorKind::Other, "invalid JSON at line 1 column 1: expected value"),
            ("entities", RemoteErrorKind::Other, "\"entities\" is not a list"),
        ];
        for (folder, kind, cause) in cases {
            let e = remote.list_folder(folder).await.unwrap_err();
            assert_eq!((e.kind, e.cause.as_str()), (kind, cause), "{folder}");
            assert_eq!(e.path, format!("/api/assets/{folder}.json"));
        }
        let e = remote.asset_metadata("missing.jpg").await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::NotFound);
        let e = remote.fetch("missing.jpg", "original", None).await.unwrap_err();
        assert_eq!(
            (e.kind, e.path.as_str()),
            (RemoteErrorKind::NotFound, "/content/dam/missing.jpg/jcr:content/renditions/original")
        );
    })
    .await;
}

fn json_response_text(text: &'static str) -> axum::response::Response {
    axum::response::Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from(text))
        .unwrap()
}

#[tokio::test]
async fn check_names_the_cause() {
    bounded(async {
        let mut dam = sample_dam();
        dam.auth = Some("Bearer right".into());
        let server = dam.serve().await;
        let good = client(&server.url(), Credentials::Bearer("right".into()));
        good.check("").await.unwrap();
        good.check("we-retail/en").await.unwrap();
        assert_eq!(server.seen()[1].params["limit"], "1");
        let e = good.check("we-retail/en/activities/hiking.jpg").await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::Other);
        assert!(e.cause.contains("an asset, not a folder"), "{e}");
        assert_eq!(good.check("nowhere").await.unwrap_err().kind, RemoteErrorKind::NotFound);

        let bad = client(&server.url(), Credentials::Bearer("wrong".into()));
        let e = bad.check("").await.unwrap_err();
        assert_eq!(
            (e.kind, e.cause.as_str()),
            (RemoteErrorKind::Denied, "the remote refused the credentials (HTTP 401)")
        );
        assert!(!e.to_string().contains("wrong"));

        let not_aem = serve(|_| Some(json_response(&json!({"hello": "world"})))).await;
        let e = client(&not_aem.url(), Credentials::None).check("").await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::Other);
        assert!(e.cause.contains("not an AEM Assets folder"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_stalled_server_is_cancelled_by_the_caller() {
    bounded(async {
        let server = serve(|_| None).await;
        let remote = client(&server.url(), Credentials::None);
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_millis(300), remote.list_folder("a")).await;
        assert!(outcome.is_err(), "the call must still be pending at the deadline");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5), "{elapsed:?}");
        let outcome =
            tokio::time::timeout(Duration::from_millis(300), remote.fetch("a.jpg", "original", Some(0..10)))
                .await;
        assert!(outcome.is_err());
        assert_eq!(server.seen().len(), 2);

        // A body that stops mid-way is cancellable too.
        let trickle = serve(|_| {
            let stream = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first"))
            })
            .chain(futures_util::stream::pending());
            Some(axum::response::Response::new(axum::body::Body::from_stream(stream)))
        })
        .await;
        let remote = client(&trickle.url(), Credentials::None);
        let download = remote.fetch("a.jpg", "original", None).await.unwrap();
        let mut stream = download.body;
        assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"first");
        assert!(tokio::time::timeout(Duration::from_millis(300), stream.next()).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn unreachable_is_a_timeout_and_a_short_body_is_other() {
    bounded(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let remote = client(&format!("http://127.0.0.1:{port}/"), Credentials::None);
        let e = remote.list_folder("").await.unwrap_err();
        assert_eq!((e.kind, e.cause.as_str()), (RemoteErrorKind::Timeout, "unreachable: connection refused"));

        // A body shorter than its Content-Length.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let short = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&[b' '; 50]).await;
                let _ = socket.shutdown().await;
            }
        });
        let remote = client(&format!("http://{addr}/"), Credentials::None);
        let download = remote.fetch("a.jpg", "original", None).await.unwrap();
        assert_eq!(download.total_size, Some(100));
        let e = body(download).await.unwrap_err();
        assert_eq!(
            (e.kind, e.cause.as_str()),
            (RemoteErrorKind::Other, "body cut short: connection closed early")
        );
        assert_eq!(e.path, "/content/dam/a.jpg/jcr:content/renditions/original");
        let e = remote.asset_metadata("a.jpg").await.unwrap_err();
        assert_eq!(
            (e.kind, e.cause.as_str()),
            (RemoteErrorKind::Other, "body cut short: connection closed early")
        );
        short.abort();
    })
    .await;
}

#[tokio::test]
async fn ranges_are_asked_and_answers_read() {
    bounded(async {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mut dam = Dam::new();
        let mut asset = StubAsset::new(&bytes, "image/jpeg");
        asset.renditions.push(("cq5dam.web.1280.1280.jpeg".into(), b"web".to_vec()));
        dam.asset("a/b.jpg", asset);
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);

        let part = remote.fetch("a/b.jpg", "original", Some(1000..1100)).await.unwrap();
        assert_eq!((part.offset, part.total_size), (1000, Some(5000)));
        assert_eq!(body(part).await.unwrap(), &bytes[1000..1100]);
        assert_eq!(server.seen().last().unwrap().header("range").as_deref(), Some("bytes=1000-1099"));

        let whole = remote.fetch("a/b.jpg", "original", None).await.unwrap();
        assert_eq!((whole.offset, whole.total_size), (0, Some(5000)));
        assert_eq!(body(whole).await.unwrap(), bytes);
        assert_eq!(server.seen().last().unwrap().header("range"), None);

        let web = remote.fetch("a/b.jpg", "cq5dam.web.1280.1280.jpeg", Some(0..100)).await.unwrap();
        assert_eq!((web.offset, web.total_size), (0, Some(3)));
        assert_eq!(body(web).await.unwrap(), b"web");

        let at_end = remote.fetch("a/b.jpg", "original", Some(5000..6000)).await.unwrap();
        assert_eq!((at_end.offset, at_end.total_size), (5000, Some(5000)));
        assert!(body(at_end).await.unwrap().is_empty());
        let e = remote.fetch("a/b.jpg", "original", Some(6000..7000)).await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::NotFound);
        assert!(e.cause.contains("bytes=6000-6999"), "{e}");

        // A server that ignores Range answers 200 with everything: offset 0.
        let mut dam = Dam::new();
        dam.asset("a/b.jpg", StubAsset::new(&bytes, "image/jpeg"));
        dam.ignore_ranges = true;
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);
        let whole = remote.fetch("a/b.jpg", "original", Some(1000..1100)).await.unwrap();
        assert_eq!((whole.offset, whole.total_size), (0, Some(5000)));
        assert_eq!(body(whole).await.unwrap(), bytes);
    })
    .await;
}

#[tokio::test]
async fn redirects_to_another_host_never_carry_credentials() {
    bounded(async {
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let blob_bytes = bytes.clone();
        let blob = serve(move |seen| Some(binary(&blob_bytes, seen.header("range").as_deref()))).await;
        let credentials = Credentials::Basic { user: "svc-dam".into(), password: "s3cret".into() };
        let expected_auth = "Basic c3ZjLWRhbTpzM2NyZXQ=";

        // `localhost` against `127.0.0.1` (another host and port), then `127.0.0.1` on
        // another port (same host name, another port).
        for blob_base in [format!("http://localhost:{}/", blob.addr.port()), blob.url()] {
            let mut dam = Dam::new();
            dam.asset("we retail/é.jpg", StubAsset::new(&bytes, "image/jpeg"));
            dam.auth = Some(expected_auth.into());
            dam.redirect_binaries = Some(blob_base.clone());
            let server = dam.serve().await;
            let remote = client(&server.url(), credentials.clone());
            let before = blob.seen().len();

            let whole = remote.fetch("we retail/é.jpg", "original", None).await.unwrap();
            assert_eq!(body(whole).await.unwrap(), bytes, "{blob_base}");
            let part = remote.fetch("we retail/é.jpg", "original", Some(10..20)).await.unwrap();
            assert_eq!((part.offset, part.total_size), (10, Some(3000)));
            assert_eq!(body(part).await.unwrap(), &bytes[10..20]);

            let dam_seen = server.seen();
            assert_eq!(dam_seen.len(), 2);
            assert!(dam_seen.iter().all(|s| s.header("authorization").as_deref() == Some(expected_auth)));
            let blob_seen = &blob.seen()[before..];
            assert_eq!(blob_seen.len(), 2, "{blob_base}");
            assert!(
                blob_seen.iter().all(|s| s.header("authorization").is_none()),
                "{blob_base}: {blob_seen:?}"
            );
            assert!(blob_seen.iter().all(|s| s.header("referer").is_none()), "{blob_base}: {blob_seen:?}");
            assert_eq!(blob_seen[1].header("range").as_deref(), Some("bytes=10-19"));
            assert_eq!(blob_seen[0].decoded_path(), "/blob/we retail/é.jpg/original");
        }

        // A redirect on the same host and port keeps the credentials.
        let same = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let same_for_handler = same.clone();
        let server = serve(move |seen| {
            if seen.header("authorization").as_deref() != Some(expected_auth) {
                return Some(status(401));
            }
            Some(match seen.path.as_str() {
                "/blob/x" => binary(b"same host", None),
                _ => {
                    let base = same_for_handler.lock().unwrap().clone().unwrap();
                    axum::response::Response::builder()
                        .status(307)
                        .header("location", format!("{base}blob/x"))
                        .body(axum::body::Body::empty())
                        .unwrap()
                }
            })
        })
        .await;
        *same.lock().unwrap() = Some(server.url());
        let remote = client(&server.url(), credentials);
        let download = remote.fetch("x.jpg", "original", None).await.unwrap();
        assert_eq!(body(download).await.unwrap(), b"same host");
        assert_eq!(server.seen().len(), 2);
    })
    .await;
}

/// A server whose paths redirect (with `{a}` and `{b}` in a target standing for the two
/// servers' base URLs) or answer bytes; it records every request.
async fn hop_server(
    routes: Vec<(&'static str, &'static str)>,
    bases: std::sync::Arc<std::sync::Mutex<(String, String)>>,
) -> stub::Server {
    serve(move |seen| {
        let target = routes.iter().find(|(path, _)| *path == seen.path).map(|(_, t)| *t)?;
        Some(match target.strip_prefix("bytes:") {
            Some(bytes) => binary(bytes.as_bytes(), None),
            None => {
                let (a, b) = bases.lock().unwrap().clone();
                let location = target.replace("{a}", &a).replace("{b}", &b);
                axum::response::Response::builder()
                    .status(302)
                    .header("location", location)
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        })
    })
    .await
}

#[tokio::test]
async fn once_a_redirect_chain_leaves_the_dam_no_hop_carries_credentials() {
    bounded(async {
        let credentials = Credentials::Basic { user: "svc-dam".into(), password: "s3cret".into() };
        let auth = "Basic c3ZjLWRhbTpzM2NyZXQ=";
        // The original of `two.jpg` goes DAM -> B -> B; `home.jpg` DAM -> B -> B -> DAM;
        // `three.jpg` DAM -> DAM -> B -> DAM (three hops after the first request).
        let dam_routes = vec![
            ("/content/dam/two.jpg/jcr:content/renditions/original", "{b}b/1"),
            ("/content/dam/home.jpg/jcr:content/renditions/original", "{b}b/home"),
            ("/content/dam/three.jpg/jcr:content/renditions/original", "{a}a/second"),
            ("/a/second", "{b}b/out"),
            ("/a/back", "bytes:came back"),
        ];
        let blob_routes = vec![
            ("/b/1", "/b/2"),
            ("/b/2", "bytes:two hops"),
            ("/b/home", "{b}b/home2"),
            ("/b/home2", "{a}a/back"),
            ("/b/out", "{a}a/back"),
        ];
        let bases = std::sync::Arc::new(std::sync::Mutex::new((String::new(), String::new())));
        let dam = hop_server(dam_routes, bases.clone()).await;
        let blob = hop_server(blob_routes, bases.clone()).await;
        *bases.lock().unwrap() = (dam.url(), blob.url());
        let remote = client(&dam.url(), credentials);

        // (asset, bytes it reads, (hop, whether it carries Authorization))
        type Case<'a> = (&'a str, &'a [u8], &'a [(&'a str, bool)]);
        let cases: [Case; 3] = [
            ("two.jpg", b"two hops", &[("/b/1", false), ("/b/2", false)]),
            ("home.jpg", b"came back", &[("/b/home", false), ("/b/home2", false), ("/a/back", false)]),
            ("three.jpg", b"came back", &[("/a/second", true), ("/b/out", false), ("/a/back", false)]),
        ];
        for (asset, expected, hops) in cases {
            let (dam_before, blob_before) = (dam.seen().len(), blob.seen().len());
            let download = remote.fetch(asset, "original", None).await.unwrap();
            assert_eq!(body(download).await.unwrap(), expected, "{asset}");
            let mut seen: Vec<stub::Seen> = dam.seen()[dam_before..].to_vec();
            seen.extend_from_slice(&blob.seen()[blob_before..]);
            let first = &seen[0];
            assert_eq!(first.header("authorization").as_deref(), Some(auth), "{asset}: the DAM itself");
            for (path, carries) in hops {
                let hop =
                    seen.iter().find(|s| s.path == *path).unwrap_or_else(|| panic!("{asset}: no {path}"));
                assert_eq!(
                    hop.header("authorization").is_some(),
                    *carries,
                    "{asset}: Authorization on {path}: {:?}",
                    hop.headers
                );
                assert!(hop.header("referer").is_none(), "{asset}: Referer on {path}");
            }
            assert_eq!(seen.len(), hops.len() + 1, "{asset}: {seen:?}");
        }

        // A loop is cut off and named.
        let looping = hop_server(
            vec![(
                "/content/dam/l.jpg/jcr:content/renditions/original",
                "{a}content/dam/l.jpg/jcr:content/renditions/original",
            )],
            bases.clone(),
        )
        .await;
        *bases.lock().unwrap() = (looping.url(), blob.url());
        let remote = client(&looping.url(), Credentials::None);
        let error = remote.fetch("l.jpg", "original", None).await.unwrap_err();
        assert_eq!(error.kind, RemoteErrorKind::Other);
        assert!(error.cause.contains("too many redirects"), "{error}");
        assert_eq!(looping.seen().len(), 11);
    })
    .await;
}

#[tokio::test]
async fn credentials_are_sent_preemptively() {
    bounded(async {
        let server =
            serve(|_| Some(json_response(&json!({"class": ["assets/folder"], "entities": []})))).await;
        let cases = [
            (
                Credentials::Basic { user: "admin".into(), password: "admin".into() },
                Some("Basic YWRtaW46YWRtaW4="),
            ),
            (Credentials::Bearer("eyJhbGciOi.token".into()), Some("Bearer eyJhbGciOi.token")),
            (Credentials::None, None),
        ];
        for (credentials, header) in cases {
            let before = server.seen().len();
            let debug = format!("{credentials:?}");
            let remote = client(&server.url(), credentials);
            let debug = format!("{debug} {remote:?}");
            assert!(
                !debug.contains("YWRtaW46")
                    && !debug.contains("eyJhbGciOi")
                    && !debug.contains("\"admin\" }"),
                "{debug}"
            );
            remote.list_folder("").await.unwrap();
            let seen = &server.seen()[before..];
            assert_eq!(seen.len(), 1, "no challenge round trip");
            assert_eq!(seen[0].header("authorization").as_deref(), header);
            let agent = seen[0].header("user-agent").unwrap();
            assert!(agent.starts_with("damfs/"), "{agent}");
            assert!(
                seen[0].params.keys().all(|k| k == "offset" || k == "limit"),
                "no cache-busting parameters"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn unicode_names_round_trip() {
    bounded(async {
        let folder = "we retail/Café +1";
        let name = "日本 été+plus (2).jpg";
        let path = format!("{folder}/{name}");
        let mut dam = Dam::new();
        dam.asset(&path, StubAsset::new(b"unicode bytes", "image/jpeg"));
        dam.names_only_in_hrefs = true;
        let server = dam.serve().await;
        let (base, root) = parse_remote_url(&format!("{}content/dam/we%20retail/", server.url())).unwrap();
        assert_eq!(root, "we retail");
        let remote = client(base.as_str(), Credentials::None);
        remote.check(&root).await.unwrap();

        let listing = remote.list_folder(folder).await.unwrap();
        assert_eq!(listing.children.len(), 1);
        assert_eq!(listing.children[0].name, name);
        let seen = server.seen();
        let raw = &seen.last().unwrap().path;
        assert_eq!(raw, "/api/assets/we%20retail/Caf%C3%A9%20%2B1.json");

        let attrs = remote.folder_attrs(folder, std::slice::from_ref(&path)).await.unwrap();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].path, path);
        let download = remote.fetch(&path, "original", None).await.unwrap();
        assert_eq!(body(download).await.unwrap(), b"unicode bytes");
        let raw = server.seen().last().unwrap().path.clone();
        assert_eq!(
            raw,
            "/content/dam/we%20retail/Caf%C3%A9%20%2B1/%E6%97%A5%E6%9C%AC%20%C3%A9t%C3%A9%2Bplus%20%282%29.jpg/jcr:content/renditions/original"
        );
        let metadata = remote.asset_metadata(&path).await.unwrap();
        assert_eq!(metadata.size, Some(13));
        assert_eq!(remote.search("we retail", "été", 10).await.unwrap(), vec![path.clone()]);
    })
    .await;
}

#[tokio::test]
async fn metadata_renditions_and_tags() {
    bounded(async {
        let mut dam = sample_dam();
        dam.tags.insert(
            "/content/cq:tags/we-retail/activity/hiking".into(),
            json!({"jcr:title": "Hiking", "jcr:title.fr": "Randonnée"}),
        );
        dam.tags.insert(
            "/content/cq:tags/we-retail/old".into(),
            json!({"jcr:title": "Old", "cq:movedTo": "/content/cq:tags/we-retail/new"}),
        );
        dam.tags.insert("/content/cq:tags/we-retail/new".into(), json!({"jcr:title": "New"}));
        dam.tags.insert("/content/cq:tags/loop/a".into(), json!({"cq:movedTo": "/content/cq:tags/loop/b"}));
        dam.tags.insert("/content/cq:tags/loop/b".into(), json!({"cq:movedTo": "/content/cq:tags/loop/a"}));
        dam.tags.insert("/content/cq:tags/default/plain tag".into(), json!({}));
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);

        let m = remote.asset_metadata("we-retail/en/activities/odd.gif").await.unwrap();
        assert_eq!((m.size, m.format.as_deref()), (Some(3), Some("image/gif")));
        assert_eq!(m.tags, vec!["we-retail:activity/hiking"]);
        assert_eq!(m.title, None);

        let r = remote.renditions("we-retail/en/activities/hiking.jpg").await.unwrap();
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["original", "cq5dam.thumbnail.48.48.png"]);
        assert_eq!((r[0].size, r[0].mime.as_deref()), (Some(1000), Some("image/jpeg")));

        let t = remote.tag("we-retail:activity/hiking").await.unwrap();
        assert_eq!((t.resolved_id.as_str(), t.title.as_str()), ("we-retail:activity/hiking", "Hiking"));
        let t = remote.tag("/content/cq:tags/we-retail/old").await.unwrap();
        assert_eq!(
            (t.id.as_str(), t.resolved_id.as_str(), t.title.as_str()),
            ("/content/cq:tags/we-retail/old", "we-retail:new", "New")
        );
        let t = remote.tag("loop:a").await.unwrap();
        assert_eq!(t.resolved_id, "loop:b");
        let t = remote.tag("plain tag").await.unwrap();
        assert_eq!(t.title, "plain tag");
        assert!(server.seen().iter().any(|s| s.path == "/content/cq:tags/default/plain%20tag.json"));
        let e = remote.tag("we-retail:nothing").await.unwrap_err();
        assert_eq!(e.kind, RemoteErrorKind::NotFound);
        // Not at /content/cq:tags: /etc/tags was tried too.
        assert!(server.seen().iter().any(|s| s.path == "/etc/tags/we-retail/nothing.json"));

        let found = remote.search("we-retail", "hiking", 10).await.unwrap();
        assert_eq!(found, vec!["we-retail/en/activities/hiking.jpg"]);
        let q = server.seen().last().unwrap().params.clone();
        assert_eq!(
            (q["fulltext"].as_str(), q["p.limit"].as_str(), q["type"].as_str()),
            ("hiking", "10", "dam:Asset")
        );

        // renditions.2.json refused with 300 (too many nodes): the Assets API list is used.
        let mut dam = sample_dam();
        dam.renditions_json_status = Some(300);
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);
        let r = remote.renditions("we-retail/en/activities/hiking.jpg").await.unwrap();
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["original", "cq5dam.thumbnail.48.48.png"]);
        assert!(
            server
                .seen()
                .iter()
                .any(|s| s.path == "/api/assets/we-retail/en/activities/hiking.jpg/renditions.json")
        );

        // Tags only under /etc/tags (older instances): found, and that root is tried first next.
        let mut dam = Dam::new();
        dam.tags.insert("/etc/tags/geo/a".into(), json!({"jcr:title": "A"}));
        dam.tags.insert("/etc/tags/geo/b".into(), json!({"jcr:title": "B"}));
        let server = dam.serve().await;
        let remote = client(&server.url(), Credentials::None);
        assert_eq!(remote.tag("geo:a").await.unwrap().title, "A");
        assert_eq!(server.seen().len(), 2);
        assert_eq!(remote.tag("geo:b").await.unwrap().title, "B");
        assert_eq!(server.seen().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn broken_paging_is_an_error_not_a_loop() {
    bounded(async {
        // A server that ignores `offset`, with and without a total.
        for total in [Some(50), None] {
            let server = serve(move |_| {
                let mut page = json!({"class": ["assets/folder"], "entities": [
                    {"class": ["assets/asset"], "properties": {"name": "a.jpg"}},
                    {"class": ["assets/asset"], "properties": {"name": "b.jpg"}}]});
                if let Some(total) = total {
                    page["properties"] = json!({"srn:paging": {"total": total, "offset": 0, "limit": 2}});
                }
                Some(json_response(&page))
            })
            .await;
            let remote = client(&server.url(), Credentials::None);
            let e = remote.list_folder("f").await.unwrap_err();
            assert_eq!(e.kind, RemoteErrorKind::Other);
            assert!(e.cause.contains("paging is broken"), "{e}");
            // The first page, then (with a total) at most the eight asked at once after it.
            let most = if total.is_some() { 9 } else { 2 };
            assert!((2..=most).contains(&server.seen().len()), "{total:?}: {} requests", server.seen().len());
        }
        // Without a total, paging ends at the first empty page.
        let server = serve(|seen| {
            let offset: usize = seen.params["offset"].parse().unwrap();
            let entities: Vec<_> = (offset..10.min(offset + 3))
                .map(|i| json!({"class": ["assets/asset"], "properties": {"name": format!("{i}.jpg")}}))
                .collect();
            Some(json_response(&json!({"class": ["assets/folder"], "entities": entities})))
        })
        .await;
        let remote = client(&server.url(), Credentials::None);
        assert_eq!(remote.list_folder("f").await.unwrap().children.len(), 10);
        assert_eq!(server.seen().len(), 5);
    })
    .await;
}

#[tokio::test]
async fn querybuilder_pages_when_it_says_more() {
    bounded(async {
        let server = serve(|seen| {
            let offset: usize = seen.params.get("p.offset").map_or(0, |o| o.parse().unwrap());
            let hits: Vec<_> = (offset..5.min(offset + 2))
                .map(|i| json!({"jcr:path": format!("/content/dam/f/{i}.jpg"), "jcr:content": {"metadata": {"dam:size": i}}}))
                .collect();
            Some(json_response(&json!({"success": true, "hits": hits, "more": offset + 2 < 5, "total": 5})))
        })
        .await;
        let remote = client(&server.url(), Credentials::None);
        let attrs = remote.folder_attrs("f", &[]).await.unwrap();
        let sizes: Vec<Option<u64>> = attrs.iter().map(|a| a.size).collect();
        assert_eq!(sizes, [Some(0), Some(1), Some(2), Some(3), Some(4)]);
        // The first page's total says how many more there are: they are asked at once.
        let mut offsets: Vec<Option<String>> =
            server.seen().iter().map(|s| s.params.get("p.offset").cloned()).collect();
        offsets.sort();
        assert_eq!(offsets, [None, Some("2".into()), Some("4".into())]);
    })
    .await;
}

#[tokio::test]
async fn querybuilder_pages_past_the_first_are_asked_at_once_and_a_short_total_still_pages() {
    bounded(async {
        // Page 2 of 5 never answers: asked one after the other, page 3 would never be asked.
        let server = serve(|seen| {
            let offset: usize = seen.params.get("p.offset").map_or(0, |o| o.parse().unwrap());
            (offset != 2).then(|| {
                let hits: Vec<_> = (offset..9.min(offset + 2))
                    .map(|i| json!({"jcr:path": format!("/content/dam/f/{i}.jpg")}))
                    .collect();
                json_response(&json!({"success": true, "hits": hits, "more": offset + 2 < 9, "total": 9}))
            })
        })
        .await;
        let remote = client(&server.url(), Credentials::None);
        let attrs = tokio::time::timeout(Duration::from_millis(500), remote.folder_attrs("f", &[])).await;
        assert!(attrs.is_err(), "page 2 never answers");
        let mut offsets: Vec<String> =
            server.seen().iter().filter_map(|s| s.params.get("p.offset").cloned()).collect();
        offsets.sort();
        assert_eq!(offsets, ["2", "4", "6", "8"], "every page the total announced, at once");

        // A total that falls short (p.guessTotal): the pages past it come while `more` says so.
        let server = serve(|seen| {
            let offset: usize = seen.params.get("p.offset").map_or(0, |o| o.parse().unwrap());
            let hits: Vec<_> = (offset..7.min(offset + 2))
                .map(|i| json!({"jcr:path": format!("/content/dam/f/{i}.jpg")}))
                .collect();
            let total = (offset + 3).min(7);
            Some(json_response(
                &json!({"success": true, "hits": hits, "more": offset + 2 < 7, "total": total}),
            ))
        })
        .await;
        let remote = client(&server.url(), Credentials::None);
        let mut paths: Vec<String> =
            remote.folder_attrs("f", &[]).await.unwrap().into_iter().map(|a| a.path).collect();
        paths.sort();
        assert_eq!(paths, (0..7).map(|i| format!("f/{i}.jpg")).collect::<Vec<_>>());
        assert_eq!(server.seen().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_connection_that_cannot_be_made_in_time_is_a_timeout() {
    bounded(async {
        // A listener with a full accept queue drops further SYNs, so connecting hangs.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(stream)) => fillers.push(stream),
                _ => break,
            }
        }
        let mut config = AemConfig::new(Url::parse(&format!("http://{addr}/")).unwrap());
        config.connect_timeout = Duration::from_millis(300);
        let remote = AemClient::new(config).unwrap();
        let started = Instant::now();
        let e = remote.list_folder("").await.unwrap_err();
        assert_eq!((e.kind, e.cause.as_str()), (RemoteErrorKind::Timeout, "timed out connecting"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    })
    .await;
}
