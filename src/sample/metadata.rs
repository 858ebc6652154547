//! What the sidecar says about the sample: tag namespaces, the tag taxonomy, folder titles,
//! and each asset's title, description, creator and tags.
//!
//! The taxonomy is fixed: three namespaces with nested tags, every ancestor listed with a
//! title, translated titles on some, and one moved tag. Per-asset choices are drawn from the
//! asset's own random stream after its picture, so they follow what the picture shows.

use std::collections::BTreeMap;

use crate::sidecar::{AssetInfo, FolderInfo, Sidecar, TagInfo};

use super::images::Scene;
use super::layout::{FOLDERS, PlannedAsset, Theme};
use super::rng::Rng;

/// The tag that was moved, as assets tagged before the move still carry it.
pub(crate) const MOVED_TAG: &str = "we-retail:activity/trekking";

/// Where [`MOVED_TAG`] went.
pub(crate) const MOVED_TO: &str = "we-retail:activity/hiking";

/// Namespaces: (name, title, German title, French title); an empty translation is left out.
const NAMESPACES: &[(&str, &str, &str, &str)] = &[
    ("we-retail", "We.Retail", "", ""),
    ("properties", "Standard Tags", "Standard-Tags", "Balises standard"),
    ("sample", "Sample", "Beispiel", "Exemple"),
];

/// Tags: (ID, title, German title, French title). Parents come before their children.
const TAGS: &[(&str, &str, &str, &str)] = &[
    ("we-retail:activity", "Activity", "Aktivität", "Activité"),
    ("we-retail:activity/hiking", "Hiking", "Wandern", "Randonnée"),
    ("we-retail:activity/climbing", "Climbing", "Klettern", "Escalade"),
    ("we-retail:activity/surfing", "Surfing", "Surfen", "Surf"),
    (MOVED_TAG, "Trekking", "", ""),
    ("we-retail:season", "Season", "Jahreszeit", "Saison"),
    ("we-retail:season/summer", "Summer", "Sommer", "Été"),
    ("we-retail:season/winter", "Winter", "Winter", "Hiver"),
    ("we-retail:equipment", "Equipment", "Ausrüstung", "Équipement"),
    ("we-retail:equipment/backpacks", "Backpacks", "", ""),
    ("we-retail:equipment/tents", "Tents", "Zelte", ""),
    ("we-retail:apparel", "Apparel", "Bekleidung", "Vêtements"),
    ("we-retail:apparel/jackets", "Jackets", "Jacken", "Vestes"),
    ("we-retail:apparel/dresses", "Dresses", "Kleider", "Robes"),
    ("we-retail:region", "Region", "Region", "Région"),
    ("we-retail:region/europe", "Europe", "Europa", "Europe"),
    ("we-retail:region/europe/alps", "Alps", "Alpen", "Alpes"),
    ("we-retail:region/asia", "Asia", "Asien", "Asie"),
    ("we-retail:region/asia/japan", "Japan", "Japan", "Japon"),
    ("properties:orientation", "Orientation", "Ausrichtung", "Orientation"),
    ("properties:orientation/landscape", "Landscape", "Querformat", "Paysage"),
    ("properties:orientation/portrait", "Portrait", "Hochformat", "Portrait"),
    ("properties:orientation/square", "Square", "Quadratisch", "Carré"),
    ("properties:style", "Style", "Stil", "Style"),
    ("properties:style/color", "Color", "Farbe", "Couleur"),
    ("sample:colour", "Colour", "Farbe", "Couleur"),
    ("sample:colour/warm", "Warm colours", "Warme Farben", "Couleurs chaudes"),
    ("sample:colour/warm/red", "Red", "Rot", "Rouge"),
    ("sample:colour/warm/orange", "Orange", "Orange", "Orange"),
    ("sample:colour/warm/yellow", "Yellow", "Gelb", "Jaune"),
    ("sample:colour/cool", "Cool colours", "Kalte Farben", "Couleurs froides"),
    ("sample:colour/cool/green", "Green", "Grün", "Vert"),
    ("sample:colour/cool/blue", "Blue", "Blau", "Bleu"),
    ("sample:colour/cool/purple", "Purple", "Violett", "Violet"),
    ("sample:pattern", "Pattern", "Muster", "Motif"),
    ("sample:pattern/mountains", "Mountains", "Berge", "Montagnes"),
    ("sample:pattern/circles", "Circles", "Kreise", "Cercles"),
    ("sample:pattern/stripes", "Stripes", "Streifen", "Rayures"),
    ("sample:pattern/blocks", "Blocks", "Blöcke", "Blocs"),
    ("sample:kind", "Kind", "Art", "Type"),
    ("sample:kind/document", "Document", "Dokument", "Document"),
    ("sample:kind/large", "Large file", "Große Datei", "Gros fichier"),
];

/// People credited as `dc:creator`.
const CREATORS: &[&str] = &[
    "Alex Morgan",
    "Zoë Müller",
    "José García",
    "Søren Ødegård",
    "山田 花子",
    "Amélie Laurent",
    "Jan Nowak",
    "Priya Raman",
];

/// Places named in titles.
const PLACES: &[&str] = &["Zermatt", "Chamonix", "Grindelwald", "Cortina", "Innsbruck", "Bled", "Kyoto"];

/// What an asset is, as far as its description goes.
pub(crate) enum Subject<'a> {
    /// A generated picture.
    Picture(&'a Scene),
    /// The large picture of noise.
    Noise {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A PDF or a text note.
    Document,
}

/// Fills the sidecar's namespaces, tags and folder titles.
pub(crate) fn fill_taxonomy(sidecar: &mut Sidecar) {
    for &(name, title, de, fr) in NAMESPACES {
        sidecar.namespaces.insert(name.to_string(), tag_info(title, de, fr));
    }
    for &(id, title, de, fr) in TAGS {
        let mut info = tag_info(title, de, fr);
        if id == MOVED_TAG {
            info.moved_to = Some(MOVED_TO.to_string());
        }
        sidecar.tags.insert(id.to_string(), info);
    }
    for folder in FOLDERS {
        sidecar.folders.insert(folder.path.to_string(), FolderInfo { title: folder.title.to_string() });
    }
}

fn tag_info(title: &str, de: &str, fr: &str) -> TagInfo {
    let titles: BTreeMap<String, String> = [("de", de), ("fr", fr)]
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(locale, t)| (locale.to_string(), t.to_string()))
        .collect();
    TagInfo { title: title.to_string(), titles, moved_to: None }
}

/// Tags that suit a theme.
fn theme_tags(theme: Theme, rng: &mut Rng) -> Vec<&'static str> {
    match theme {
        Theme::Hiking => {
            vec!["we-retail:activity/hiking", "we-retail:region/europe/alps", "we-retail:season/summer"]
        }
        Theme::Climbing => vec!["we-retail:activity/climbing", "we-retail:region/europe/alps"],
        Theme::Surfing => vec!["we-retail:activity/surfing", "we-retail:season/summer"],
        Theme::Equipment => {
            vec![*rng.pick(&["we-retail:equipment/backpacks", "we-retail:equipment/tents"])]
        }
        Theme::Apparel => vec!["we-retail:apparel/jackets", "we-retail:season/winter"],
        Theme::Summer => vec!["we-retail:apparel/dresses", "we-retail:season/summer"],
        Theme::Lakes => vec!["we-retail:region/europe/alps", "we-retail:activity/hiking"],
        Theme::Garden => vec!["we-retail:region/asia/japan"],
        Theme::Panorama => vec!["we-retail:region/europe/alps"],
        Theme::Background => vec!["properties:style/color"],
        Theme::Document => vec!["sample:kind/document"],
    }
}

/// A made-up title in the theme's language.
fn made_up_title(theme: Theme, rng: &mut Rng) -> String {
    let place = *rng.pick(PLACES);
    let (adjectives, nouns): (&[&str], &[&str]) = match theme {
        Theme::Hiking => (&["Misty", "Sunny", "Quiet", "Steep"], &["trail", "ridge walk", "summit"]),
        Theme::Climbing => (&["Vertical", "Granite", "Morning"], &["wall", "crag", "pitch"]),
        Theme::Surfing => (&["Big", "Glassy", "Evening"], &["wave", "swell", "session"]),
        Theme::Equipment => (&["Lightweight", "Rugged", "Classic"], &["backpack", "tent", "stove"]),
        Theme::Apparel => (&["Warm", "Waterproof", "Slim"], &["jacket", "shirt", "boots"]),
        Theme::Summer => (&["Robe", "Chapeau", "Sandales"], &["d'été", "légère", "de plage"]),
        Theme::Lakes => (&["Bergsee", "Gletscher", "Almwiese"], &["am Morgen", "im Herbst", "bei Nebel"]),
        Theme::Garden => (&["静かな", "秋の", "春の"], &["庭園", "池", "石庭"]),
        Theme::Panorama => (&["Wide", "Endless", "Golden"], &["ridge", "valley", "coast"]),
        Theme::Background => (&["Soft", "Bold", "Subtle"], &["pattern", "texture", "gradient"]),
        Theme::Document => (&["Product", "Trail", "Safety"], &["datasheet", "notes", "guide"]),
    };
    let (adjective, noun) = (*rng.pick(adjectives), *rng.pick(nouns));
    match theme {
        Theme::Garden => format!("{place}の{adjective}{noun}"),
        Theme::Summer | Theme::Lakes => format!("{adjective} {noun}"),
        _ => format!("{adjective} {noun} near {place}"),
    }
}

/// The title, description, creator and tags of an asset. Assets with a fixed name always
/// have a title and a description with quotes, angle brackets and an ampersand (to exercise
/// escaping downstream); other assets go without a title now and then, as on a real DAM
/// where nobody set one.
pub(crate) fn describe(rng: &mut Rng, asset: &PlannedAsset, subject: &Subject<'_>) -> AssetInfo {
    let title = match asset.title {
        Some(title) => Some(title.to_string()),
        None => rng.chance(85).then(|| made_up_title(asset.theme, rng)),
    };
    let what = match subject {
        Subject::Picture(scene) => {
            format!(
                "{} {}, {}×{} pixels",
                scene.family().word(),
                scene.pattern.word(),
                scene.width,
                scene.height
            )
        }
        Subject::Noise { width, height } => format!("Coloured noise, {width}×{height} pixels"),
        Subject::Document => "Sample document".to_string(),
    };
    let description = match asset.title {
        Some(title) => Some(format!("\"{title}\" <sample> & friends: {what}.")),
        None => rng.chance(70).then(|| format!("{what}.")),
    };
    let creator = rng.chance(80).then(|| rng.pick(CREATORS).to_string());

    let mut candidates = theme_tags(asset.theme, rng);
    match subject {
        Subject::Picture(scene) => {
            candidates.extend([scene.family().tag(), scene.pattern.tag(), scene.orientation_tag()]);
        }
        Subject::Noise { .. } => candidates.push("sample:kind/large"),
        Subject::Document => {}
    }
    rng.shuffle(&mut candidates);
    let count = rng.below(4) as usize;
    let mut tags: Vec<String> = candidates.into_iter().take(count).map(str::to_string).collect();
    // The first bulk asset, and one in twenty others, were tagged before the trekking tag
    // moved into hiking, and still carry the old ID.
    let moved = asset.bulk_index == Some(0) || (asset.theme == Theme::Hiking && rng.chance(5));
    if moved {
        tags.retain(|t| t != MOVED_TO);
        tags.insert(0, MOVED_TAG.to_string());
        tags.truncate(3);
    }
    AssetInfo { title, description, creator, tags }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_has_its_ancestors_and_namespace() {
        let mut sidecar = Sidecar::default();
        fill_taxonomy(&mut sidecar);
        for id in sidecar.tags.keys() {
            let (namespace, local) = id.split_once(':').expect("namespaced");
            assert!(sidecar.namespaces.contains_key(namespace), "{id}");
            let mut path = local;
            while let Some((parent, _)) = path.rsplit_once('/') {
                assert!(sidecar.tags.contains_key(&format!("{namespace}:{parent}")), "{id}: {parent}");
                path = parent;
            }
        }
        assert_eq!(sidecar.tags[MOVED_TAG].moved_to.as_deref(), Some(MOVED_TO));
        assert!(sidecar.tags.contains_key(MOVED_TO));
    }
}
