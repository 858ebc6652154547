use super::*;

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
