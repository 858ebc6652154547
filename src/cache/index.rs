//! The cache index: a SQLite database (WAL mode) recording what the content files are, the
//! asset manifests, the persisted folder listings and the inode numbers.
//!
//! Two connections: a writer thread ([`Writer`]) applies every change in batched
//! transactions, so no filesystem request waits on a commit; a reader serves point lookups
//! (an asset's renditions, a manifest, a listing, an inode number) by primary key, from
//! SQLite's page cache in the common case. At open only what the LRU needs is read (one
//! row per asset), so startup stays fast with a large cache.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

/// Version of the schema; a different number in an existing index is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for another one's lock (the daemon's writer and an admin
/// command such as `damfs cache verify` may meet).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
    Rendition { asset: String, name: String, size: u64, digest: String },
    /// Record an access to an asset.
    Touch { path: String, at: i64 },
    /// Forget the content of an asset (its renditions); the manifest stays.
    DropContent { path: String },
    /// Forget one rendition's content file.
    DropRendition { asset: String, name: String },
    /// Forget an asset's manifest (its content stays, unless dropped too).
    DropManifest { path: String },
    /// Answer once everything sent before has been written.
    Flush(mpsc::Sender<()>),
}

/// One asset with content, as the LRU needs it.
#[derive(Debug)]
pub struct UsageRow {
    /// DAM path.
    pub path: String,
    /// Bytes of its content files, charged in whole blocks (`super::BLOCK`).
    pub bytes: u64,
    /// Last access, seconds since the epoch.
    pub last_access: i64,
}

/// Opens a connection to the index at `path`, with WAL and a busy timeout.
pub fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("cannot open the cache index {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL").context("cannot switch the cache index to WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Creates the tables if needed and checks the schema version and the owning remote.
pub fn prepare(conn: &Connection, remote: &str) -> anyhow::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS inodes (key TEXT PRIMARY KEY, ino INTEGER NOT NULL UNIQUE);
         CREATE TABLE IF NOT EXISTS listings (path TEXT PRIMARY KEY, json TEXT NOT NULL, fetched_at INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS assets (path TEXT PRIMARY KEY, manifest TEXT NOT NULL,
             fetched_at INTEGER NOT NULL, last_access INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS renditions (asset TEXT NOT NULL, name TEXT NOT NULL,
             size INTEGER NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (asset, name));
         CREATE TABLE IF NOT EXISTS unsynced (asset TEXT NOT NULL, name TEXT NOT NULL,
             PRIMARY KEY (asset, name));",
    )
    .context("cannot create the cache index tables")?;
    let version = meta(conn, "schema")?;
    match version {
        None => {
            conn.execute("INSERT INTO meta VALUES ('schema', ?1)", params![SCHEMA_VERSION.to_string()])?;
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('remote', ?1)", params![remote])?;
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(v) => anyhow::bail!("the cache index has schema {v}, this damfs reads {SCHEMA_VERSION}"),
    }
    if let Some(owner) = meta(conn, "remote")?
        && owner != remote
    {
        anyhow::bail!("the cache belongs to {owner}, not {remote}: give this remote its own --cache-dir");
    }
    Ok(())
}

/// Drops the renditions recorded after the last sync of the cache's filesystem (the daemon
/// or the machine stopped before it): their files may be torn. Returns how many; their
/// files are left as orphans for reconcile. Only the daemon holding the cache's lock may
/// call it, before it serves.
pub fn drop_unsynced(conn: &mut Connection) -> rusqlite::Result<usize> {
    let marked: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT asset, name FROM unsynced")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
    };
    if marked.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction()?;
    let mut dropped = 0;
    for (asset, name) in &marked {
        dropped +=
            tx.execute("DELETE FROM renditions WHERE asset = ?1 AND name = ?2", params![asset, name])?;
    }
    tx.execute("DELETE FROM unsynced", [])?;
    tx.commit()?;
    Ok(dropped)
}

/// A value of the `meta` table.
pub fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()
}

/// Sets a value of the `meta` table.
pub fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", params![key, value]).map(|_| ())
}

/// Every asset with content: bytes and last access.
pub fn usage(conn: &Connection) -> rusqlite::Result<Vec<UsageRow>> {
    let mut stmt = conn.prepare(
        "SELECT r.asset, SUM(MAX(1, (r.size + 4095) / 4096) * 4096), COALESCE(a.last_access, 0) FROM renditions r
         LEFT JOIN assets a ON a.path = r.asset GROUP BY r.asset",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UsageRow { path: r.get(0)?, bytes: r.get::<_, i64>(1)? as u64, last_access: r.get(2)? })
    })?;
    rows.collect()
}

/// The highest inode number given out so far.
pub fn max_inode(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COALESCE(MAX(ino), 0) FROM inodes", [], |r| r.get::<_, i64>(0)).map(|n| n as u64)
}

/// The inode number of a node key.
pub fn inode(conn: &Connection, key: &str) -> rusqlite::Result<Option<u64>> {
    conn.query_row("SELECT ino FROM inodes WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
        .optional()
        .map(|o| o.map(|n| n as u64))
}

/// Most keys asked in one `IN (…)` query (SQLite allows 32,766 parameters; a few hundred
/// keep each statement small).
pub const MAX_BATCH_KEYS: usize = 500;

/// The inode numbers of those of `keys` that have one.
pub fn inodes(conn: &Connection, keys: &[String]) -> rusqlite::Result<Vec<(String, u64)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; keys.len()].join(",");
    let mut stmt = conn.prepare_cached(&format!("SELECT key, ino FROM inodes WHERE key IN ({marks})"))?;
    let rows =
        stmt.query_map(rusqlite::params_from_iter(keys), |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

/// An asset's manifest JSON.
pub fn manifest(conn: &Connection, asset: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT manifest FROM assets WHERE path = ?1", [asset], |r| r.get(0)).optional()
}

/// Paths of every asset with a manifest.
pub fn assets_with_manifest(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT path FROM assets")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Calls `f` with the path and manifest JSON of every asset with a manifest, row by row.
pub fn each_manifest(conn: &Connection, f: &mut dyn FnMut(&str, &str)) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT path, manifest FROM assets")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (path, json): (String, String) = (row.get(0)?, row.get(1)?);
        f(&path, &json);
    }
    Ok(())
}

/// A folder listing and when it was fetched.
pub fn listing(conn: &Connection, folder: &str) -> rusqlite::Result<Option<(String, i64)>> {
    conn.query_row("SELECT json, fetched_at FROM listings WHERE path = ?1", [folder], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

/// An asset's renditions: (name, size, recorded digest; see [`crate::digest`]).
pub fn renditions(conn: &Connection, asset: &str) -> rusqlite::Result<Vec<(String, u64, String)>> {
    let mut stmt = conn.prepare_cached("SELECT name, size, sha256 FROM renditions WHERE asset = ?1")?;
    let rows = stmt.query_map([asset], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)))?;
    rows.collect()
}

/// Every rendition row: (asset, name, size, recorded digest).
pub fn all_renditions(conn: &Connection) -> rusqlite::Result<Vec<(String, String, u64, String)>> {
    let mut stmt = conn.prepare("SELECT asset, name, size, sha256 FROM renditions")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?)))?;
    rows.collect()
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

/// Longest a recorded rendition waits for the sync of the cache's filesystem that makes
/// its row durable: what a crash can cost (renditions fetched again), as ext4's default
/// journal commit interval bounds what it loses.
pub const SYNC_WITHIN: Duration = Duration::from_secs(5);

/// Size from which a newly recorded rendition is synced at once: a large file is written
/// back right after it lands, off any reader's path, rather than by whatever comes next
/// (often a reader of that very file). Smaller ones wait for [`SYNC_WITHIN`]: a sync for
/// every few of them would put the disk in the way of the reads that fetch them.
pub const SYNC_LARGE: u64 = 64 << 20;

impl Writer {
    /// Starts the writer thread on `conn`. `content` is a directory on the filesystem that
    /// holds the content files: it is synced within [`SYNC_WITHIN`] of a rendition being
    /// recorded (at once for one of [`SYNC_LARGE`] or more), and when the writer stops; until then the rendition's row is marked
    /// unsynced (see [`drop_unsynced`]).
    pub fn start(conn: Connection, content: File) -> anyhow::Result<Writer> {
        let (sender, receiver) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("damfs-index".into())
            .spawn(move || write_loop(conn, content, receiver))
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

fn write_loop(mut conn: Connection, content: File, receiver: mpsc::Receiver<IndexOp>) {
    // When the oldest rendition not yet synced was recorded.
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match unsynced_since {
            None => receiver.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(since) => receiver.recv_timeout(SYNC_WITHIN.saturating_sub(since.elapsed())),
        };
        let first = match first {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                sync_recorded(&conn, &content, &mut unsynced_since);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // A content file is not synced on its own, nor before its row is written: the row
        // is marked unsynced until one syncfs for everything recorded meanwhile.
        let large =
            batch.iter().any(|op| matches!(op, IndexOp::Rendition { size, .. } if *size >= SYNC_LARGE));
        if unsynced_since.is_none() && batch.iter().any(|op| matches!(op, IndexOp::Rendition { .. })) {
            unsynced_since = Some(Instant::now());
        }
        let mut flushes = Vec::new();
        if let Err(e) = apply(&mut conn, batch, &mut flushes) {
            log::error!("cannot update the cache index: {e}");
        }
        for flush in flushes {
            let _ = flush.send(());
        }
        if large || unsynced_since.is_some_and(|since| since.elapsed() >= SYNC_WITHIN) {
            sync_recorded(&conn, &content, &mut unsynced_since);
        }
    }
    if unsynced_since.is_some() {
        sync_recorded(&conn, &content, &mut unsynced_since);
    }
}

/// Syncs the cache's filesystem, then clears the unsynced marks of every row recorded
/// before it. On failure the marks stay (a later sync, or the next start, deals with them).
fn sync_recorded(conn: &Connection, content: &File, unsynced_since: &mut Option<Instant>) {
    if let Err(e) = sync_filesystem(content) {
        log::error!("cannot sync the cache's filesystem; will try again: {e}");
        *unsynced_since = Some(Instant::now());
        return;
    }
    match conn.execute("DELETE FROM unsynced", []) {
        Ok(_) => *unsynced_since = None,
        Err(e) => {
            log::error!("cannot update the cache index: {e}");
            *unsynced_since = Some(Instant::now());
        }
    }
}

/// Writes out every change to the filesystem that holds `file` (syncfs(2)).
fn sync_filesystem(file: &File) -> std::io::Result<()> {
    // SAFETY: the descriptor is open for as long as `file` lives.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(file)) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Applies a batch of changes in one transaction.
pub fn apply(
    conn: &mut Connection,
    batch: Vec<IndexOp>,
    flushes: &mut Vec<mpsc::Sender<()>>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for op in batch {
        match op {
            IndexOp::Inode { key, ino } => {
                tx.prepare_cached("INSERT OR REPLACE INTO inodes (key, ino) VALUES (?1, ?2)")?
                    .execute(params![key, ino as i64])?;
            }
            IndexOp::Listing { path, json, fetched_at } => {
                tx.prepare_cached("INSERT OR REPLACE INTO listings VALUES (?1, ?2, ?3)")?
                    .execute(params![path, json, fetched_at])?;
            }
            IndexOp::Asset { path, manifest, fetched_at } => {
                tx.prepare_cached(
                    "INSERT INTO assets VALUES (?1, ?2, ?3, ?3) ON CONFLICT(path) DO UPDATE
                     SET manifest = excluded.manifest, fetched_at = excluded.fetched_at",
                )?
                .execute(params![path, manifest, fetched_at])?;
            }
            IndexOp::Rendition { asset, name, size, digest } => {
                tx.prepare_cached("INSERT OR REPLACE INTO renditions VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![asset, name, size as i64, digest])?;
                tx.prepare_cached("INSERT OR IGNORE INTO unsynced VALUES (?1, ?2)")?
                    .execute(params![asset, name])?;
            }
            IndexOp::Touch { path, at } => {
                tx.prepare_cached("UPDATE assets SET last_access = ?2 WHERE path = ?1")?
                    .execute(params![path, at])?;
            }
            IndexOp::DropContent { path } => {
                tx.prepare_cached("DELETE FROM renditions WHERE asset = ?1")?.execute(params![path])?;
            }
            IndexOp::DropRendition { asset, name } => {
                tx.prepare_cached("DELETE FROM renditions WHERE asset = ?1 AND name = ?2")?
                    .execute(params![asset, name])?;
            }
            IndexOp::DropManifest { path } => {
                tx.prepare_cached("DELETE FROM assets WHERE path = ?1")?.execute(params![path])?;
            }
            IndexOp::Flush(done) => flushes.push(done),
        }
    }
    tx.commit()
}
