//! The shape of the sample tree: its folders, which folder holds the bulk of the assets, and
//! the name and kind of every asset.
//!
//! The layout depends only on the number of assets and on whether there is a large asset,
//! never on the seed: tests and demos can rely on a path such as
//! `we-retail/en/products/Café au lait.jpg` across seeds, while the seed changes what is
//! inside the files. Pixels, titles and tags are decided elsewhere.

use std::collections::BTreeSet;

/// The folder that holds most assets, so that listing it needs many pages.
pub const BULK_FOLDER: &str = "we-retail/en/activities/hiking";

/// Outside the bulk folder there are at most this many assets (for large samples); the rest
/// of the requested count goes to the bulk folder.
const MAX_OUTSIDE_BULK: usize = 200;

/// What an asset's subject is; it steers its pictures, title and tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Theme {
    /// Trails and summits (the bulk folder).
    Hiking,
    /// Rock and ropes.
    Climbing,
    /// Sea and boards.
    Surfing,
    /// Gear for sale.
    Equipment,
    /// Clothes for sale.
    Apparel,
    /// Summer fashion (the French site).
    Summer,
    /// Mountain lakes (the German site).
    Lakes,
    /// Gardens (the Japanese site).
    Garden,
    /// Wide landscapes.
    Panorama,
    /// Abstract patterns.
    Background,
    /// Brochures and notes.
    Document,
}

/// A folder of the sample and its title.
#[derive(Debug)]
pub(crate) struct FolderSpec {
    /// Path relative to the sample root.
    pub path: &'static str,
    /// `jcr:title` of the folder.
    pub title: &'static str,
    /// Theme of the assets placed here, or `None` for folders that only hold folders and
    /// named assets.
    pub theme: Option<Theme>,
}

/// Every folder of the sample, parents before children. All of them exist even when the
/// sample is too small to put an asset in each: an empty folder is a case worth serving.
pub(crate) const FOLDERS: &[FolderSpec] = &[
    FolderSpec { path: "we-retail", title: "We.Retail", theme: None },
    FolderSpec { path: "we-retail/en", title: "English", theme: None },
    FolderSpec { path: "we-retail/en/activities", title: "Activities", theme: None },
    FolderSpec { path: BULK_FOLDER, title: "Hiking", theme: Some(Theme::Hiking) },
    FolderSpec { path: "we-retail/en/activities/climbing", title: "Climbing", theme: Some(Theme::Climbing) },
    FolderSpec { path: "we-retail/en/activities/surfing", title: "Surfing", theme: Some(Theme::Surfing) },
    FolderSpec { path: "we-retail/en/products", title: "Products", theme: None },
    FolderSpec { path: "we-retail/en/products/equipment", title: "Equipment", theme: Some(Theme::Equipment) },
    FolderSpec { path: "we-retail/en/products/apparel", title: "Apparel", theme: Some(Theme::Apparel) },
    FolderSpec { path: "we-retail/fr", title: "Français", theme: None },
    FolderSpec {
        path: "we-retail/fr/Collection été", title: "Collection été", theme: Some(Theme::Summer)
    },
    FolderSpec { path: "we-retail/de", title: "Deutsch", theme: None },
    FolderSpec { path: "we-retail/de/Berge und Seen", title: "Berge und Seen", theme: Some(Theme::Lakes) },
    FolderSpec { path: "we-retail/ja", title: "日本語", theme: Some(Theme::Garden) },
    FolderSpec { path: "panoramas", title: "Panoramas", theme: Some(Theme::Panorama) },
    FolderSpec { path: "backgrounds", title: "Backgrounds", theme: Some(Theme::Background) },
    FolderSpec { path: "documents", title: "Documents", theme: Some(Theme::Document) },
];

/// The file format of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A JPEG picture.
    Jpeg,
    /// A PNG picture.
    Png,
    /// The one large PNG of noise, at least `large_size` bytes.
    LargePng,
    /// A small PDF document.
    Pdf,
    /// A UTF-8 text file.
    Text,
}

/// One asset to write.
#[derive(Debug, Clone)]
pub(crate) struct PlannedAsset {
    /// Path relative to the sample root, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// What it shows.
    pub theme: Theme,
    /// Position in the bulk folder (0-based), for bulk assets.
    pub bulk_index: Option<usize>,
    /// A title fixed by the layout (the named assets); otherwise one is made up.
    pub title: Option<&'static str>,
}

/// Assets with fixed names, in the order they are given a place when the sample is small:
/// (path, kind, theme, title). They cover the awkward cases: spaces, non-ASCII letters, `+`,
/// a `(1)` suffix, a folder with a space, an asset at the root.
const NAMED: &[(&str, Kind, Theme, &str)] = &[
    ("documents/We.Retail brochure 2024.pdf", Kind::Pdf, Theme::Document, "We.Retail brochure 2024"),
    ("documents/Release notes.txt", Kind::Text, Theme::Document, "Release notes"),
    ("we-retail/en/products/Café au lait.jpg", Kind::Jpeg, Theme::Equipment, "Café au lait"),
    ("we-retail/de/Berge und Seen/Bergsee Über.png", Kind::Png, Theme::Lakes, "Bergsee Übersicht"),
    ("we-retail/ja/日本 庭園.jpg", Kind::Jpeg, Theme::Garden, "日本庭園"),
    ("we-retail/fr/Collection été/Robe légère (1).jpg", Kind::Jpeg, Theme::Summer, "Robe légère"),
    ("we-retail/en/activities/surfing/Surf + Sail.jpg", Kind::Jpeg, Theme::Surfing, "Surf & Sail"),
    ("Welcome banner.png", Kind::Png, Theme::Background, "Welcome to We.Retail"),
];

/// Where the large asset goes, when there is one.
pub const LARGE_ASSET: &str = "panoramas/Alpine panorama (full resolution).png";

/// Number of assets in the bulk folder for a sample of `total` assets: all but
/// [`MAX_OUTSIDE_BULK`], and never less than five sixths of the total (rounded up), so a
/// small sample still has one folder much larger than the others.
pub(crate) fn bulk_count(total: usize) -> usize {
    total.saturating_sub(MAX_OUTSIDE_BULK).max(total.saturating_mul(5).div_ceil(6)).min(total)
}

/// Plans `total` assets: the bulk folder first, then (as room allows) the large asset, the
/// named assets, and themed assets spread round-robin over the other folders.
pub(crate) fn plan(total: usize, with_large: bool) -> Vec<PlannedAsset> {
    let bulk = bulk_count(total);
    let mut assets = Vec::with_capacity(total);
    for index in 0..bulk {
        assets.push(PlannedAsset {
            path: format!("{BULK_FOLDER}/{}", bulk_name(index)),
            kind: if index % 4 == 3 { Kind::Png } else { Kind::Jpeg },
            theme: Theme::Hiking,
            bulk_index: Some(index),
            title: None,
        });
    }
    let large = with_large.then_some((LARGE_ASSET, Kind::LargePng, Theme::Panorama, "Alpine panorama"));
    let named = large.into_iter().chain(NAMED.iter().copied());
    for (path, kind, theme, title) in named.take(total - assets.len()) {
        assets.push(PlannedAsset {
            path: path.to_string(),
            kind,
            theme,
            bulk_index: None,
            title: Some(title),
        });
    }
    let themed: Vec<(&str, Theme)> = FOLDERS
        .iter()
        .filter(|f| f.path != BULK_FOLDER)
        .filter_map(|f| f.theme.map(|theme| (f.path, theme)))
        .collect();
    let mut counters = vec![0usize; themed.len()];
    let mut turn = 0;
    while assets.len() < total {
        let slot = turn % themed.len();
        let (folder, theme) = themed[slot];
        counters[slot] += 1;
        let (name, kind) = themed_name(theme, counters[slot]);
        assets.push(PlannedAsset {
            path: format!("{folder}/{name}"),
            kind,
            theme,
            bulk_index: None,
            title: None,
        });
        turn += 1;
    }
    debug_assert_eq!(assets.iter().map(|a| &a.path).collect::<BTreeSet<_>>().len(), assets.len());
    assets
}

/// Name of the bulk asset at `index`: mostly `hiking-0001.jpg`, with a name with spaces and
/// non-ASCII letters now and then so that paging meets them too.
fn bulk_name(index: usize) -> String {
    let number = index + 1;
    let ext = if index % 4 == 3 { "png" } else { "jpg" };
    match number % 40 {
        13 => format!("Wanderung Übersicht {number:04}.{ext}"),
        27 => format!("Trail view {number:04}.{ext}"),
        _ => format!("hiking-{number:04}.{ext}"),
    }
}

/// Name and kind of the `n`th (1-based) themed asset of a folder.
fn themed_name(theme: Theme, n: usize) -> (String, Kind) {
    let (slug, words): (&str, &[&str]) = match theme {
        Theme::Hiking => ("hiking", &["Trail", "Summit"]),
        Theme::Climbing => ("climbing", &["Boulder", "Rope team", "Overhang"]),
        Theme::Surfing => ("surfing", &["Wave", "Beach break", "Longboard"]),
        Theme::Equipment => ("equipment", &["Backpack", "Tent", "Stove"]),
        Theme::Apparel => ("apparel", &["Jacket", "Shirt", "Boots"]),
        Theme::Summer => ("ete", &["Robe", "Chapeau de paille", "Sandales"]),
        Theme::Lakes => ("see", &["Bergsee", "Gletscher", "Almwiese"]),
        Theme::Garden => ("niwa", &["庭園", "紅葉", "桜"]),
        Theme::Panorama => ("panorama", &["Ridge", "Valley", "Coast"]),
        Theme::Background => ("background", &["Pattern", "Texture", "Gradient"]),
        Theme::Document => ("document", &["Datasheet", "Notes"]),
    };
    if theme == Theme::Document {
        return if n % 2 == 1 {
            (format!("Datasheet {n:03}.pdf"), Kind::Pdf)
        } else {
            (format!("notes-{n:03}.txt"), Kind::Text)
        };
    }
    let kind = match theme {
        Theme::Background => {
            if n % 3 == 0 {
                Kind::Jpeg
            } else {
                Kind::Png
            }
        }
        _ if n % 4 == 2 => Kind::Png,
        _ => Kind::Jpeg,
    };
    let ext = if kind == Kind::Png { "png" } else { "jpg" };
    let name = if n % 3 == 0 {
        format!("{} {n:03}.{ext}", words[(n / 3) % words.len()])
    } else {
        format!("{slug}-{n:03}.{ext}")
    };
    (name, kind)
}

/// The folder part of a relative asset path (`""` for an asset at the root).
pub(crate) fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_folder_holds_at_least_five_sixths() {
        assert_eq!(bulk_count(1), 1);
        assert_eq!(bulk_count(6), 5);
        assert_eq!(bulk_count(60), 50);
        assert_eq!(bulk_count(1200), 1000);
        assert_eq!(bulk_count(5000), 4800);
        for total in 1..3000 {
            assert!(bulk_count(total) * 6 >= total * 5, "{total}");
            assert!(bulk_count(total) <= total);
        }
    }

    #[test]
    fn plans_have_the_requested_size_and_unique_paths() {
        for total in [1, 2, 7, 60, 250, 1200] {
            for with_large in [false, true] {
                let plan = plan(total, with_large);
                assert_eq!(plan.len(), total);
                let paths: BTreeSet<_> = plan.iter().map(|a| a.path.as_str()).collect();
                assert_eq!(paths.len(), total);
            }
        }
    }

    #[test]
    fn every_asset_lives_in_a_known_folder() {
        for asset in plan(1200, true) {
            let parent = parent_of(&asset.path);
            assert!(parent.is_empty() || FOLDERS.iter().any(|f| f.path == parent), "{}", asset.path);
        }
    }

    #[test]
    fn sixty_assets_hold_every_named_asset() {
        let plan = plan(60, true);
        assert!(plan.iter().any(|a| a.path == LARGE_ASSET));
        for (path, ..) in NAMED {
            assert!(plan.iter().any(|a| a.path == *path), "{path}");
        }
    }
}
