//! Tests of `damfs sample` as a user sees it: the tree on disk and its sidecar.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::documents::tests::assert_valid_pdf;
use super::{BULK_FOLDER, LARGE_ASSET, SampleOptions, SampleSummary, generate};
use crate::sidecar::{SIDECAR_NAME, Sidecar};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Characters AEM refuses in asset and folder names.
const FORBIDDEN: &[char] = &['*', '/', ':', '[', '\\', ']', '|', '#', '%', '{', '}', '?', '&'];

fn sample(dir: &Path, assets: usize, seed: u64, large_size: u64) -> SampleSummary {
    let options = SampleOptions { dir: dir.to_path_buf(), assets, seed, large_size };
    generate(&options).expect("sample generated")
}

/// Every file and folder below `root`, sorted: (relative path, is folder).
fn walk(root: &Path) -> Vec<(String, PathBuf, bool)> {
    fn visit(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, bool)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let is_dir = path.is_dir();
            out.push((relative, path.clone(), is_dir));
            if is_dir {
                visit(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(root, root, &mut out);
    out.sort();
    out
}

/// Relative paths and full paths of the assets (every file but the sidecar).
fn assets(root: &Path) -> Vec<(String, PathBuf)> {
    walk(root)
        .into_iter()
        .filter(|(rel, _, is_dir)| !is_dir && rel != SIDECAR_NAME)
        .map(|(r, p, _)| (r, p))
        .collect()
}

/// A digest of the whole tree: every relative path with its bytes' SHA-256 and its mtime.
fn digest(root: &Path) -> Vec<(String, String, SystemTime)> {
    let mut entries: Vec<_> = walk(root)
        .into_iter()
        .map(|(relative, path, is_dir)| {
            let hash = if is_dir {
                String::new()
            } else {
                format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()))
            };
            (relative, hash, std::fs::metadata(&path).unwrap().modified().unwrap())
        })
        .collect();
    entries.push((".".into(), String::new(), std::fs::metadata(root).unwrap().modified().unwrap()));
    entries
}

#[test]
fn same_seed_writes_identical_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let summary_a = sample(&a, 40, 7, 256 * KIB);
    let summary_b = sample(&b, 40, 7, 256 * KIB);
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(std::fs::read(a.join(SIDECAR_NAME)).unwrap(), std::fs::read(b.join(SIDECAR_NAME)).unwrap());
    assert_eq!(SampleSummary { dir: b.clone(), ..summary_a }, summary_b);
}

#[test]
fn different_seed_writes_different_content_under_the_same_names() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    sample(&a, 40, 7, 256 * KIB);
    sample(&b, 40, 8, 256 * KIB);
    let (files_a, files_b) = (assets(&a), assets(&b));
    let names = |files: &[(String, PathBuf)]| files.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>();
    assert_eq!(names(&files_a), names(&files_b));
    let differing = files_a
        .iter()
        .zip(&files_b)
        .filter(|((_, pa), (_, pb))| std::fs::read(pa).unwrap() != std::fs::read(pb).unwrap())
        .count();
    assert_eq!(differing, files_a.len(), "every asset changes with the seed");
    assert_ne!(std::fs::read(a.join(SIDECAR_NAME)).unwrap(), std::fs::read(b.join(SIDECAR_NAME)).unwrap());
    assert_ne!(digest(&a), digest(&b));
}

#[test]
fn writes_the_requested_number_of_assets() {
    for n in [1, 7, 60] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sample");
        let summary = sample(&dir, n, 1, 64 * KIB);
        assert_eq!(assets(&dir).len(), n, "{n} assets on disk");
        assert_eq!(Sidecar::load(&dir).unwrap().assets.len(), n);
        assert_eq!(summary.assets, n);
        assert_eq!(summary.largest_folder, BULK_FOLDER);
        assert!(summary.largest_folder_assets * 6 >= n * 5, "{n}: {summary}");
        let on_disk: u64 = assets(&dir).iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
        assert_eq!(summary.total_bytes, on_disk);
    }
}

#[test]
fn default_size_has_one_folder_of_at_least_1000_assets_and_varied_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    let summary = sample(&dir, 1200, 1, MIB);
    let files = assets(&dir);
    assert_eq!(files.len(), 1200);
    let in_bulk =
        files.iter().filter(|(r, _)| r.rsplit_once('/').map(|(p, _)| p) == Some(BULK_FOLDER)).count();
    assert!(in_bulk >= 1000, "{in_bulk} assets in {BULK_FOLDER}");
    assert_eq!((summary.largest_folder.as_str(), summary.largest_folder_assets), (BULK_FOLDER, in_bulk));
    let folders: BTreeSet<&str> =
        files.iter().filter_map(|(r, _)| r.rsplit_once('/').map(|(p, _)| p)).collect();
    assert!(folders.len() >= 10, "assets spread over {} folders", folders.len());
    assert!(folders.contains("we-retail/fr/Collection été"));
    assert!(folders.contains("documents"));
    assert!(folders.contains("panoramas"));

    let sizes: Vec<u64> = files
        .iter()
        .filter(|(r, _)| r.ends_with(".jpg") || r.ends_with(".png"))
        .filter(|(r, _)| r != LARGE_ASSET)
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .collect();
    assert!(sizes.iter().any(|&s| s < 8 * KIB), "small pictures");
    assert!(sizes.iter().any(|&s| s > 100 * KIB), "pictures of hundreds of KiB");
    assert!(sizes.iter().all(|&s| s < 2 * MIB), "no other picture is large");
    assert!(files.iter().any(|(r, _)| r.ends_with(".png") && !r.starts_with(BULK_FOLDER)));
}

#[test]
fn pictures_decode_and_the_large_asset_is_large_enough() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    let large = 3 * MIB;
    let summary = sample(&dir, 60, 1, large);
    let mut dimensions = BTreeSet::new();
    let mut pictures = 0;
    for (relative, path) in assets(&dir) {
        if relative.ends_with(".jpg") || relative.ends_with(".png") {
            let picture = image::open(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
            dimensions.insert((picture.width(), picture.height()));
            pictures += 1;
        }
    }
    assert!(pictures >= 50);
    assert!(dimensions.len() >= pictures * 3 / 4, "varied sizes: {} of {pictures}", dimensions.len());
    let large_path = dir.join(LARGE_ASSET);
    let len = std::fs::metadata(&large_path).unwrap().len();
    assert!(len >= large, "{len} bytes");
    assert_eq!(summary.large_asset, Some((LARGE_ASSET.to_string(), len)));
    let picture = image::open(&large_path).unwrap();
    assert!(u64::from(picture.width()) * u64::from(picture.height()) * 3 <= len);
}

#[test]
fn documents_and_awkward_names_are_there_and_names_are_legal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    let summary = sample(&dir, 60, 1, 0);
    assert_eq!(summary.large_asset, None);
    let files = assets(&dir);
    let pdf = files.iter().find(|(r, _)| r.ends_with(".pdf")).expect("a PDF");
    assert_valid_pdf(&std::fs::read(&pdf.1).unwrap());
    let txt = files.iter().find(|(r, _)| r.ends_with(".txt")).expect("a text file");
    assert!(!String::from_utf8(std::fs::read(&txt.1).unwrap()).unwrap().is_empty());

    let names: Vec<String> = walk(&dir)
        .into_iter()
        .filter(|(r, ..)| r != SIDECAR_NAME)
        .map(|(r, ..)| r.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| n.contains(' ') && !n.ends_with('/')));
    assert!(names.iter().any(|n| !n.is_ascii()));
    assert!(names.iter().any(|n| n.contains('+')));
    assert!(names.iter().any(|n| n.contains("(1)")));
    assert!(walk(&dir).iter().any(|(r, _, is_dir)| *is_dir && r.contains(' ')), "a folder with a space");
    for name in &names {
        assert!(!name.contains(FORBIDDEN), "{name}");
        assert!(!name.starts_with('.'), "{name}");
        assert!(name.len() <= 255 && !name.is_empty());
    }
    for wanted in ["we-retail/en/products/Café au lait.jpg", "we-retail/ja/日本 庭園.jpg"] {
        assert!(files.iter().any(|(r, _)| r == wanted), "{wanted}");
    }
}

#[test]
fn sidecar_describes_exactly_the_assets_with_a_consistent_taxonomy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    sample(&dir, 60, 1, 64 * KIB);
    let sidecar = Sidecar::load(&dir).unwrap();
    let on_disk: BTreeSet<String> = assets(&dir).into_iter().map(|(r, _)| r).collect();
    assert_eq!(sidecar.assets.keys().cloned().collect::<BTreeSet<_>>(), on_disk);

    assert!(sidecar.namespaces.len() >= 3);
    for (id, info) in &sidecar.tags {
        assert!(!info.title.is_empty(), "{id}");
        let (namespace, local) = id.split_once(':').unwrap();
        assert!(sidecar.namespaces.contains_key(namespace), "{id}");
        let mut path = local;
        while let Some((parent, _)) = path.rsplit_once('/') {
            assert!(sidecar.tags.contains_key(&format!("{namespace}:{parent}")), "ancestor of {id}");
            path = parent;
        }
    }
    assert!(sidecar.tags.keys().any(|id| id.matches('/').count() >= 2), "tags nested two levels");
    assert!(sidecar.tags.values().any(|t| t.titles.contains_key("de") && t.titles.contains_key("fr")));

    let moved: Vec<(&String, &String)> =
        sidecar.tags.iter().filter_map(|(id, t)| t.moved_to.as_ref().map(|to| (id, to))).collect();
    assert_eq!(moved.len(), 1);
    let (old_id, new_id) = moved[0];
    assert!(sidecar.tags.contains_key(new_id));
    assert!(sidecar.assets.values().any(|a| a.tags.contains(old_id)), "an asset keeps the old tag ID");

    for (path, asset) in &sidecar.assets {
        assert!(asset.tags.len() <= 3, "{path}");
        for tag in &asset.tags {
            assert!(sidecar.tags.contains_key(tag), "{path}: {tag}");
        }
    }
    assert!(sidecar.assets.values().any(|a| a.title.is_none()), "some assets have no dc:title");
    assert!(sidecar.assets.values().filter(|a| a.title.is_some()).count() > 30);
    assert!(sidecar.assets.values().any(|a| a.tags.is_empty()));
    assert!(sidecar.assets.values().any(|a| a.tags.len() == 3));
    for (relative, _, is_dir) in walk(&dir) {
        if is_dir {
            assert!(sidecar.folders.get(&relative).is_some_and(|f| !f.title.is_empty()), "{relative}");
        }
    }
}

#[test]
fn modification_times_fall_in_2024() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sample");
    sample(&dir, 20, 3, 16 * KIB);
    let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_704_067_200);
    let end = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600);
    let times: BTreeSet<SystemTime> = digest(&dir).into_iter().map(|(_, _, t)| t).collect();
    assert!(times.iter().all(|t| (start..end).contains(t)));
    assert!(times.len() > 10, "times are spread out");
}

#[test]
fn a_non_empty_folder_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("precious");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let before = digest(&dir);
    let options = SampleOptions { dir: dir.clone(), assets: 10, seed: 1, large_size: 0 };
    let err = generate(&options).unwrap_err().to_string();
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(digest(&dir), before);
}

#[test]
fn a_file_in_place_of_the_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"mine").unwrap();
    let options = SampleOptions { dir: file.clone(), assets: 10, seed: 1, large_size: 0 };
    let err = generate(&options).unwrap_err().to_string();
    assert!(err.contains("not a folder"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
}

#[test]
fn an_empty_folder_and_a_missing_one_are_both_accepted() {
    let empty = tempfile::tempdir().unwrap();
    sample(empty.path(), 3, 1, 0);
    assert_eq!(assets(empty.path()).len(), 3);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("x/y/z");
    sample(&missing, 3, 1, 0);
    assert_eq!(assets(&missing).len(), 3);
}

#[test]
fn summary_names_the_counts_and_the_large_asset() {
    let summary = SampleSummary {
        dir: PathBuf::from("/tmp/s"),
        assets: 1200,
        folders: 17,
        total_bytes: 3 * MIB / 2,
        largest_folder: BULK_FOLDER.to_string(),
        largest_folder_assets: 1000,
        large_asset: Some((LARGE_ASSET.to_string(), 64 * MIB)),
    };
    let text = summary.to_string();
    assert!(text.contains("1200 assets in 17 folders (1.5 MiB)"), "{text}");
    assert!(text.contains(&format!("{BULK_FOLDER} (1000 assets)")), "{text}");
    assert!(text.contains(&format!("{LARGE_ASSET} (64.0 MiB, {} bytes)", 64 * MIB)), "{text}");
}
