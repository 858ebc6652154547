use super::*;

#[test]
fn segments_are_decoded_after_splitting() {
    assert_eq!(split_path("/").ok(), Some(vec![]));
    assert_eq!(
        split_path("/content/dam/Caf%C3%A9%20au%20lait.jpg").ok(),
        Some(vec!["content".into(), "dam".into(), "Café au lait.jpg".into()])
    );
    assert_eq!(split_path("/a/a+b").ok(), Some(vec!["a".into(), "a+b".into()]));
    for bad in ["/a/../b", "/a/%2e%2e/b", "/a/b%2Fc", "/a//b", "/a/b/", "/a/%5C", "/a/%00", "relative"] {
        let err = split_path(bad).expect_err(bad);
        assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(split_path("/a/.hidden").expect_err("hidden").status, StatusCode::NOT_FOUND);
    assert_eq!(split_path("/a/%2Ehidden").expect_err("hidden").status, StatusCode::NOT_FOUND);
}

#[test]
fn queries_decode_plus_as_space() {
    let q = parse_query("p.properties=jcr:path+jcr:content/metadata/dam:size&path=/content/dam/a%20b&x")
        .expect("valid");
    assert_eq!(q[0], ("p.properties".into(), "jcr:path jcr:content/metadata/dam:size".into()));
    assert_eq!(q[1], ("path".into(), "/content/dam/a b".into()));
    assert_eq!(q[2], ("x".into(), "".into()));
}

#[test]
fn sling_resolution() {
    use sling::INFINITY;
    let names = ["a.jpg", "metadata", "cq5dam.thumbnail.48.48.png", "renditions"];
    let exists = |n: &str| names.contains(&n);
    assert_eq!(resolve_last("a.jpg", exists), Last::Exact("a.jpg".into()));
    assert_eq!(resolve_last("a.jpg.json", exists), Last::Json { name: "a.jpg".into(), depth: 0 });
    assert_eq!(resolve_last("renditions.2.json", exists), Last::Json { name: "renditions".into(), depth: 2 });
    assert_eq!(
        resolve_last("cq5dam.thumbnail.48.48.png.json", exists),
        Last::Json { name: "cq5dam.thumbnail.48.48.png".into(), depth: 0 }
    );
    assert_eq!(
        resolve_last("metadata.infinity.json", exists),
        Last::Json { name: "metadata".into(), depth: INFINITY }
    );
    assert!(matches!(resolve_last("metadata.tidy.json", exists), Last::BadSelector(_)));
    assert_eq!(resolve_last("nothing.json", exists), Last::Missing);
    assert_eq!(resolve_last("nothing", exists), Last::Missing);
}
