use super::*;

fn names(children: &[Child]) -> Vec<String> {
    let mut names: Vec<String> = children.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names
}

/// Sets the modification time of `dir` to `ago` before now.
fn age(dir: &Path, ago: Duration) {
    let file = fs::File::open(dir).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn kept_children_last_until_the_folder_changes() {
    let dam = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let dir = dam.path().join("f");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.jpg"), b"a").unwrap();
    age(&dir, Duration::from_secs(60));
    let catalog = Catalog::open(dam.path(), state.path(), Auth::default()).unwrap();
    let Some(Entry::Folder(folder)) = catalog.lookup(&["f".to_string()]).unwrap() else { panic!() };
    let first = catalog.children(&folder).unwrap();
    assert!(Arc::ptr_eq(&first, &catalog.children(&folder).unwrap()), "kept");
    fs::write(dir.join("b.jpg"), b"b").unwrap();
    assert_eq!(
        names(&catalog.children(&folder).unwrap()),
        ["a.jpg", "b.jpg"],
        "the new time shows the change"
    );
    // A time too recent to tell a later change within the same clock tick: not kept.
    let fresh = catalog.children(&folder).unwrap();
    assert!(!Arc::ptr_eq(&fresh, &catalog.children(&folder).unwrap()));
    // Kept again once the time is old; a removal moves it on.
    age(&dir, Duration::from_secs(60));
    let kept = catalog.children(&folder).unwrap();
    fs::remove_file(dir.join("a.jpg")).unwrap();
    age(&dir, Duration::from_secs(30));
    assert!(!Arc::ptr_eq(&kept, &catalog.children(&folder).unwrap()));
    assert_eq!(names(&catalog.children(&folder).unwrap()), ["b.jpg"]);
}

#[test]
fn names_that_are_never_served() {
    for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a\0b", ".damfs-sidecar.json"] {
        assert!(name_problem(bad).is_some(), "{bad:?}");
    }
    for good in ["a", "Café au lait.jpg", "a+b (1).jpg", "日本 庭園.png", "x..y"] {
        assert!(name_problem(good).is_none(), "{good:?}");
    }
}
