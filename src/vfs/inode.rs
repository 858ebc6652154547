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
}

/// Inode numbers <-> nodes, for the nodes this mount has handed to the kernel. The numbers
/// themselves come from the cache index, so a path keeps its number across remounts.
#[derive(Debug)]
pub struct InodeTable {
    /// Readers (lookups) far outnumber writers (new nodes).
    table: RwLock<Table>,
}

impl InodeTable {
    /// A table holding the root (the folder `root`).
    pub fn new(root: &str) -> InodeTable {
        let mut table = Table::default();
        let root = Arc::new(Node::Folder(root.to_string()));
        table.by_ino.insert(ROOT_INO, Arc::clone(&root));
        table.by_node.insert(root, ROOT_INO);
        InodeTable { table: RwLock::new(table) }
    }

    /// The node of an inode number.
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.table.read().by_ino.get(&ino).cloned()
    }

    /// The inode number of a node already in the table.
    pub fn find(&self, node: &Node) -> Option<u64> {
        self.table.read().by_node.get(node).copied()
    }

    /// Enters `node` with number `ino`; if another caller entered it first, returns that
    /// caller's number instead.
    pub fn insert(&self, node: &Node, ino: u64) -> u64 {
        let mut table = self.table.write();
        if let Some(&existing) = table.by_node.get(node) {
            return existing;
        }
        let node = Arc::new(node.clone());
        table.by_ino.insert(ino, Arc::clone(&node));
        table.by_node.insert(node, ino);
        ino
    }

    /// Gives `node` the number `ino` from now on (a new version of an asset is a new
    /// file to the kernel). The old number keeps naming the node for the handles open on
    /// it. Returns the old number, if the node had one.
    pub fn renumber(&self, node: &Node, ino: u64) -> Option<u64> {
        let mut table = self.table.write();
        let node = Arc::new(node.clone());
        let old = table.by_node.insert(Arc::clone(&node), ino);
        table.by_ino.insert(ino, node);
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_the_first_number_wins() {
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
        let table = InodeTable::new("");
        assert_eq!(table.insert(&nodes[0], 7), 7);
        assert_eq!(table.insert(&nodes[0], 8), 7);
        assert_eq!(table.find(&nodes[0]), Some(7));
        assert_eq!(table.get(7).as_deref(), Some(&nodes[0]));
        assert_eq!(table.find(&Node::Folder(String::new())), Some(ROOT_INO));
        assert_eq!(table.renumber(&nodes[0], 9), Some(7));
        assert_eq!(table.find(&nodes[0]), Some(9));
        assert_eq!(table.get(7).as_deref(), Some(&nodes[0]), "the old number still names it");
    }
}
