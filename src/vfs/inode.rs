//! The inode table: what each inode number stands for, and the numbers themselves, which
//! are stable for a node for the life of the cache (persisted through the cache index).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

/// Inode number of the root.
pub const ROOT_INO: u64 = 1;

/// What a node of the mount is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// A remote folder (`""` is the mount root).
    Folder(String),
    /// A remote asset: its original's bytes.
    Asset(String),
    /// `<folder>/.renditions`: one directory per asset of the folder.
    RenditionsDir(String),
    /// `<folder>/.renditions/<asset name>`: the renditions of one asset.
    RenditionsOf(String),
    /// `<folder>/.renditions/<asset name>/<rendition>`.
    Rendition(String, String),
    /// `<folder>/.metadata`: one JSON file per asset of the folder.
    MetadataDir(String),
    /// `<folder>/.metadata/<asset name>.json`.
    MetadataFile(String),
    /// `/.tags/<namespace>/<tag path>` (`""` is `/.tags` itself).
    TagDir(String),
    /// A link in a tag directory: (tag path, asset path).
    TagLink(String, String),
    /// `/.search`.
    SearchRoot,
    /// `/.search/<words>`.
    SearchDir(String),
    /// A search result: (words, asset path).
    SearchLink(String, String),
}

impl Node {
    /// The persistent key of the node (its identity across remounts).
    pub fn key(&self) -> String {
        match self {
            Node::Folder(p) => format!("d:{p}"),
            Node::Asset(p) => format!("a:{p}"),
            Node::RenditionsDir(p) => format!("R:{p}"),
            Node::RenditionsOf(p) => format!("r:{p}"),
            Node::Rendition(a, n) => format!("n:{a}\0{n}"),
            Node::MetadataDir(p) => format!("M:{p}"),
            Node::MetadataFile(p) => format!("m:{p}"),
            Node::TagDir(t) => format!("T:{t}"),
            Node::TagLink(t, a) => format!("t:{t}\0{a}"),
            Node::SearchRoot => "S:".to_string(),
            Node::SearchDir(w) => format!("s:{w}"),
            Node::SearchLink(w, a) => format!("l:{w}\0{a}"),
        }
    }

    /// Parses a key made by [`Node::key`].
    pub fn from_key(key: &str) -> Option<Node> {
        let (tag, rest) = key.split_once(':')?;
        let pair = || rest.split_once('\0').map(|(a, b)| (a.to_string(), b.to_string()));
        Some(match tag {
            "d" => Node::Folder(rest.into()),
            "a" => Node::Asset(rest.into()),
            "R" => Node::RenditionsDir(rest.into()),
            "r" => Node::RenditionsOf(rest.into()),
            "n" => pair().map(|(a, b)| Node::Rendition(a, b))?,
            "M" => Node::MetadataDir(rest.into()),
            "m" => Node::MetadataFile(rest.into()),
            "T" => Node::TagDir(rest.into()),
            "t" => pair().map(|(a, b)| Node::TagLink(a, b))?,
            "S" => Node::SearchRoot,
            "s" => Node::SearchDir(rest.into()),
            "l" => pair().map(|(a, b)| Node::SearchLink(a, b))?,
            _ => return None,
        })
    }

    /// Whether the node is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(
            self,
            Node::Folder(_)
                | Node::RenditionsDir(_)
                | Node::RenditionsOf(_)
                | Node::MetadataDir(_)
                | Node::TagDir(_)
                | Node::SearchRoot
                | Node::SearchDir(_)
        )
    }
}

#[derive(Debug, Default)]
struct Table {
    by_ino: HashMap<u64, Arc<Node>>,
    by_node: HashMap<Arc<Node>, u64>,
    next: u64,
}

/// Inode numbers <-> nodes.
#[derive(Debug)]
pub struct InodeTable {
    /// Readers (lookups) far outnumber writers (new nodes).
    table: RwLock<Table>,
}

impl InodeTable {
    /// A table holding the root (the folder `root`) and the numbers persisted by earlier
    /// mounts.
    pub fn new(root: &str, persisted: Vec<(String, u64)>) -> InodeTable {
        let mut table = Table { next: ROOT_INO + 1, ..Table::default() };
        let root = Arc::new(Node::Folder(root.to_string()));
        table.by_ino.insert(ROOT_INO, Arc::clone(&root));
        table.by_node.insert(root, ROOT_INO);
        for (key, ino) in persisted {
            let Some(node) = Node::from_key(&key) else {
                log::warn!("cache: unknown inode key {key:?} ignored");
                continue;
            };
            if ino <= ROOT_INO || table.by_ino.contains_key(&ino) {
                continue;
            }
            let node = Arc::new(node);
            if table.by_node.contains_key(&node) {
                continue;
            }
            table.next = table.next.max(ino + 1);
            table.by_ino.insert(ino, Arc::clone(&node));
            table.by_node.insert(node, ino);
        }
        InodeTable { table: RwLock::new(table) }
    }

    /// The node of an inode number.
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.table.read().by_ino.get(&ino).cloned()
    }

    /// The inode number of a node, allocating one if it has none yet. The second value is
    /// true for a new number, which the caller persists.
    pub fn ino(&self, node: &Node) -> (u64, bool) {
        if let Some(&ino) = self.table.read().by_node.get(node) {
            return (ino, false);
        }
        let mut table = self.table.write();
        if let Some(&ino) = table.by_node.get(node) {
            return (ino, false);
        }
        let ino = table.next;
        table.next += 1;
        let node = Arc::new(node.clone());
        table.by_ino.insert(ino, Arc::clone(&node));
        table.by_node.insert(node, ino);
        (ino, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_numbers_persist() {
        let nodes = [
            Node::Folder("a b/c".into()),
            Node::Asset("x/é.jpg".into()),
            Node::Rendition("x/y.jpg".into(), "cq5dam.web.1280.1280.jpeg".into()),
            Node::TagLink("ns/a".into(), "x/y.jpg".into()),
            Node::SearchRoot,
            Node::SearchLink("red car".into(), "p/q.png".into()),
        ];
        for node in &nodes {
            assert_eq!(Node::from_key(&node.key()).as_ref(), Some(node));
        }
        let table = InodeTable::new("", vec![]);
        let numbers: Vec<u64> = nodes.iter().map(|n| table.ino(n).0).collect();
        assert_eq!(table.ino(&nodes[0]), (numbers[0], false));
        let persisted = nodes.iter().zip(&numbers).map(|(n, i)| (n.key(), *i)).collect();
        let again = InodeTable::new("", persisted);
        for (node, ino) in nodes.iter().zip(numbers) {
            assert_eq!(again.ino(node), (ino, false));
        }
        let (fresh, new) = again.ino(&Node::Folder("new".into()));
        assert!(new && fresh > 7);
    }
}
