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

/// Inserts and forgets between two sweeps of the entries the kernel does not hold.
const SWEEP_EVERY: u64 = 16_384;

#[derive(Debug)]
struct Slot {
    node: Arc<Node>,
    /// Entries of this inode the kernel was given (LOOKUP, READDIRPLUS) and has not forgotten.
    lookups: u64,
    /// Found unheld by the last sweep: the next one drops it.
    idle: bool,
}

#[derive(Debug, Default)]
struct Table {
    by_ino: HashMap<u64, Slot>,
    by_node: HashMap<Arc<Node>, u64>,
    /// Inserts and forgets since the last sweep.
    churn: u64,
}

impl Table {
    fn drop_slot(&mut self, ino: u64) {
        if let Some(slot) = self.by_ino.remove(&ino)
            && self.by_node.get(&*slot.node) == Some(&ino)
        {
            self.by_node.remove(&*slot.node);
        }
    }

    /// Drops the nodes the kernel does not hold that were unheld at the previous sweep as
    /// well (so a number handed out a moment ago has reached the index before its node can
    /// leave, and a readdir's entries stay while the kernel reads them).
    fn sweep(&mut self) {
        self.churn = 0;
        let mut gone = Vec::new();
        for (&ino, slot) in self.by_ino.iter_mut() {
            if slot.lookups > 0 || ino == ROOT_INO {
                continue;
            }
            if slot.idle {
                gone.push(ino);
            } else {
                slot.idle = true;
            }
        }
        for ino in gone {
            self.drop_slot(ino);
        }
        // The kernel let go of most of what it held: so do the maps' tables.
        if self.by_ino.capacity() > 4 * self.by_ino.len() + 1024 {
            self.by_ino.shrink_to_fit();
            self.by_node.shrink_to_fit();
        }
    }

    /// Counts one insert or forget; sweeps (and says so) every [`SWEEP_EVERY`].
    fn churned(&mut self) -> bool {
        self.churn += 1;
        let sweep = self.churn >= SWEEP_EVERY;
        if sweep {
            self.sweep();
        }
        sweep
    }
}

/// Inode numbers <-> nodes, for the nodes the kernel holds (with how many entries of each
/// it was given, so that FORGET can drop them) and those named lately. The numbers
/// themselves come from the cache index, so a path keeps its number across remounts and
/// after the kernel forgot it. The table holds what the kernel holds, plus what a sweep
/// has not dropped yet: memory follows the kernel's inode cache.
#[derive(Debug)]
pub struct InodeTable {
    /// Readers (lookups) far outnumber writers (new nodes).
    table: RwLock<Table>,
}

impl InodeTable {
    /// A table holding the root (the folder `root`), which never leaves it.
    pub fn new(root: &str) -> InodeTable {
        let mut table = Table::default();
        let root = Arc::new(Node::Folder(root.to_string()));
        table.by_ino.insert(ROOT_INO, Slot { node: Arc::clone(&root), lookups: 0, idle: false });
        table.by_node.insert(root, ROOT_INO);
        InodeTable { table: RwLock::new(table) }
    }

    /// The node of an inode number.
    pub fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.table.read().by_ino.get(&ino).map(|s| Arc::clone(&s.node))
    }

    /// The inode number of a node already in the table.
    pub fn find(&self, node: &Node) -> Option<u64> {
        self.table.read().by_node.get(node).copied()
    }

    /// Enters `node` with number `ino`; if another caller entered it first, returns that
    /// caller's number instead. With `counted`, the kernel is about to be given an entry of
    /// it (one more lookup to forget).
    pub fn insert(&self, node_ref: &Node, ino: u64, counted: bool) -> u64 {
        let node = node_ref;
        let mut table = self.table.write();
        let ino = match table.by_node.get(node) {
            Some(&existing) => existing,
            None => {
                let node = Arc::new(node.clone());
                table.by_ino.insert(ino, Slot { node: Arc::clone(&node), lookups: 0, idle: false });
                table.by_node.insert(node, ino);
                if table.churned() {
                    drop(table);
                    crate::bounded::give_back_memory();
                    return if counted { self.insert(node_ref, ino, true) } else { ino };
                }
                ino
            }
        };
        if counted && let Some(slot) = table.by_ino.get_mut(&ino) {
            slot.lookups += 1;
            slot.idle = false;
        }
        ino
    }

    /// Counts one more entry of `ino` given to the kernel, entering it again for `node` if
    /// a sweep dropped it meanwhile (if `node` has another number by now, `ino` names it
    /// still, as an old number does after [`InodeTable::renumber`]).
    pub fn count(&self, ino: u64, node: &Node) {
        let mut table = self.table.write();
        if let Some(slot) = table.by_ino.get_mut(&ino) {
            slot.lookups += 1;
            slot.idle = false;
            return;
        }
        let shared = Arc::new(node.clone());
        table.by_ino.insert(ino, Slot { node: Arc::clone(&shared), lookups: 1, idle: false });
        table.by_node.entry(shared).or_insert(ino);
    }

    /// The kernel forgot `n` entries of `ino`: at zero the node leaves the table (the root
    /// never does). Its number stays in the index for the next lookup.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let mut table = self.table.write();
        let Some(slot) = table.by_ino.get_mut(&ino) else { return };
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups == 0 {
            table.drop_slot(ino);
            if table.churned() {
                drop(table);
                crate::bounded::give_back_memory();
            }
        }
    }

    /// Nodes in the table.
    pub fn len(&self) -> usize {
        self.table.read().by_ino.len()
    }

    /// Whether only the root is left (never true of a table in use for long).
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// Gives `node` the number `ino` from now on (a new version of an asset is a new
    /// file to the kernel). The old number keeps naming the node for the handles open on
    /// it, until the kernel forgets it. Returns the old number, if the node had one.
    pub fn renumber(&self, node: &Node, ino: u64) -> Option<u64> {
        let mut table = self.table.write();
        let node = Arc::new(node.clone());
        let old = table.by_node.insert(Arc::clone(&node), ino);
        table.by_ino.insert(ino, Slot { node, lookups: 0, idle: false });
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
        assert_eq!(table.insert(&nodes[0], 7, false), 7);
        assert_eq!(table.insert(&nodes[0], 8, true), 7);
        assert_eq!(table.find(&nodes[0]), Some(7));
        assert_eq!(table.get(7).as_deref(), Some(&nodes[0]));
        assert_eq!(table.find(&Node::Folder(String::new())), Some(ROOT_INO));
        assert_eq!(table.renumber(&nodes[0], 9), Some(7));
        assert_eq!(table.find(&nodes[0]), Some(9));
        assert_eq!(table.get(7).as_deref(), Some(&nodes[0]), "the old number still names it");
        table.forget(7, 1);
        assert_eq!(table.get(7), None, "forgotten at zero");
        assert_eq!(table.find(&nodes[0]), Some(9), "the new number stays");
    }

    #[test]
    fn forgotten_nodes_leave_and_unheld_ones_go_at_the_second_sweep() {
        let table = InodeTable::new("");
        let a = Node::Asset("f/a.jpg".into());
        let b = Node::Asset("f/b.jpg".into());
        table.insert(&a, 10, true);
        table.insert(&a, 10, true);
        table.insert(&b, 11, false);
        table.forget(10, 1);
        assert_eq!(table.find(&a), Some(10), "one entry still held");
        table.forget(10, 1);
        assert_eq!(table.find(&a), None);
        table.count(10, &a);
        assert_eq!(table.find(&a), Some(10), "counted again under its number");
        table.forget(ROOT_INO, 5);
        assert!(table.get(ROOT_INO).is_some(), "the root never leaves");
        table.table.write().sweep();
        assert_eq!(table.find(&b), Some(11), "unheld, seen once");
        table.table.write().sweep();
        assert_eq!(table.find(&b), None, "unheld at two sweeps");
        assert_eq!(table.find(&a), Some(10), "held");
        assert_eq!(table.len(), 2);
    }
}
