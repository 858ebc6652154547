//! Tests of the fake remote, kept to what guards real behaviour: it answers as the AEM client
//! does (repository order, `original` first, ranges, tag moves), and its counters, on which
//! the exact request counts of the vfs tests rest, count. Its stall and slow-body controls
//! are checked by the vfs tests that use them, which fail if a control does nothing.

use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::time::timeout;

use super::*;

/// Generous bound that only catches a hang.
const HANG: Duration = Duration::from_secs(10);

fn sample() -> FakeRemote {
    let fake = FakeRemote::new();
    fake.add_folder("we-retail/en/activities");
    fake.add_asset(
        "we-retail/en/activities/hiking.jpg",
        FakeAsset::new(&b"0123456789"[..])
            .with_format("image/jpeg")
            .with_title("Hiking")
            .with_tags(&["we-retail:activity/hiking", "season/summer"])
            .with_modified(UNIX_EPOCH + Duration::from_secs(1_729_879_917))
            .with_rendition("cq5dam.thumbnail.48.48.png", &b"thumb"[..])
            .with_rendition("cqdam.metadata.xml", &b"<x/>"[..]),
    );
    fake.add_folder("we-retail/en/activities/summer");
    fake.add_asset("we-retail/en/activities/Café au lait.png", FakeAsset::new(&b"png"[..]));
    fake
}

async fn collect(download: Download) -> RemoteResult<Vec<u8>> {
    let mut body = download.body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn names(listing: &FolderListing) -> Vec<(&str, EntryKind)> {
    listing.children.iter().map(|c| (c.name.as_str(), c.kind)).collect()
}

#[tokio::test]
async fn tree_is_served_in_insertion_order() {
    let fake = sample();
    fake.check("").await.unwrap();
    fake.check("we-retail").await.unwrap();
    assert_eq!(
        fake.check("we-retail/en/activities/hiking.jpg").await.unwrap_err().kind,
        RemoteErrorKind::Other
    );
    assert_eq!(fake.check("nope").await.unwrap_err().kind, RemoteErrorKind::NotFound);

    let listing = fake.list_folder("we-retail/en/activities").await.unwrap();
    assert_eq!(
        names(&listing),
        vec![
            ("hiking.jpg", EntryKind::Asset),
            ("summer", EntryKind::Folder),
            ("Café au lait.png", EntryKind::Asset)
        ]
    );
    assert_eq!(names(&fake.list_folder("").await.unwrap()), vec![("we-retail", EntryKind::Folder)]);
    assert_eq!(fake.list_folder("missing").await.unwrap_err().kind, RemoteErrorKind::NotFound);

    fake.remove("we-retail/en/activities/summer");
    assert_eq!(fake.list_folder("we-retail/en/activities").await.unwrap().children.len(), 2);
    assert_eq!(
        fake.list_folder("we-retail/en/activities/summer").await.unwrap_err().kind,
        RemoteErrorKind::NotFound
    );
}

#[tokio::test]
async fn attributes_metadata_and_renditions() {
    let fake = sample();
    let attrs = fake.folder_attrs("we-retail/en/activities", &[]).await.unwrap();
    assert_eq!(attrs.len(), 2);
    assert_eq!(attrs[0].path, "we-retail/en/activities/hiking.jpg");
    assert_eq!(attrs[0].size, Some(10));
    assert_eq!(attrs[0].format.as_deref(), Some("image/jpeg"));
    assert_eq!(attrs[0].modified, Some(UNIX_EPOCH + Duration::from_secs(1_729_879_917)));
    assert!(fake.folder_attrs("unknown", &[]).await.unwrap().is_empty());

    let m = fake.asset_metadata("we-retail/en/activities/hiking.jpg").await.unwrap();
    assert_eq!(m.title.as_deref(), Some("Hiking"));
    assert_eq!(m.size, Some(10));
    // sha1("0123456789")
    assert_eq!(m.sha1.as_deref(), Some("87acec17cd9dcd20a716cc2cf67417b71c8a7016"));
    assert_eq!(m.tags, vec!["we-retail:activity/hiking", "season/summer"]);
    assert_eq!(m.raw.get("dc:format").and_then(|v| v.as_str()), Some("image/jpeg"));
    assert_eq!(fake.asset_metadata("we-retail/x.jpg").await.unwrap_err().kind, RemoteErrorKind::NotFound);

    let r = fake.renditions("we-retail/en/activities/hiking.jpg").await.unwrap();
    let list: Vec<_> = r.iter().map(|r| (r.name.as_str(), r.size, r.mime.as_deref())).collect();
    assert_eq!(
        list,
        vec![
            ("original", Some(10), Some("image/jpeg")),
            ("cq5dam.thumbnail.48.48.png", Some(5), Some("image/png")),
            ("cqdam.metadata.xml", Some(4), Some("application/xml")),
        ]
    );
}

#[tokio::test]
async fn fetch_honours_ranges() {
    let fake = sample();
    fake.set_chunk_size(3);
    let asset = "we-retail/en/activities/hiking.jpg";
    let whole = fake.fetch(asset, "original", None).await.unwrap();
    assert_eq!((whole.offset, whole.total_size), (0, Some(10)));
    assert_eq!(collect(whole).await.unwrap(), b"0123456789");

    let part = fake.fetch(asset, "original", Some(2..5)).await.unwrap();
    assert_eq!((part.offset, part.total_size), (2, Some(10)));
    assert_eq!(collect(part).await.unwrap(), b"234");

    let tail = fake.fetch(asset, "original", Some(8..100)).await.unwrap();
    assert_eq!(collect(tail).await.unwrap(), b"89");
    let at_end = fake.fetch(asset, "original", Some(10..20)).await.unwrap();
    assert_eq!((at_end.offset, at_end.total_size), (10, Some(10)));
    assert!(collect(at_end).await.unwrap().is_empty());
    assert_eq!(
        fake.fetch(asset, "original", Some(11..20)).await.unwrap_err().kind,
        RemoteErrorKind::NotFound
    );

    let thumb = fake.fetch(asset, "cq5dam.thumbnail.48.48.png", None).await.unwrap();
    assert_eq!(collect(thumb).await.unwrap(), b"thumb");
    assert_eq!(fake.fetch(asset, "nope.png", None).await.unwrap_err().kind, RemoteErrorKind::NotFound);
    assert_eq!(
        fake.fetch("we-retail/none.jpg", "original", None).await.unwrap_err().kind,
        RemoteErrorKind::NotFound
    );

    assert_eq!(fake.fetch_count(asset, "original"), 5);
    assert_eq!(fake.fetch_count(asset, "cq5dam.thumbnail.48.48.png"), 1);
    assert_eq!(fake.calls(Method::Fetch), 8);
}

#[tokio::test]
async fn counters_and_failures() {
    let fake = sample();
    fake.list_folder("").await.unwrap();
    fake.fail_next(Method::ListFolder, RemoteErrorKind::Timeout);
    fake.fail_next_any(RemoteErrorKind::Denied);
    // The method-specific failure is queued first, so the next listing times out …
    let e = fake.list_folder("").await.unwrap_err();
    assert_eq!((e.kind, e.cause.as_str()), (RemoteErrorKind::Timeout, "injected failure"));
    // … and the next call of anything is denied, once.
    assert_eq!(fake.check("").await.unwrap_err().kind, RemoteErrorKind::Denied);
    fake.check("").await.unwrap();

    fake.fail_always(Method::Tag, RemoteErrorKind::Other);
    for _ in 0..3 {
        assert_eq!(fake.tag("a:b").await.unwrap_err().kind, RemoteErrorKind::Other);
    }
    fake.fail_always_any(RemoteErrorKind::NotFound);
    assert_eq!(fake.search("", "x", 5).await.unwrap_err().kind, RemoteErrorKind::NotFound);
    assert_eq!(fake.tag("a:b").await.unwrap_err().kind, RemoteErrorKind::Other);
    fake.clear_failures();
    fake.list_folder("").await.unwrap();

    let counts = fake.counts();
    assert_eq!(counts, CallCounts { check: 2, list_folder: 3, tag: 4, search: 1, ..CallCounts::default() });
    assert_eq!(counts.total(), 10);
    assert_eq!(fake.calls(Method::Tag), 4);
    fake.reset_counts();
    assert_eq!(fake.counts().total(), 0);
}

#[tokio::test]
async fn tags_resolve_and_follow_moves() {
    let fake = FakeRemote::new();
    fake.add_tag("we-retail:activity/hiking", "Hiking", None);
    fake.add_tag("/content/cq:tags/default/season/summer", "", None);
    fake.add_tag("old:a", "Old A", Some("/content/cq:tags/new/a"));
    fake.add_tag("new:a", "New A", None);
    fake.add_tag("loop:x", "X", Some("loop:y"));
    fake.add_tag("loop:y", "Y", Some("loop:x"));

    let t = fake.tag("we-retail:activity/hiking").await.unwrap();
    assert_eq!(
        (t.id.as_str(), t.resolved_id.as_str(), t.title.as_str()),
        ("we-retail:activity/hiking", "we-retail:activity/hiking", "Hiking")
    );
    let t = fake.tag("/etc/tags/we-retail/activity/hiking").await.unwrap();
    assert_eq!(t.title, "Hiking");
    let t = fake.tag("season/summer").await.unwrap();
    assert_eq!(t.title, "summer");
    let t = fake.tag("old:a").await.unwrap();
    assert_eq!((t.resolved_id.as_str(), t.title.as_str()), ("new:a", "New A"));
    let t = timeout(HANG, fake.tag("loop:x")).await.unwrap().unwrap();
    assert_eq!(t.resolved_id, "loop:y");
    assert_eq!(fake.tag("none:x").await.unwrap_err().kind, RemoteErrorKind::NotFound);
    assert_eq!(fake.tag("/content/dam/x").await.unwrap_err().kind, RemoteErrorKind::NotFound);
}
