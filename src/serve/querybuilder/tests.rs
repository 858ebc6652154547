use super::*;

#[test]
fn nested_properties() {
    let mut out = Map::new();
    insert_nested(&mut out, "jcr:path", json!("/content/dam/a.jpg"));
    insert_nested(&mut out, "jcr:content/jcr:lastModified", json!("d"));
    insert_nested(&mut out, "jcr:content/metadata/dam:size", json!(5));
    insert_nested(&mut out, "jcr:content/metadata/dc:format", json!("image/jpeg"));
    assert_eq!(
        Value::Object(out),
        json!({"jcr:path": "/content/dam/a.jpg",
               "jcr:content": {"jcr:lastModified": "d",
                               "metadata": {"dam:size": 5, "dc:format": "image/jpeg"}}})
    );
}

#[test]
fn fulltext_words() {
    let hay: HashSet<String> = words("Hiking in the Alps.jpg we-retail:activity/hiking Café").collect();
    assert!(fulltext_match(&hay, &parse_fulltext("hiking ALPS")));
    assert!(fulltext_match(&hay, &parse_fulltext("café")));
    assert!(fulltext_match(&hay, &parse_fulltext("hik*")));
    assert!(!fulltext_match(&hay, &parse_fulltext("hik")));
    assert!(!fulltext_match(&hay, &parse_fulltext("hiking beach")));
    assert!(fulltext_match(&hay, &parse_fulltext("we-retail:activity")));
}

#[test]
fn limits() {
    let p = |pairs: &[(&str, &str)]| {
        Query::parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
    };
    assert_eq!(p(&[]).map(|q| q.limit).ok(), Some(Some(10)));
    assert_eq!(p(&[("p.limit", "-1")]).map(|q| q.limit).ok(), Some(None));
    assert!(p(&[("p.limit", "ten")]).is_err());
    assert!(p(&[("p.hits", "everything")]).is_err());
}
