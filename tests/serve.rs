//! Integration tests of `damfs serve`: the wire format damfs relies on, checked over real HTTP
//! against fixtures built here (images made with the image crate, sidecars with the crate's
//! own `Sidecar`). Every request has a client timeout; every server and child process stops
//! when its guard drops.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{TestServer, client, dam_dir, raw_request, write_jpeg, write_png};
use damfs::serve::Auth;
use damfs::sidecar::{AssetInfo, FolderInfo, Sidecar, TagInfo};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// GET `url`, returning the status and the parsed JSON body (Null when it is not JSON).
async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_else(|e| panic!("GET {url} body: {e}"));
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn get_ok_json(client: &reqwest::Client, url: &str) -> Value {
    let (status, value) = get_json(client, url).await;
    assert_eq!(status, 200, "GET {url}");
    value
}

async fn get_bytes(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let response = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap_or_else(|e| panic!("GET {url} body: {e}")).to_vec())
}

fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

fn entity_names(page: &Value) -> Vec<String> {
    page["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .map(|e| e["properties"]["name"].as_str().expect("name").to_string())
        .collect()
}

fn hit_paths(result: &Value) -> BTreeSet<String> {
    result["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["path"].as_str().expect("path").to_string())
        .collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// Every file name under `dir`, recursively (to check nothing is written there).
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        out.insert(path.display().to_string());
        if entry.file_type().expect("file_type").is_dir() {
            out.extend(tree(&path));
        }
    }
    out
}

#[tokio::test]
async fn folder_listing_pages_with_default_limit_and_clamp() {
    let (_tmp, dam) = dam_dir();
    let folder = dam.join("many");
    fs::create_dir(&folder).unwrap();
    let names: BTreeSet<String> = (0..1000).map(|i| format!("asset-{i:04}.txt")).collect();
    for name in &names {
        fs::write(folder.join(name), name).unwrap();
    }
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let url = format!("{}/api/assets/many.json", server.url());

    let page = get_ok_json(&client, &url).await;
    assert_eq!(page["class"], serde_json::json!(["assets/folder"]));
    assert_eq!(page["properties"]["name"], "many");
    assert_eq!(page["properties"]["srn:paging"]["total"], 1000);
    assert_eq!(page["properties"]["srn:paging"]["offset"], 0);
    assert_eq!(page["properties"]["srn:paging"]["limit"], 20);
    let entities = page["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 20, "a page without limit has 20 children");
    for entity in entities {
        let properties = entity["properties"].as_object().unwrap();
        assert_eq!(properties.keys().collect::<Vec<_>>(), vec!["name"], "children carry only a name");
        assert_eq!(entity["class"], serde_json::json!(["assets/asset"]));
        assert_eq!(entity["rel"], serde_json::json!(["child"]));
        let href = entity["links"][0]["href"].as_str().unwrap();
        assert!(href.starts_with(&format!("{}/api/assets/many/", server.url())), "{href}");
    }
    let links = page["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l["rel"] == serde_json::json!(["next"])), "a next link while more remain");
    assert!(links.iter().any(|l| l["rel"] == serde_json::json!(["parent"])));

    // Walk with offset += len(entities).
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = get_ok_json(&client, &format!("{url}?offset={offset}&limit=100")).await;
        let batch = entity_names(&page);
        assert!(batch.len() <= 100);
        if batch.is_empty() {
            break;
        }
        offset += batch.len();
        seen.extend(batch);
        if offset >= page["properties"]["srn:paging"]["total"].as_u64().unwrap() as usize {
            break;
        }
    }
    assert_eq!(seen.len(), 1000, "every child exactly once");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), names);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_ne!(seen, sorted, "repository order is not sorted");
    let again = entity_names(&get_ok_json(&client, &format!("{url}?limit=100")).await);
    assert_eq!(again, seen[..100].to_vec(), "repository order is stable");

    // A large limit is clamped, and the clamp is reported.
    let page = get_ok_json(&client, &format!("{url}?limit=1000")).await;
    assert_eq!(page["entities"].as_array().unwrap().len(), 100);
    assert_eq!(page["properties"]["srn:paging"]["limit"], 100);

    // Past the end: an empty page, same total.
    let page = get_ok_json(&client, &format!("{url}?offset=5000")).await;
    assert_eq!(page["entities"].as_array().unwrap().len(), 0);
    assert_eq!(page["properties"]["srn:paging"]["total"], 1000);

    let (status, _) = get_json(&client, &format!("{url}?limit=abc")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn querybuilder_selective_hits_have_nested_sizes() {
    let (_tmp, dam) = dam_dir();
    let shoot = dam.join("shoot");
    fs::create_dir_all(shoot.join("sub")).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..12u32 {
        let name = format!("image {i}.png");
        write_png(&shoot.join(&name), 10 + i * 3, 8 + i, i);
        expected.insert(name, "image/png");
    }
    write_jpeg(&shoot.join("Café au lait.jpg"), 64, 48);
    expected.insert("Café au lait.jpg".into(), "image/jpeg");
    for i in 0..2 {
        let name = format!("notes-{i}.txt");
        fs::write(shoot.join(&name), "x".repeat(100 + i)).unwrap();
        expected.insert(name, "text/plain");
    }
    fs::write(shoot.join("sub/deep-1.txt"), "deep").unwrap();
    fs::write(shoot.join("sub/deep-2.txt"), "deeper").unwrap();
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let qb = format!("{}/bin/querybuilder.json", server.url());

    let url = format!(
        "{qb}?path=/content/dam/shoot&path.flat=true&type=dam:Asset&p.limit=-1&p.hits=selective\
         &p.properties=jcr:path+jcr:content/jcr:lastModified+jcr:content/metadata/dam:size+jcr:content/metadata/dc:format"
    );
    let result = get_ok_json(&client, &url).await;
    assert_eq!(result["success"], true);
    assert_eq!(result["total"], 15);
    assert_eq!(result["results"], 15);
    assert_eq!(result["more"], false);
    let mut found = BTreeSet::new();
    for hit in result["hits"].as_array().unwrap() {
        let path = hit["jcr:path"].as_str().unwrap();
        let name = path.strip_prefix("/content/dam/shoot/").expect("a raw path in the folder");
        let size = fs::metadata(shoot.join(name)).unwrap().len();
        assert_eq!(hit["jcr:content"]["metadata"]["dam:size"], size, "{name}");
        assert_eq!(hit["jcr:content"]["metadata"]["dc:format"], expected[name], "{name}");
        let modified = hit["jcr:content"]["jcr:lastModified"].as_str().unwrap();
        assert!(modified.ends_with("GMT+0000"), "{modified}");
        assert_eq!(hit.as_object().unwrap().len(), 2, "only the asked properties: {hit}");
        found.insert(name.to_string());
    }
    assert_eq!(found, expected.keys().cloned().collect());
    assert!(found.contains("Café au lait.jpg"), "hit paths are raw, not percent-encoded");

    // p.limit defaults to 10; p.offset pages.
    let first =
        get_ok_json(&client, &format!("{qb}?path=/content/dam/shoot&path.flat=true&type=dam:Asset")).await;
    assert_eq!(first["results"], 10);
    assert_eq!(first["total"], 15);
    assert_eq!(first["more"], true);
    let hit = &first["hits"][0];
    for key in ["path", "excerpt", "name", "title", "lastModified", "created"] {
        assert!(hit.get(key).is_some(), "simple hits carry {key}: {hit}");
    }
    let rest = get_ok_json(
        &client,
        &format!("{qb}?path=/content/dam/shoot&path.flat=true&type=dam:Asset&p.offset=10"),
    )
    .await;
    assert_eq!(rest["results"], 5);
    assert_eq!(rest["more"], false);
    let all: BTreeSet<String> = hit_paths(&first).union(&hit_paths(&rest)).cloned().collect();
    assert_eq!(all.len(), 15);

    // Without path.flat the search goes down into sub-folders.
    let deep = get_ok_json(&client, &format!("{qb}?path=/content/dam/shoot&type=dam:Asset&p.limit=-1")).await;
    assert_eq!(deep["total"], 17);
    assert!(hit_paths(&deep).contains("/content/dam/shoot/sub/deep-2.txt"));
}

fn tag(title: &str, translations: &[(&str, &str)]) -> TagInfo {
    TagInfo {
        title: title.into(),
        titles: translations.iter().map(|(l, t)| (l.to_string(), t.to_string())).collect(),
        moved_to: None,
    }
}

fn asset_info(title: Option<&str>, description: Option<&str>, tags: &[&str]) -> AssetInfo {
    AssetInfo {
        title: title.map(str::to_string),
        description: description.map(str::to_string),
        creator: Some("Jane Doe".into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// A DAM with titles, descriptions and tags from a sidecar.
fn tagged_dam(dam: &Path) {
    fs::create_dir_all(dam.join("shoot/deep")).unwrap();
    write_jpeg(&dam.join("shoot/hiking.jpg"), 64, 48);
    write_png(&dam.join("shoot/beach.png"), 40, 30, 1);
    write_jpeg(&dam.join("shoot/deep/city.jpg"), 32, 32);
    fs::write(dam.join("notes.txt"), "plain text").unwrap();
    let mut sidecar = Sidecar::default();
    sidecar.namespaces.insert("we-retail".into(), tag("We.Retail", &[]));
    sidecar.tags.insert("we-retail:activity".into(), tag("Activity", &[("de", "Aktivität")]));
    sidecar.tags.insert("we-retail:activity/hiking".into(), tag("Hiking", &[("de", "Wandern")]));
    sidecar.tags.insert("we-retail:activity/swimming".into(), tag("Swimming", &[]));
    sidecar.tags.insert("we-retail:season".into(), tag("Season", &[]));
    sidecar.tags.insert("we-retail:season/winter".into(), tag("Winter", &[]));
    let mut moved = tag("Trekking", &[]);
    moved.moved_to = Some("we-retail:activity/hiking".into());
    sidecar.tags.insert("we-retail:activity/trekking".into(), moved);
    sidecar.folders.insert("shoot".into(), FolderInfo { title: "Photo shoot".into() });
    sidecar.assets.insert(
        "shoot/hiking.jpg".into(),
        asset_info(Some("Hiking in the Alps"), Some("A mountain trail"), &["we-retail:activity/hiking"]),
    );
    sidecar.assets.insert(
        "shoot/beach.png".into(),
        asset_info(Some("Beach day"), None, &["we-retail:activity/swimming"]),
    );
    sidecar.assets.insert(
        "shoot/deep/city.jpg".into(),
        asset_info(Some("City lights"), None, &["we-retail:season/winter"]),
    );
    sidecar.store(dam).unwrap();
}

#[tokio::test]
async fn querybuilder_fulltext_and_tagid_find_the_right_assets() {
    let (_tmp, dam) = dam_dir();
    tagged_dam(&dam);
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let search = |predicates: &str| {
        format!(
            "{}/bin/querybuilder.json?path=/content/dam&type=dam:Asset&p.limit=-1&{predicates}",
            server.url()
        )
    };
    let hiking = "/content/dam/shoot/hiking.jpg";
    let beach = "/content/dam/shoot/beach.png";
    let city = "/content/dam/shoot/deep/city.jpg";
    let cases: &[(&str, &[&str])] = &[
        ("fulltext=alps", &[hiking]),
        ("fulltext=ALPS+Hiking", &[hiking]),
        ("fulltext=wandern", &[hiking]),
        ("fulltext=mountain", &[hiking]),
        ("fulltext=alps+beach", &[]),
        ("fulltext=city", &[city]),
        ("fulltext=beach.png", &[beach]),
        ("fulltext=hik*", &[hiking]),
        ("fulltext=we-retail%3Aactivity", &[hiking, beach]),
        ("tagid=we-retail:activity", &[hiking, beach]),
        ("tagid=we-retail:activity/hiking", &[hiking]),
        ("tagid=we-retail:season", &[city]),
        ("tagid=we-retail:activity/hik", &[]),
        ("tagid=we-retail:", &[hiking, beach, city]),
        ("tagid=we-retail:activity&fulltext=beach", &[beach]),
    ];
    for (predicates, expected) in cases {
        let result = get_ok_json(&client, &search(predicates)).await;
        assert_eq!(hit_paths(&result), set(expected), "{predicates}");
        assert_eq!(result["total"], expected.len(), "{predicates}");
    }
    let flat = format!(
        "{}/bin/querybuilder.json?path=/content/dam/shoot&path.flat=true&type=dam:Asset&fulltext=city",
        server.url()
    );
    assert_eq!(hit_paths(&get_ok_json(&client, &flat).await), set(&[]));

    // A simple hit shows the title from the sidecar.
    let result = get_ok_json(&client, &search("fulltext=alps")).await;
    assert_eq!(result["hits"][0]["title"], "Hiking in the Alps");
    assert_eq!(result["hits"][0]["name"], "hiking.jpg");

    // Blocked as by a dispatcher.
    server.catalog().set_querybuilder(false);
    assert_eq!(get_json(&client, &search("fulltext=alps")).await.0, 404);
    server.catalog().set_querybuilder(true);
    assert_eq!(get_json(&client, &search("fulltext=alps")).await.0, 200);

    let (status, _) = get_json(&client, &search("p.hits=everything")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sling_metadata_content_and_tags() {
    let (_tmp, dam) = dam_dir();
    tagged_dam(&dam);
    write_png(&dam.join("plain.png"), 33, 22, 3);
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let base = server.url();

    let file = dam.join("shoot/hiking.jpg");
    let bytes = fs::read(&file).unwrap();
    let sha1 = {
        use sha1::Digest;
        sha1::Sha1::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let meta =
        get_ok_json(&client, &format!("{base}/content/dam/shoot/hiking.jpg/jcr:content/metadata.json")).await;
    assert_eq!(meta["jcr:primaryType"], "nt:unstructured");
    assert_eq!(meta["dc:format"], "image/jpeg");
    assert_eq!(meta["dam:MIMEtype"], "image/jpeg");
    assert_eq!(meta["dam:size"], bytes.len());
    assert_eq!(meta["dam:sha1"], sha1);
    assert_eq!(meta["tiff:ImageWidth"], 64);
    assert_eq!(meta["tiff:ImageLength"], 48);
    assert_eq!(meta["dc:title"], "Hiking in the Alps");
    assert_eq!(meta["dc:description"], "A mountain trail");
    assert_eq!(meta["dc:creator"], "Jane Doe");
    assert_eq!(meta["cq:tags"], serde_json::json!(["we-retail:activity/hiking"]));
    let mangled =
        get_ok_json(&client, &format!("{base}/content/dam/shoot/hiking.jpg/_jcr_content/metadata.json"))
            .await;
    assert_eq!(mangled, meta, "_jcr_content is jcr:content");
    let siren = get_ok_json(&client, &format!("{base}/api/assets/shoot/hiking.jpg.json")).await;
    assert_eq!(siren["class"], serde_json::json!(["assets/asset"]));
    assert_eq!(siren["properties"]["name"], "hiking.jpg");
    assert_eq!(siren["properties"]["metadata"], meta);

    let plain =
        get_ok_json(&client, &format!("{base}/content/dam/plain.png/jcr:content/metadata.json")).await;
    assert!(plain.get("dc:title").is_none(), "no title without a sidecar entry: {plain}");
    assert_eq!(plain["cq:tags"], serde_json::json!([]));
    assert_eq!(plain["tiff:ImageWidth"], 33);

    let content =
        get_ok_json(&client, &format!("{base}/content/dam/shoot/hiking.jpg/jcr:content.json")).await;
    assert_eq!(content["jcr:primaryType"], "dam:AssetContent");
    let modified = content["jcr:lastModified"].as_str().unwrap();
    let parsed = chrono::NaiveDateTime::parse_from_str(modified, "%a %b %d %Y %H:%M:%S GMT+0000")
        .unwrap_or_else(|e| panic!("{modified}: {e}"));
    let mtime: chrono::DateTime<chrono::Utc> = fs::metadata(&file).unwrap().modified().unwrap().into();
    assert_eq!(parsed.and_utc().timestamp(), mtime.timestamp());

    let folder = get_ok_json(&client, &format!("{base}/api/assets/shoot.json")).await;
    assert_eq!(folder["properties"]["dc:title"], "Photo shoot");

    // Tags.
    let ns = get_ok_json(&client, &format!("{base}/content/cq:tags/we-retail.json")).await;
    assert_eq!(ns["jcr:title"], "We.Retail");
    let hiking =
        get_ok_json(&client, &format!("{base}/content/cq:tags/we-retail/activity/hiking.json")).await;
    assert_eq!(hiking["jcr:primaryType"], "cq:Tag");
    assert_eq!(hiking["jcr:title"], "Hiking");
    assert_eq!(hiking["jcr:title.de"], "Wandern");
    let moved =
        get_ok_json(&client, &format!("{base}/content/cq:tags/we-retail/activity/trekking.json")).await;
    assert_eq!(moved["cq:movedTo"], "/content/cq:tags/we-retail/activity/hiking");
    let encoded = get_ok_json(&client, &format!("{base}/content/cq%3Atags/we-retail/activity.json")).await;
    assert_eq!(encoded["jcr:title.de"], "Aktivität");
    assert_eq!(get_json(&client, &format!("{base}/content/cq:tags/we-retail/nothing.json")).await.0, 404);
    assert_eq!(get_json(&client, &format!("{base}/content/cq:tags/unknown.json")).await.0, 404);

    // The digest follows the file.
    write_jpeg(&file, 65, 48);
    let newer = SystemTime::now() + Duration::from_secs(5);
    fs::File::options().write(true).open(&file).unwrap().set_modified(newer).unwrap();
    let meta =
        get_ok_json(&client, &format!("{base}/content/dam/shoot/hiking.jpg/jcr:content/metadata.json")).await;
    assert_ne!(meta["dam:sha1"], sha1);
    assert_eq!(meta["tiff:ImageWidth"], 65);
}

/// Fetches every rendition of `rel` both ways, checks the two agree with the Sling sizes,
/// and returns them by name.
async fn fetch_renditions(client: &reqwest::Client, base: &str, rel: &str) -> BTreeMap<String, Vec<u8>> {
    let encoded: Vec<String> = rel.split('/').map(enc).collect();
    let encoded = encoded.join("/");
    let list = get_ok_json(client, &format!("{base}/api/assets/{encoded}/renditions.json")).await;
    let sling =
        get_ok_json(client, &format!("{base}/content/dam/{encoded}/jcr:content/renditions.2.json")).await;
    let mut out = BTreeMap::new();
    for entity in list["entities"].as_array().unwrap() {
        assert_eq!(entity["class"], serde_json::json!(["assets/asset/renditions/rendition"]));
        let name = entity["properties"]["name"].as_str().unwrap().to_string();
        let href = entity["links"][0]["href"].as_str().unwrap();
        let (status, via_api) = get_bytes(client, href).await;
        assert_eq!(status, 200, "{href}");
        let sling_url = format!("{base}/content/dam/{encoded}/jcr:content/renditions/{}", enc(&name));
        let (status, via_sling) = get_bytes(client, &sling_url).await;
        assert_eq!(status, 200, "{sling_url}");
        assert_eq!(via_api, via_sling, "{name}");
        assert_eq!(sling[&name]["jcr:primaryType"], "nt:file");
        assert_eq!(sling[&name]["jcr:content"][":jcr:data"], via_api.len(), ":jcr:data of {name}");
        assert!(sling[&name]["jcr:content"]["jcr:mimeType"].is_string());
        out.insert(name, via_api);
    }
    let sling_names: BTreeSet<&String> =
        sling.as_object().unwrap().keys().filter(|k| !k.starts_with("jcr:")).collect();
    assert_eq!(sling_names, out.keys().collect(), "both lists name the same renditions");
    out
}

#[tokio::test]
async fn renditions_are_generated_fitted_and_decodable() {
    let (_tmp, dam) = dam_dir();
    write_jpeg(&dam.join("photo.jpg"), 2000, 1500);
    write_jpeg(&dam.join("tall.jpg"), 500, 1400);
    write_png(&dam.join("small.png"), 300, 200, 7);
    fs::write(dam.join("notes.txt"), "not an image").unwrap();
    fs::write(dam.join("broken.jpg"), "not really a JPEG").unwrap();
    let before = tree(&dam);
    let state = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&dam, Some(state.path()), Auth::default());
    let client = client(Duration::from_secs(60));
    let base = server.url();

    let boxes = [
        ("cq5dam.thumbnail.48.48.png", (48, 48)),
        ("cq5dam.thumbnail.140.100.png", (140, 100)),
        ("cq5dam.thumbnail.319.319.png", (319, 319)),
    ];
    let photo = fetch_renditions(&client, &base, "photo.jpg").await;
    let original = fs::read(dam.join("photo.jpg")).unwrap();
    assert_eq!(photo["original"], original);
    let mut expected: Vec<&str> = boxes.iter().map(|(n, _)| *n).collect();
    expected.extend(["cq5dam.web.1280.1280.jpeg", "original"]);
    assert_eq!(photo.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected.into_iter().collect());
    for (name, (bw, bh)) in boxes.iter().chain(&[("cq5dam.web.1280.1280.jpeg", (1280, 1280))]) {
        let bytes = &photo[*name];
        assert_ne!(bytes, &original, "{name} differs from the original");
        let image = image::load_from_memory(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = (image.width(), image.height());
        assert!(w <= *bw && h <= *bh, "{name} is {w}x{h}");
        assert!(w == *bw || h == *bh, "{name} fills its box on one side: {w}x{h}");
        let ratio = f64::from(w) / f64::from(h);
        assert!((ratio - 2000.0 / 1500.0).abs() < 0.05, "{name} keeps the aspect ratio: {w}x{h}");
    }
    let format = image::guess_format(&photo["cq5dam.web.1280.1280.jpeg"]).unwrap();
    assert_eq!(format, image::ImageFormat::Jpeg);

    let tall = fetch_renditions(&client, &base, "tall.jpg").await;
    let thumb = image::load_from_memory(&tall["cq5dam.thumbnail.140.100.png"]).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (36, 100));
    let web = image::load_from_memory(&tall["cq5dam.web.1280.1280.jpeg"]).unwrap();
    assert_eq!((web.width(), web.height()), (457, 1280));

    // A PNG original gets a PNG web rendition, never upscaled.
    let small = fetch_renditions(&client, &base, "small.png").await;
    assert!(small.contains_key("cq5dam.web.1280.1280.png"));
    assert!(!small.contains_key("cq5dam.web.1280.1280.jpeg"));
    let web = &small["cq5dam.web.1280.1280.png"];
    assert_eq!(image::guess_format(web).unwrap(), image::ImageFormat::Png);
    let web = image::load_from_memory(web).unwrap();
    assert_eq!((web.width(), web.height()), (300, 200));

    // Only the original for a text file and for an image that does not decode.
    for rel in ["notes.txt", "broken.jpg"] {
        let renditions = fetch_renditions(&client, &base, rel).await;
        assert_eq!(renditions.keys().collect::<Vec<_>>(), vec!["original"], "{rel}");
        let url = format!("{base}/api/assets/{rel}/renditions/cq5dam.thumbnail.48.48.png");
        assert_eq!(get_json(&client, &url).await.0, 404);
    }
    assert_eq!(tree(&dam), before, "nothing is written inside the served folder");
    assert!(tree(state.path()).iter().any(|p| p.ends_with("cq5dam.web.1280.1280.jpeg")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_generation() {
    let (_tmp, dam) = dam_dir();
    write_jpeg(&dam.join("photo.jpg"), 1800, 1200);
    let state = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&dam, Some(state.path()), Auth::default());
    let client = client(Duration::from_secs(60));
    let url = format!("{}/content/dam/photo.jpg/jcr:content/renditions.2.json", server.url());
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { get_ok_json(&client, &url).await })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every request sees the same renditions");
    assert_eq!(answers[0].as_object().unwrap().len(), 6, "jcr:primaryType and five renditions");
    let versions: Vec<String> = tree(&state.path().join("renditions"))
        .into_iter()
        .filter(|p| p.ends_with("manifest.json") || p.contains(".tmp-"))
        .collect();
    assert_eq!(versions.len(), 1, "one generation, no temporary leftovers: {versions:?}");
}

#[tokio::test]
async fn changed_original_regenerates_renditions() {
    let (_tmp, dam) = dam_dir();
    let file = dam.join("photo.png");
    write_png(&file, 800, 600, 1);
    let server = TestServer::start(&dam);
    let client = client(Duration::from_secs(60));
    let base = server.url();
    let web_url = format!("{base}/content/dam/photo.png/jcr:content/renditions/cq5dam.web.1280.1280.png");

    let (status, first) = get_bytes(&client, &web_url).await;
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&first).unwrap().width(), 800);

    write_png(&file, 400, 300, 2);
    let newer = SystemTime::now() + Duration::from_secs(10);
    fs::File::options().write(true).open(&file).unwrap().set_modified(newer).unwrap();
    let (status, second) = get_bytes(&client, &web_url).await;
    assert_eq!(status, 200);
    let image = image::load_from_memory(&second).unwrap();
    assert_eq!((image.width(), image.height()), (400, 300));
    let renditions = fetch_renditions(&client, &base, "photo.png").await;
    assert_eq!(renditions["original"], fs::read(&file).unwrap());
    assert_eq!(renditions["cq5dam.web.1280.1280.png"], second);
}

#[tokio::test]
async fn binaries_honour_range_if_modified_since_and_head() {
    let (_tmp, dam) = dam_dir();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(dam.join("data.bin"), &data).unwrap();
    fs::write(dam.join("tiny.txt"), "0123456789").unwrap();
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let url = format!("{}/content/dam/data.bin", server.url());
    let range = |spec: &'static str| client.get(&url).header("Range", spec).send();

    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-length"], "300000");
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["accept-ranges"], "bytes", "advertised above 100 KB");
    let last_modified = headers["last-modified"].to_str().unwrap().to_string();
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &data[..]);

    let part = range("bytes=0-99").await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 0-99/300000");
    assert_eq!(part.headers()["content-length"], "100");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[..100]);

    let tail = range("bytes=-10").await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.headers()["content-range"], "bytes 299990-299999/300000");
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &data[299_990..]);

    let open = range("bytes=1000-").await.unwrap();
    assert_eq!(open.status(), 206);
    assert_eq!(open.bytes().await.unwrap().as_ref(), &data[1000..]);

    let past = range("bytes=300000-").await.unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(past.headers()["content-range"], "bytes */300000");

    let multi = range("bytes=0-1,5-6").await.unwrap();
    assert_eq!(multi.status(), 200, "several ranges are answered whole");
    assert_eq!(multi.bytes().await.unwrap().len(), 300_000);

    // Small files: no Accept-Ranges, but ranges work.
    let tiny_url = format!("{}/content/dam/tiny.txt", server.url());
    let tiny = client.get(&tiny_url).header("Range", "bytes=2-4").send().await.unwrap();
    assert_eq!(tiny.status(), 206);
    assert!(tiny.headers().get("accept-ranges").is_none());
    assert_eq!(tiny.bytes().await.unwrap().as_ref(), b"234");

    let same = client.get(&url).header("If-Modified-Since", &last_modified).send().await.unwrap();
    assert_eq!(same.status(), 304);
    assert!(same.bytes().await.unwrap().is_empty());
    let old = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(86_400 * 365 * 30));
    let stale = client.get(&url).header("If-Modified-Since", old).send().await.unwrap();
    assert_eq!(stale.status(), 200);

    // HEAD: the same headers, no body.
    let addr = server.addr();
    let head = tokio::task::spawn_blocking(move || raw_request(addr, "HEAD", "/content/dam/data.bin", &[]))
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert_eq!(head.header("last-modified"), Some(last_modified.as_str()));
    assert!(head.body.is_empty());
    let json_get = get_bytes(&client, &format!("{}/api/assets.json", server.url())).await.1;
    let head = tokio::task::spawn_blocking(move || raw_request(addr, "HEAD", "/api/assets.json", &[]))
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(json_get.len().to_string().as_str()));
    assert!(head.body.is_empty());

    // The original is also the rendition `original`, with ranges.
    let rendition = format!("{}/api/assets/data.bin/renditions/original", server.url());
    let part = client.get(&rendition).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[10..20]);

    // The request record counts the bytes sent.
    let records = server.catalog().requests();
    let ranged = records.iter().find(|r| r.path.ends_with("renditions/original")).unwrap();
    assert_eq!((ranged.status, ranged.bytes), (206, 10));
    assert!(ranged.is_binary());
    let whole = records.iter().find(|r| r.path == "/content/dam/data.bin" && r.status == 200).unwrap();
    assert_eq!(whole.bytes, 300_000);
    assert!(records.iter().any(|r| r.method == "HEAD" && r.bytes == 0 && !r.is_binary()));
    server.catalog().clear_requests();
    assert!(server.catalog().requests().is_empty());
}

/// What a shared HTTP cache in front of the server (the tier of damfs(7)) needs to keep and
/// revalidate answers: `Cache-Control: public` on binaries and JSON, `Last-Modified` on
/// binaries, an `ETag` on JSON that changes with the content and makes `If-None-Match` a 304.
#[tokio::test]
async fn binaries_and_json_carry_what_a_shared_cache_keeps_and_revalidates() {
    let (_tmp, dam) = dam_dir();
    write_jpeg(&dam.join("a.jpg"), 40, 30);
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let binary = client.get(format!("{}/content/dam/a.jpg", server.url())).send().await.unwrap();
    assert_eq!(binary.status(), 200);
    assert_eq!(binary.headers()["cache-control"], "public");
    assert!(binary.headers().contains_key("last-modified"));

    let listing = format!("{}/api/assets.json", server.url());
    let first = client.get(&listing).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "public");
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "{etag}");
    let again = client.get(&listing).send().await.unwrap();
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag, "the same content, another ETag");

    let unchanged = client.get(&listing).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.headers()["etag"].to_str().unwrap(), etag);
    assert!(unchanged.bytes().await.unwrap().is_empty());
    let weak = client.get(&listing).header("If-None-Match", format!("\"x\", W/{etag}")).send().await.unwrap();
    assert_eq!(weak.status(), 304, "a list holding the tag, weakly compared");
    let other = client.get(&listing).header("If-None-Match", "\"other\"").send().await.unwrap();
    assert_eq!(other.status(), 200);

    write_jpeg(&dam.join("b.jpg"), 40, 30);
    let changed = client.get(&listing).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200, "a listing that changed is sent again");
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    let missing = client.get(format!("{}/api/assets/nothing.json", server.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(!missing.headers().contains_key("etag"));
}

#[tokio::test]
async fn credentials_are_required_and_can_change() {
    use base64::Engine;
    let (_tmp, dam) = dam_dir();
    fs::write(dam.join("a.txt"), "secret bytes").unwrap();
    let auth =
        Auth { basic: Some(("admin".into(), "s3cret".into())), bearer: Some("tok-1".into()), ims: None };
    let server = TestServer::start_with(&dam, None, auth);
    let client = client(TIMEOUT);
    let basic = |user: &str, password: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    };
    let status = |authorization: Option<String>, path: &'static str| {
        let mut request = client.get(format!("{}{path}", server.url()));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        async move { request.send().await.unwrap() }
    };

    let denied = status(None, "/api/assets.json").await;
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Basic realm=\"Sling (Development)\"");
    assert_eq!(status(None, "/content/dam/a.txt").await.status(), 401);
    assert_eq!(status(Some(basic("admin", "wrong")), "/api/assets.json").await.status(), 401);
    assert_eq!(status(Some(basic("other", "s3cret")), "/api/assets.json").await.status(), 401);
    assert_eq!(status(Some("Bearer tok-2".into()), "/api/assets.json").await.status(), 401);
    assert_eq!(status(Some("Basic !!!".into()), "/api/assets.json").await.status(), 401);
    let wrong = status(Some("Bearer nope".into()), "/api/assets.json").await;
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(status(Some(basic("admin", "s3cret")), "/api/assets.json").await.status(), 200);
    assert_eq!(status(Some(basic("admin", "s3cret")), "/content/dam/a.txt").await.status(), 200);
    assert_eq!(status(Some("Bearer tok-1".into()), "/api/assets.json").await.status(), 200);

    // A token that later turns 401.
    server.catalog().set_auth(Auth { basic: None, bearer: Some("tok-2".into()), ims: None });
    assert_eq!(status(Some("Bearer tok-1".into()), "/api/assets.json").await.status(), 401);
    assert_eq!(status(Some(basic("admin", "s3cret")), "/api/assets.json").await.status(), 401);
    assert_eq!(status(Some("Bearer tok-2".into()), "/api/assets.json").await.status(), 200);
    server.catalog().set_auth(Auth::default());
    assert_eq!(status(None, "/api/assets.json").await.status(), 200);
}

#[tokio::test]
async fn refuses_missing_paths_traversal_and_writes() {
    let (tmp, dam) = dam_dir();
    fs::write(tmp.path().join("secret.txt"), "TOP SECRET").unwrap();
    fs::write(dam.join("ok.txt"), "fine").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dam.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), dam.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(dam.join("ok.txt"), dam.join("inner.txt")).unwrap();
    fs::create_dir(dam.join("sub")).unwrap();
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let base = server.url();

    for path in [
        "/content/dam/missing.jpg",
        "/api/assets/missing.json",
        "/api/assets/missing/more.json",
        "/content/dam/ok.txt/jcr:content/nothing.json",
        "/content/dam/ok.txt/jcr:content/renditions/nothing",
        "/api/assets/ok.txt/renditions/nothing",
        "/content/dam/sub/missing.txt/jcr:content/metadata.json",
        "/content/cq:tags/none/tag.json",
        "/nowhere",
    ] {
        let (status, body) = get_bytes(&client, &format!("{base}{path}")).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.is_empty(), "a 404 says why: {path}");
    }
    let addr = server.addr();
    let probes = tokio::task::spawn_blocking(move || {
        [
            "/content/dam/../secret.txt",
            "/content/dam/%2e%2e/secret.txt",
            "/content/dam/%2E%2E/secret.txt",
            "/content/dam/sub/..%2F..%2Fsecret.txt",
            "/api/assets/..%2Fsecret.txt.json",
            "/api/assets/%2e%2e/secret.txt.json",
            "/content/dam/link.txt",
            "/content/dam/linkdir/secret.txt",
            "/api/assets/linkdir.json",
            "/content/dam/.damfs-sidecar.json",
            "/content/dam/a%00b",
            "/content/dam/a%5Cb",
            "/content/dam//ok.txt",
            "/bin/querybuilder.json?path=/content/dam/../..&type=dam:Asset",
        ]
        .iter()
        .map(|target| (target.to_string(), raw_request(addr, "GET", target, &[])))
        .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (target, response) in probes {
        assert!(matches!(response.status, 400 | 404), "{target}: {}", response.status);
        assert!(!String::from_utf8_lossy(&response.body).contains("TOP SECRET"), "{target}");
    }
    let root = get_ok_json(&client, &format!("{base}/api/assets.json")).await;
    let names: BTreeSet<String> = entity_names(&root).into_iter().collect();
    assert_eq!(names, set(&["inner.txt", "ok.txt", "sub"]), "links out of the folder are not listed");
    let (status, body) = get_bytes(&client, &format!("{base}/content/dam/inner.txt")).await;
    assert_eq!((status, body.as_slice()), (200, b"fine".as_slice()), "a link inside the folder is served");

    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response =
            client.request(method.clone(), format!("{base}/api/assets.json")).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
    assert_eq!(fs::read(dam.join("ok.txt")).unwrap(), b"fine");
}

#[tokio::test]
async fn unicode_and_space_names_round_trip() {
    let (_tmp, dam) = dam_dir();
    let folder = "Ünïcode folder";
    fs::create_dir(dam.join(folder)).unwrap();
    let names = ["Café au lait.jpg", "日本 庭園.png", "a+b (1).jpg"];
    write_jpeg(&dam.join(folder).join(names[0]), 40, 30);
    write_png(&dam.join(folder).join(names[1]), 30, 40, 5);
    write_jpeg(&dam.join(folder).join(names[2]), 20, 20);
    let server = TestServer::start(&dam);
    let client = client(TIMEOUT);
    let base = server.url();

    let root = get_ok_json(&client, &format!("{base}/api/assets.json")).await;
    let folder_href = root["entities"][0]["links"][0]["href"].as_str().unwrap();
    assert!(!folder_href.contains(' '), "hrefs are percent-encoded: {folder_href}");
    let listing = get_ok_json(&client, folder_href).await;
    assert_eq!(listing["properties"]["name"], folder);
    let mut seen = BTreeSet::new();
    for entity in listing["entities"].as_array().unwrap() {
        let name = entity["properties"]["name"].as_str().unwrap();
        let href = entity["links"][0]["href"].as_str().unwrap();
        assert!(!href.contains(' ') && href.is_ascii(), "{href}");
        let rel = href.strip_prefix(&format!("{base}/api/assets/")).unwrap().strip_suffix(".json").unwrap();
        let decoded = percent_decode_str(rel).decode_utf8().unwrap();
        assert_eq!(decoded, format!("{folder}/{name}"));
        let asset = get_ok_json(&client, href).await;
        assert_eq!(asset["properties"]["name"], name);
        let binary_url = format!("{base}/content/dam/{rel}");
        let (status, bytes) = get_bytes(&client, &binary_url).await;
        assert_eq!(status, 200, "{binary_url}");
        assert_eq!(bytes, fs::read(dam.join(folder).join(name)).unwrap());
        let original = format!("{base}/api/assets/{rel}/renditions/original");
        assert_eq!(get_bytes(&client, &original).await.1, bytes);
        seen.insert(name.to_string());
    }
    assert_eq!(seen, names.iter().map(|n| n.to_string()).collect());

    let qb = format!(
        "{base}/bin/querybuilder.json?path=/content/dam/{}&path.flat=true&type=dam:Asset&p.limit=-1",
        enc(folder)
    );
    let paths = hit_paths(&get_ok_json(&client, &qb).await);
    assert!(paths.contains(&format!("/content/dam/{folder}/a+b (1).jpg")), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_holds_requests_until_cleared() {
    let (_tmp, dam) = dam_dir();
    fs::write(dam.join("a.txt"), "a").unwrap();
    let mut server = TestServer::start(&dam);
    let catalog = server.catalog();
    let url = format!("{}/api/assets.json", server.url());

    catalog.set_stall(true);
    let slow = client(Duration::from_secs(10));
    let mut pending = tokio::spawn({
        let url = url.clone();
        async move { slow.get(&url).send().await.map(|r| r.status().as_u16()) }
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut pending).await.is_err(),
        "answered while stalled"
    );
    catalog.set_stall(false);
    let status = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("answered after the stall")
        .unwrap();
    assert_eq!(status.unwrap(), 200);

    // A client that gives up while stalled is recorded as 499.
    catalog.clear_requests();
    catalog.set_stall(true);
    let impatient = client(Duration::from_millis(300));
    assert!(impatient.get(&url).send().await.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !catalog.requests().iter().any(|r| r.status == 499) {
        assert!(Instant::now() < deadline, "no 499 record: {:?}", catalog.requests());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stopping does not wait for stalled requests.
    let waiting = tokio::spawn({
        let patient = client(Duration::from_secs(20));
        async move { patient.get(&url).send().await.map(|r| r.status().as_u16()) }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while catalog.stalled() == 0 {
        assert!(Instant::now() < deadline, "the patient request never reached the stall");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    tokio::task::block_in_place(|| server.stop());
    assert!(started.elapsed() < Duration::from_secs(8), "stop took {:?}", started.elapsed());
    let outcome =
        tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("the stalled request ended");
    assert!(!matches!(outcome.unwrap(), Ok(200)));
}

/// Kills the child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `damfs serve DIR` on a free port (one retry if the port was taken meanwhile) and
/// waits until it answers.
async fn spawn_server(dir: &Path, state: &Path, log: &Path) -> (ChildGuard, String) {
    let client = client(Duration::from_secs(2));
    for _attempt in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let stderr = fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_damfs"))
            .args(["serve", dir.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("cannot start damfs serve");
        let mut guard = ChildGuard(child);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = guard.0.try_wait() {
                break; // exited: the port was probably taken; try another
            }
            if let Ok(response) = client.get(format!("{url}/api/assets.json")).send().await {
                if response.status() == 200 {
                    return (guard, url);
                }
            }
            assert!(
                Instant::now() < deadline,
                "damfs serve did not answer: {}",
                fs::read_to_string(log).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("damfs serve did not start: {}", fs::read_to_string(log).unwrap_or_default());
}

/// Peak resident set size of a process, from `/proc/<pid>/status`.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_gib_file_streams_in_bounded_memory() {
    use futures_util::StreamExt;
    const SIZE: u64 = 1 << 30;
    let (tmp, dam) = dam_dir();
    fs::File::create(dam.join("big.bin")).unwrap().set_len(SIZE).unwrap();
    let state = tmp.path().join("state");
    let (server, url) = spawn_server(&dam, &state, &tmp.path().join("serve.log")).await;

    let client = client(Duration::from_secs(300));
    let response = client.get(format!("{url}/content/dam/big.bin")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(SIZE));
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, SIZE);
    let peak = peak_rss_kib(server.0.id());
    eprintln!("peak RSS of damfs serve after streaming 1 GiB: {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS of damfs serve was {peak} KiB");
    drop(server);
}

/// Reads one HTTP/1.1 answer with a Content-Length from a kept-alive connection.
fn read_answer(stream: &mut std::net::TcpStream) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed in the headers");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, body)
}

#[test]
fn answers_on_a_kept_alive_connection_do_not_wait_for_a_delayed_ack() {
    use std::io::Write;
    let (_tmp, dam) = dam_dir();
    let bytes: Vec<u8> = (0..20 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(dam.join("x.jpg"), &bytes).unwrap();
    let server = TestServer::start(&dam);
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET /content/dam/x.jpg HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr());
    // The first answer may pay for the rendition work and the connection; then 20 more.
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_answer(&mut stream), (200, bytes.clone()));
    // With Nagle's algorithm on the server, an answer written as headers then body can wait
    // for the client's delayed ACK: 40 ms, for a good share of the answers. Without it, each
    // takes a few ms; a loaded machine may slow a few, not a quarter of them.
    let mut stalled = 0;
    for _ in 0..40 {
        let started = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let (status, body) = read_answer(&mut stream);
        assert_eq!((status, body.len()), (200, bytes.len()));
        if started.elapsed() >= Duration::from_millis(35) {
            stalled += 1;
        }
    }
    assert!(stalled <= 10, "{stalled} of 40 kept-alive answers took 35 ms or more: a Nagle stall");
    eprintln!("{stalled} of 40 answers took 35 ms or more");
}
