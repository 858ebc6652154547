//! Property tests of everything that reads what a remote sends or builds a name from it: the
//! parsers of `remote::wire`, the percent-encoding of DAM paths, the validation of names and
//! the names of the links in `.tags` and `.search`. No input may make a parser panic, and a
//! well-formed answer generated at random must read back as what was generated. The fuzz
//! targets in `tests/fuzz` drive the same parsers for longer; this file runs in `cargo test`.

use std::collections::{BTreeMap, HashSet};

use damfs::names::{invalid_name, link_names};
use damfs::remote::{EntryKind, encode_segment, wire};
use damfs::vfs::reserved::link_target;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// Enough cases to find the usual mistakes, few enough for a debug build to run the file in
/// seconds. A failure prints its shrunk input; nothing is written next to the sources.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// Percent-decodes one encoded segment, refusing what is not UTF-8 once decoded.
fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8().expect("decodes to UTF-8").into_owned()
}

/// Every parser of remote input, on the same body: none may panic.
fn all_parsers(body: &[u8]) {
    let _ = wire::listing_page(body);
    let _ = wire::rendition_entities(body);
    let _ = wire::renditions(body);
    let _ = wire::metadata(body);
    let _ = wire::content_attrs(body);
    let _ = wire::query_attrs(body, "");
    let _ = wire::query_attrs(body, "a/b");
    let _ = wire::search_hits(body);
    let _ = wire::tag_node(body);
    let text = String::from_utf8_lossy(body);
    let _ = wire::tag_id(&text);
    let _ = wire::encode_dam_path(&text);
    let _ = wire::name_from_href(&text);
}

// ---------------------------------------------------------------------------------------
// Strategies.

/// Keys and values the parsers look for, so that random JSON gets past their first checks.
const WORDS: &[&str] = &[
    "class",
    "entities",
    "properties",
    "name",
    "links",
    "rel",
    "href",
    "self",
    "srn:paging",
    "total",
    "assets/folder",
    "assets/asset",
    "original",
    "jcr:content",
    ":jcr:data",
    "jcr:mimeType",
    "jcr:primaryType",
    "metadata",
    "dam:size",
    "dc:format",
    "dc:title",
    "dam:MIMEtype",
    "dam:sha1",
    "cq:tags",
    "tiff:ImageWidth",
    "jcr:lastModified",
    "jcr:content/metadata/dam:size",
    "jcr:content/jcr:lastModified",
    "hits",
    "jcr:path",
    "path",
    "success",
    "more",
    "jcr:title",
    "cq:movedTo",
    "/content/dam",
    "/content/dam/a/b/c.jpg",
    "/content/dam/a/b",
    "/api/assets/a/b%20c.jpg.json",
    "Fri Oct 25 2024 18:11:57 GMT+0000",
    "2024-10-25T18:11:57.123+02:00",
    "-1",
    "18446744073709551616",
];

/// A string: a word the parsers know, digits, or anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => "[0-9 .eE+-]{0,24}",
        2 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..1000).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Any JSON value, nested at most four levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A name as a remote may spell it: any Unicode, with the characters that need escaping
/// (space, `+`, `%`, `#`, `?`, `/`…) over-represented. Never empty.
fn remote_name() -> impl Strategy<Value = String> {
    let awkward = prop::sample::select(vec![
        ' ', '+', '%', '#', '?', '/', '&', '=', ':', '.', '~', '"', '\\', 'é', '日', '🙂', '\u{7f}', '\0',
    ]);
    prop::collection::vec(
        prop_oneof![3 => prop::char::range('a', 'z'), 2 => awkward, 2 => any::<char>()],
        1..24,
    )
    .prop_map(String::from_iter)
}

/// A segment of a DAM path: a remote name without `/`, and not `.` or `..`.
fn segment() -> impl Strategy<Value = String> {
    remote_name().prop_filter("a path segment", |s| !s.contains('/') && s != "." && s != "..")
}

/// A DAM path of `segments` segments.
fn dam_path(segments: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), segments).prop_map(|s| s.join("/"))
}

/// A class that is neither `assets/folder` nor `assets/asset`.
fn other_class() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "assets/asset/renditions/rendition",
            "dam/collection",
            "assets/folders",
            "Assets/Asset",
            "assets/asset ",
            "",
        ])
        .prop_map(str::to_string),
        "[a-z/]{0,16}",
    ]
    .prop_filter("not a child class", |c| c != "assets/folder" && c != "assets/asset")
}

/// A count as Sling may send it: a number or a numeric string.
fn count(n: u64, as_string: bool) -> Value {
    if as_string { Value::String(n.to_string()) } else { Value::from(n) }
}

/// A count to send, with whether to send it as a string. Mostly one a file length can be
/// (at most `i64::MAX`); at times a larger one, which a parser may refuse.
fn sent_count() -> impl Strategy<Value = Option<(u64, bool)>> {
    prop::option::of((prop_oneof![9 => 0..=i64::MAX as u64, 1 => any::<u64>()], any::<bool>()))
}

/// True when a count read back is the one sent, or, for a count past `i64::MAX` (which no
/// file length can be), nothing.
fn same_count(read: Option<u64>, sent: Option<(u64, bool)>) -> bool {
    match sent {
        Some((n, _)) if n > i64::MAX as u64 => read.is_none() || read == Some(n),
        sent => read == sent.map(|(n, _)| n),
    }
}

/// The Siren self href of `name` in a folder, as AEM writes it.
fn self_href(name: &str) -> String {
    format!("https://dam.example.com/api/assets/we%20retail/f/{}.json", encode_segment(name))
}

/// One entity of a listing page, and the child it must read as (`None`: not a child).
fn listing_entity() -> impl Strategy<Value = (Value, Option<(String, EntryKind)>)> {
    let kind = prop_oneof![Just(Some(EntryKind::Folder)), Just(Some(EntryKind::Asset)), Just(None)];
    let classes = prop::collection::vec(other_class(), 0..3);
    (kind, remote_name(), other_class(), classes, any::<Index>(), 0..3u8, any::<bool>()).prop_map(
        |(kind, name, other, mut classes, at, named_by, single)| {
            let main = match kind {
                Some(EntryKind::Folder) => "assets/folder".to_string(),
                Some(EntryKind::Asset) => "assets/asset".to_string(),
                None => other,
            };
            // `single`: `class` and `rel` as single strings rather than lists, as tolerated.
            let class = if classes.is_empty() && single {
                Value::String(main)
            } else {
                classes.insert(at.index(classes.len() + 1), main);
                json!(classes)
            };
            let rel = if single { json!("self") } else { json!(["self"]) };
            let mut entity = json!({"class": class, "rel": ["child"]});
            // 0: the name in properties; 1: only in the self link; 2: both, properties winning.
            if named_by != 1 {
                entity["properties"] = json!({"name": name, "dc:title": "Title", "contentFragment": false});
            }
            if named_by != 0 {
                let href = if named_by == 2 { self_href(&format!("{name}-self")) } else { self_href(&name) };
                let parent = "https://dam.example.com/api/assets/x.json";
                entity["links"] = json!([{"rel": ["parent"], "href": parent}, {"rel": rel, "href": href}]);
            }
            (entity, kind.map(|k| (name, k)))
        },
    )
}

/// A Sling rendition node with an optional size and MIME type (`{}` when neither is known
/// and `empty` is set).
fn rendition_node(size: Option<(u64, bool)>, mime: &Option<String>, empty: bool) -> Value {
    if size.is_none() && mime.is_none() && empty {
        return json!({});
    }
    let mut content = Map::new();
    content.insert("jcr:primaryType".into(), json!("nt:resource"));
    if let Some((n, as_string)) = size {
        content.insert(":jcr:data".into(), count(n, as_string));
    }
    if let Some(mime) = mime {
        content.insert("jcr:mimeType".into(), json!(mime));
    }
    json!({"jcr:primaryType": "nt:file", "jcr:content": content})
}

type Renditions = BTreeMap<String, (Option<(u64, bool)>, Option<String>, bool)>;

/// Renditions other than `original`, by name.
fn other_renditions() -> impl Strategy<Value = Renditions> {
    let name = remote_name().prop_filter("a rendition name", |n| {
        n != "original" && !n.starts_with("jcr:") && !n.starts_with(':')
    });
    let mime = prop::option::of(prop::sample::select(vec!["image/png", "image/jpeg", "application/xml"]))
        .prop_map(|m| m.map(str::to_string));
    let size = sent_count();
    prop::collection::btree_map(name, (size, mime, any::<bool>()), 0..8)
}

/// A `renditions.2.json` holding `others`, and the node's own properties and a stray value.
fn renditions_object(others: &Renditions) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("jcr:primaryType".into(), json!("nt:folder"));
    object.insert("jcr:created".into(), json!("Fri Oct 25 2024 18:11:57 GMT+0000"));
    for (name, (size, mime, empty)) in others {
        object.insert(name.clone(), rendition_node(*size, mime, *empty));
    }
    object.entry("stray").or_insert(json!("a string, not a node"));
    object
}

/// Where a generated QueryBuilder hit lies relative to the folder asked about.
#[derive(Debug, Clone)]
enum Place {
    /// Directly in the folder.
    In,
    /// In a subfolder of it.
    Deeper(String),
    /// Beside it: a sibling folder, or outside the DAM for the root.
    Beside,
    /// Outside the DAM.
    Outside,
    /// Not a hit one can read a path from.
    Junk,
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        4 => Just(Place::In),
        1 => segment().prop_map(Place::Deeper),
        1 => Just(Place::Beside),
        1 => Just(Place::Outside),
        1 => Just(Place::Junk),
    ]
}

/// A generated hit: where, the asset's name, its size (as a string or not), whether the
/// properties are nested objects or flat keys, and whether the path is under `path`.
type Hit = (Place, String, Option<(u64, bool)>, bool, bool);

fn hit() -> impl Strategy<Value = Hit> {
    (place(), segment(), sent_count(), any::<bool>(), any::<bool>())
}

/// A folder's repository path with a trailing slash.
fn jcr_dir(folder: &str) -> String {
    if folder.is_empty() { "/content/dam/".into() } else { format!("/content/dam/{folder}/") }
}

fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() { name.to_string() } else { format!("{folder}/{name}") }
}

/// The JSON of a hit, and its DAM path if it has one.
fn hit_json(folder: &str, (place, name, size, nested, under_path): &Hit) -> (Value, Option<String>) {
    let jcr_path = match place {
        Place::In => format!("{}{name}", jcr_dir(folder)),
        Place::Deeper(sub) => format!("{}{sub}/{name}", jcr_dir(folder)),
        Place::Beside if folder.is_empty() => format!("/content/damx/{name}"),
        Place::Beside => format!("/content/dam/{folder}x/{name}"),
        Place::Outside => format!("/content/other/{name}"),
        Place::Junk if *nested => return (json!("junk"), None),
        Place::Junk => return (json!({"jcr:content": {"metadata": {"dam:size": 1}}}), None),
    };
    let key = if *under_path { "path" } else { "jcr:path" };
    let mut hit = json!({key: jcr_path});
    if let Some((n, as_string)) = size {
        if *nested {
            hit["jcr:content"] = json!({"jcr:lastModified": "Fri Oct 25 2024 18:11:57 GMT+0000",
                                        "metadata": {"dam:size": count(*n, *as_string)}});
        } else {
            hit["jcr:content/metadata/dam:size"] = count(*n, *as_string);
        }
    }
    let dam_path = jcr_path.strip_prefix("/content/dam/").map(str::to_string);
    (hit, dam_path)
}

/// A name the mount can show, at times close to the 255-byte limit.
fn valid_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => remote_name(),
        1 => "[a-z]{240,255}",
        1 => "[a-z]{230,250}\\.[a-z]{1,4}",
    ]
    .prop_filter("a valid name", |n| invalid_name(n).is_none())
}

/// Asset paths as a `.tags` directory lists them (sorted, each once), in a few folders and
/// with a few names, so that names are shared.
fn asset_paths(names: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<String>> {
    let folder = prop::sample::select(vec!["", "a", "b", "we retail/en", "日本/x"]);
    (prop::collection::vec(names, 1..4), prop::collection::vec((folder, any::<Index>()), 1..10)).prop_map(
        |(names, picks)| {
            let mut paths: Vec<String> =
                picks.iter().map(|(folder, n)| join(folder, n.get::<String>(&names))).collect();
            paths.sort();
            paths.dedup();
            paths
        },
    )
}

/// Short names built to collide with the ` (2)` suffixes link names add.
fn suffixed_name() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "photo", ".hidden"]),
        prop::sample::select(vec!["", " (2)", " (3)"]),
        prop::sample::select(vec!["", ".jpg", ".tar.gz"]),
    )
        .prop_map(|(stem, suffix, ext)| format!("{stem}{suffix}{ext}"))
}

// ---------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_bytes_make_a_parser_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&body);
    }

    #[test]
    fn no_json_makes_a_parser_panic(value in json_value()) {
        all_parsers(&serde_json::to_vec(&value).unwrap());
        // The same value where each parser looks for its list.
        for key in ["entities", "hits"] {
            all_parsers(&serde_json::to_vec(&json!({key: [value.clone()], "success": true})).unwrap());
        }
    }

    #[test]
    fn listing_pages_read_back(
        entities in prop::collection::vec(listing_entity(), 0..12),
        total in sent_count(),
        page_class in prop_oneof![
            Just(json!(["assets/folder"])),
            Just(json!("assets/folder")),
            other_class().prop_map(|c| json!([c])),
        ],
    ) {
        let (values, expected): (Vec<Value>, Vec<_>) = entities.into_iter().unzip();
        let mut properties = json!({"name": "f", "dc:title": "F"});
        if let Some((n, as_string)) = total {
            properties["srn:paging"] = json!({"total": count(n, as_string), "offset": 0, "limit": 20});
        }
        let page = json!({"class": page_class, "properties": properties, "entities": values,
                          "links": [{"rel": ["self"], "href": self_href("f")}],
                          "actions": [{"name": "add-asset"}]});
        let (children, read_total) = wire::listing_page(&serde_json::to_vec(&page).unwrap()).unwrap();
        let read: Vec<(String, EntryKind)> = children.into_iter().map(|c| (c.name, c.kind)).collect();
        let expected: Vec<(String, EntryKind)> = expected.into_iter().flatten().collect();
        prop_assert_eq!(read, expected);
        prop_assert!(same_count(read_total, total), "total {:?} read as {:?}", total, read_total);
    }

    #[test]
    fn sling_renditions_read_back(
        original_size in sent_count(),
        others in other_renditions(),
    ) {
        let mut object = renditions_object(&others);
        let original_mime = Some("image/jpeg".to_string());
        object.insert("original".into(), rendition_node(original_size, &original_mime, false));
        let read = wire::renditions(&serde_json::to_vec(&object).unwrap()).unwrap();
        // `original` first, then the others by name, as a BTreeMap orders them.
        let mut expected = vec![("original".to_string(), original_size, original_mime)];
        expected.extend(others.iter().map(|(name, (size, mime, _))| (name.clone(), *size, mime.clone())));
        let names: Vec<&str> = read.iter().map(|r| r.name.as_str()).collect();
        prop_assert_eq!(names, expected.iter().map(|(name, ..)| name.as_str()).collect::<Vec<_>>());
        for (r, (_, size, mime)) in read.iter().zip(&expected) {
            prop_assert!(same_count(r.size, *size), "{:?} sent with size {:?}", r, size);
            prop_assert_eq!(&r.mime, mime);
        }
    }

    #[test]
    fn renditions_without_original_are_an_error(others in other_renditions(), stray in json_value()) {
        let mut object = renditions_object(&others);
        prop_assert!(wire::renditions(&serde_json::to_vec(&object).unwrap()).is_err());
        // An `original` that is not a node is no better.
        if !stray.is_object() {
            object.insert("original".into(), stray);
            prop_assert!(wire::renditions(&serde_json::to_vec(&object).unwrap()).is_err());
        }
    }

    #[test]
    fn querybuilder_hits_read_back(
        folder in dam_path(0..3),
        hits in prop::collection::vec(hit(), 0..12),
        more in any::<bool>(),
    ) {
        let (values, in_dam): (Vec<Value>, Vec<Option<String>>) =
            hits.iter().map(|h| hit_json(&folder, h)).unzip();
        let answer = json!({"success": true, "results": values.len(), "total": values.len(), "more": more,
                            "offset": 0, "hits": values});
        let body = serde_json::to_vec(&answer).unwrap();

        let attrs = wire::query_attrs(&body, &folder).unwrap();
        let expected: Vec<(String, Option<(u64, bool)>)> = hits
            .iter()
            .filter(|(place, ..)| matches!(place, Place::In))
            .map(|(_, name, size, ..)| (join(&folder, name), *size))
            .collect();
        let paths_read: Vec<&str> = attrs.iter().map(|a| a.path.as_str()).collect();
        prop_assert_eq!(paths_read, expected.iter().map(|(path, _)| path.as_str()).collect::<Vec<_>>());
        for (a, (_, size)) in attrs.iter().zip(&expected) {
            prop_assert!(same_count(a.size, *size), "{:?} sent with size {:?}", a, size);
        }

        // As search hits, every hit in the DAM counts, wherever it is.
        let expected: Vec<String> = in_dam.into_iter().flatten().collect();
        prop_assert_eq!(wire::search_hits(&body).unwrap(), expected);
    }

    #[test]
    fn segments_encode_to_unreserved_ascii_and_decode_back(
        name in prop_oneof![remote_name(), any::<String>()],
    ) {
        let encoded = encode_segment(&name);
        let bytes = encoded.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let unreserved = b.is_ascii_alphanumeric() || b"-._~%".contains(&b);
            prop_assert!(unreserved, "{:?} in {:?}", b as char, encoded);
            if b == b'%' {
                let escape = bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                prop_assert!(escape, "a lone % in {:?}", encoded);
            }
        }
        prop_assert_eq!(decode(&encoded), name.clone());
        // What AEM sends back as the self href of that name names it again.
        if !name.is_empty() {
            prop_assert_eq!(wire::name_from_href(&self_href(&name)), Some(name));
        }
    }

    #[test]
    fn dam_paths_encode_segment_by_segment(path in dam_path(1..5)) {
        let encoded = wire::encode_dam_path(&path).unwrap();
        prop_assert!(!encoded.contains([' ', '?', '#']), "{:?}", encoded);
        let segments: Vec<&str> = path.split('/').collect();
        let encoded_segments: Vec<&str> = encoded.split('/').collect();
        prop_assert_eq!(encoded_segments.len(), segments.len());
        for (encoded, segment) in encoded_segments.iter().zip(&segments) {
            prop_assert_eq!(*encoded, encode_segment(segment));
            prop_assert_eq!(&decode(encoded), segment);
        }
    }

    #[test]
    fn any_dam_path_encodes_or_is_refused(
        path in prop_oneof![dam_path(0..4), any::<String>(), "[a./]{0,8}"],
    ) {
        let valid = path.is_empty() || path.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        match wire::encode_dam_path(&path) {
            Ok(encoded) => {
                prop_assert!(valid, "{:?} was encoded as {:?}", path, encoded);
                let decoded: Vec<String> = encoded.split('/').map(decode).collect();
                prop_assert_eq!(decoded.join("/"), path);
            }
            Err(_) => prop_assert!(!valid, "{:?} was refused", path),
        }
    }

    #[test]
    fn valid_names_are_posix_names(
        name in prop_oneof![
            any::<String>(),
            remote_name(),
            prop::collection::vec(prop::sample::select(vec!['a', '/', '\0', '.', 'é', '🙂']), 0..300)
                .prop_map(String::from_iter),
            "[a-z.]{250,260}",
            prop::sample::select(vec!["", ".", "..", "...", "/", "\0"]).prop_map(str::to_string),
        ],
    ) {
        if invalid_name(&name).is_none() {
            prop_assert!(!name.is_empty());
            prop_assert!(name != "." && name != "..");
            prop_assert!(!name.contains('/') && !name.contains('\0'), "{:?}", name);
            prop_assert!(name.len() <= 255, "{} bytes", name.len());
        }
    }

    #[test]
    fn link_names_are_valid_names(assets in asset_paths(valid_name())) {
        let links = link_names(assets.clone());
        prop_assert_eq!(links.len(), assets.len());
        for ((name, target), asset) in links.iter().zip(&assets) {
            prop_assert_eq!(target, asset);
            prop_assert!(!name.contains('/'), "{:?}", name);
            prop_assert_eq!(invalid_name(name), None, "{:?} ({} bytes) among {:?}", name, name.len(), assets);
        }
    }

    #[test]
    fn link_names_are_distinct(assets in asset_paths(suffixed_name())) {
        let links = link_names(assets.clone());
        let mut seen = HashSet::new();
        for (name, _) in &links {
            prop_assert!(seen.insert(name.clone()), "{:?} named twice among {:?}", name, links);
        }
    }

    #[test]
    fn link_targets_lead_back_to_the_mount_root(
        dir in prop::collection::vec(valid_name(), 0..6),
        rel in prop::collection::vec(valid_name(), 1..4),
    ) {
        let target = link_target(dir.len(), &rel.join("/"));
        prop_assert!(!target.starts_with('/'), "{:?}", target);
        // Resolve the target from the link's directory, component by component.
        let mut at: Vec<&str> = dir.iter().map(String::as_str).collect();
        for component in target.split('/') {
            if component == ".." {
                prop_assert!(at.pop().is_some(), "{:?} climbs above the mount root", target);
            } else {
                at.push(component);
            }
        }
        prop_assert_eq!(at, rel.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
