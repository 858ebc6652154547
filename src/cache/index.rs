//! The cache index: a SQLite database (WAL mode) recording what the content files are, the
//! persisted folder listings and the inode numbers.
//!
//! Reads happen once, at open ([`load`]); from then on the in-memory view in `Cache` answers
//! and every change is sent to a single writer thread ([`Writer`]) that applies changes in
//! batched transactions. No filesystem request ever waits on SQLite.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

/// Version of the schema; a different number in an existing index is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// One change to the index.
#[derive(Debug)]
pub enum IndexOp {
    /// Remember the inode number of a node key.
    Inode { key: String, ino: u64 },
    /// Store (replace) a folder listing.
    Listing { path: String, json: String, fetched_at: i64 },
    /// Store (replace) an asset's manifest.
    Asset { path: String, manifest: String, fetched_at: i64 },
    /// Record a complete, verified content file of a rendition.
    Rendition { asset: String, name: String, size: u64, sha256: String },
    /// Record an access to an asset.
    Touch { path: String, at: i64 },
    /// Forget an asset and its renditions.
    DropAsset { path: String },
    /// Answer once everything sent before has been written.
    Flush(mpsc::Sender<()>),
}

/// What the index held at open.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// (node key, inode number)
    pub inodes: Vec<(String, u64)>,
    /// (folder path, listing JSON, fetched at)
    pub listings: Vec<(String, String, i64)>,
    /// (asset path, manifest JSON, fetched at, last access)
    pub assets: Vec<(String, String, i64, i64)>,
    /// (asset path, rendition name, size, sha256)
    pub renditions: Vec<(String, String, u64, String)>,
}

/// Opens (creating if needed) the index at `path` for `remote`, and reads everything.
pub fn load(path: &Path, remote: &str) -> anyhow::Result<(Connection, Snapshot)> {
    let conn =
        Connection::open(path).with_context(|| format!("cannot open the cache index {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL").context("cannot switch the cache index to WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS inodes (key TEXT PRIMARY KEY, ino INTEGER NOT NULL UNIQUE);
         CREATE TABLE IF NOT EXISTS listings (path TEXT PRIMARY KEY, json TEXT NOT NULL, fetched_at INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS assets (path TEXT PRIMARY KEY, manifest TEXT NOT NULL,
             fetched_at INTEGER NOT NULL, last_access INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS renditions (asset TEXT NOT NULL, name TEXT NOT NULL,
             size INTEGER NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (asset, name));",
    )
    .context("cannot create the cache index tables")?;
    let version: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).optional()?;
    match version {
        None => {
            conn.execute("INSERT INTO meta VALUES ('schema', ?1)", params![SCHEMA_VERSION.to_string()])?;
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('remote', ?1)", params![remote])?;
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(v) => anyhow::bail!("the cache index has schema {v}, this damfs reads {SCHEMA_VERSION}"),
    }
    let owner: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key = 'remote'", [], |r| r.get(0)).optional()?;
    if let Some(owner) = owner
        && owner != remote
    {
        anyhow::bail!("the cache belongs to {owner}, not {remote}: give this remote its own --cache-dir");
    }

    let snapshot = read_snapshot(&conn)?;
    Ok((conn, snapshot))
}

fn read_snapshot(conn: &Connection) -> rusqlite::Result<Snapshot> {
    let mut snapshot = Snapshot::default();
    let mut stmt = conn.prepare("SELECT key, ino FROM inodes")?;
    snapshot.inodes =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT path, json, fetched_at FROM listings")?;
    snapshot.listings =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT path, manifest, fetched_at, last_access FROM assets")?;
    snapshot.assets = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT asset, name, size, sha256 FROM renditions")?;
    snapshot.renditions = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    Ok(snapshot)
}

/// The writer thread's handle. Dropping it lets the thread drain and stop; [`Writer::close`]
/// also waits for it.
#[derive(Debug)]
pub struct Writer {
    sender: Option<mpsc::Sender<IndexOp>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Most changes applied in one transaction: bounds how long one commit takes.
const BATCH: usize = 2048;

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> anyhow::Result<Writer> {
        let (sender, receiver) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("damfs-index".into())
            .spawn(move || write_loop(conn, receiver))
            .context("cannot start the cache index writer")?;
        Ok(Writer { sender: Some(sender), thread: Some(thread) })
    }

    /// Queues a change.
    pub fn send(&self, op: IndexOp) {
        if let Some(sender) = &self.sender
            && sender.send(op).is_err()
        {
            log::error!("the cache index writer has stopped; a change was not recorded");
        }
    }

    /// A sending handle, for callers that must not hold a lock while they wait.
    pub fn handle(&self) -> Option<mpsc::Sender<IndexOp>> {
        self.sender.clone()
    }

    /// Drains the queue and stops the thread.
    pub fn close(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(mut conn: Connection, receiver: mpsc::Receiver<IndexOp>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut flushes = Vec::new();
        if let Err(e) = apply(&mut conn, batch, &mut flushes) {
            log::error!("cannot update the cache index: {e}");
        }
        for flush in flushes {
            let _ = flush.send(());
        }
    }
}

fn apply(
    conn: &mut Connection,
    batch: Vec<IndexOp>,
    flushes: &mut Vec<mpsc::Sender<()>>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for op in batch {
        match op {
            IndexOp::Inode { key, ino } => {
                tx.execute(
                    "INSERT OR REPLACE INTO inodes (key, ino) VALUES (?1, ?2)",
                    params![key, ino as i64],
                )?;
            }
            IndexOp::Listing { path, json, fetched_at } => {
                tx.execute(
                    "INSERT OR REPLACE INTO listings VALUES (?1, ?2, ?3)",
                    params![path, json, fetched_at],
                )?;
            }
            IndexOp::Asset { path, manifest, fetched_at } => {
                tx.execute(
                    "INSERT INTO assets VALUES (?1, ?2, ?3, ?3) ON CONFLICT(path) DO UPDATE
                     SET manifest = excluded.manifest, fetched_at = excluded.fetched_at",
                    params![path, manifest, fetched_at],
                )?;
            }
            IndexOp::Rendition { asset, name, size, sha256 } => {
                tx.execute(
                    "INSERT OR REPLACE INTO renditions VALUES (?1, ?2, ?3, ?4)",
                    params![asset, name, size as i64, sha256],
                )?;
            }
            IndexOp::Touch { path, at } => {
                tx.execute("UPDATE assets SET last_access = ?2 WHERE path = ?1", params![path, at])?;
            }
            IndexOp::DropAsset { path } => {
                tx.execute("DELETE FROM renditions WHERE asset = ?1", params![path])?;
                tx.execute("DELETE FROM assets WHERE path = ?1", params![path])?;
            }
            IndexOp::Flush(done) => flushes.push(done),
        }
    }
    tx.commit()
}
