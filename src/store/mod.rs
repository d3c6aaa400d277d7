//! Step 3 of the data flow: the redb store.
//!
//! - this file: the tables, opening and creating a store, names and sessions;
//! - [`codec`]: how a chunk of samples becomes bytes;
//! - [`writer`]: the one blocking thread that appends, one transaction per flush;
//! - [`scan`]: reading series back for the offline commands;
//! - [`prune`]: dropping chunks older than a retention;
//! - [`events`]: the cluster events and the last known state of each cluster.
//!
//! The layout is documented in `docs/store-format.md`.

pub mod codec;
pub mod events;
pub mod guard;
pub mod prune;
pub mod scan;
pub mod writer;

use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition,
};
use serde::{Deserialize, Serialize};

/// `meta`: store-level facts. Keys: `magic` (the bytes of [`MAGIC`]) and
/// `format_version` (u32, little endian).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `names`: interned name (`c/<cluster>` or `r/<cluster>/<replica>`) to its id.
pub const NAMES: TableDefinition<&str, u32> = TableDefinition::new("names");
/// `name_ids`: id back to the interned name.
pub const NAME_IDS: TableDefinition<u32, &str> = TableDefinition::new("name_ids");
/// `sessions`: session id to a postcard [`SessionInfo`].
pub const SESSIONS: TableDefinition<u32, &[u8]> = TableDefinition::new("sessions");
/// `chunks`: (series kind, name id, first time in UTC µs, session id) to a postcard chunk.
pub const CHUNKS: TableDefinition<(u8, u32, i64, u32), &[u8]> = TableDefinition::new("chunks");

/// The `magic` value that marks a lagtrace store.
pub const MAGIC: &[u8] = b"lagtrace store";
/// The store format this build writes. Version 2 added the readers' follow-up marks
/// and the sessions' `read_every`; version 3 a checksum on every chunk value
/// ([`codec::with_checksum`]). This build reads versions 1 to 3 and appends to 3, upgrading a
/// version 2 store in place (its older chunks stay as they are: see [`CHECKSUMS_FROM`]).
pub const FORMAT_VERSION: u32 = 3;
/// The format version a store is upgraded from in place when `record` appends to it.
const UPGRADABLE_VERSION: u32 = 2;
/// `meta` key of a version 3 store upgraded from version 2: the first session (u32
/// little-endian) whose chunks carry a checksum. Absent: every chunk does.
pub const CHECKSUMS_FROM: &str = "checksums_from_session";
/// The oldest format this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// Series kinds, the first part of a chunk key.
pub const KIND_BEATS: u8 = 1;
pub const KIND_OBSERVATIONS: u8 = 2;
pub const KIND_STATUS: u8 = 3;

/// One recorder run that appended to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// When the session's clock was anchored, UTC µs.
    pub started_us: i64,
    /// Beat interval, µs.
    pub interval_us: u64,
    /// lagtrace version that recorded it.
    pub version: String,
    /// Host name of the recorder.
    pub host: String,
    /// Format 2: each replica read after every `read_every`-th beat (0 in format 1
    /// sessions, which did not record it: read it through [`SessionInfo::read_period_us`]).
    #[serde(skip)]
    pub read_every: u32,
}

impl SessionInfo {
    /// The stored bytes: the format 1 fields (postcard) then `read_every` (postcard).
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut bytes = postcard::to_stdvec(self)?;
        bytes.extend(postcard::to_stdvec(&self.read_every)?);
        Ok(bytes)
    }

    /// Reads a session of either format.
    pub fn from_bytes(bytes: &[u8]) -> Result<SessionInfo, postcard::Error> {
        let (mut info, rest): (SessionInfo, &[u8]) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            info.read_every = postcard::take_from_bytes::<u32>(rest)?.0;
        }
        Ok(info)
    }

    /// Time between a replica's regular reads, µs: `interval * read_every` (format 1
    /// sessions count as reading every beat).
    pub fn read_period_us(&self) -> i64 {
        self.interval_us as i64 * i64::from(self.read_every.max(1))
    }
}

/// What went wrong with a store file. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not a lagtrace store (another redb file, or not redb).
    #[error("{}: not a lagtrace store ({detail})", path.display())]
    NotAStore { path: PathBuf, detail: String },
    /// The store was written by a newer lagtrace.
    #[error(
        "{}: store format version {found} is newer than this lagtrace reads ({supported}); upgrade lagtrace",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The store is of an older format that this lagtrace reads but does not append to.
    #[error(
        "{}: store format version {found} is read-only for this lagtrace (it appends to version {FORMAT_VERSION}); record to a new store file, the offline commands read both",
        path.display()
    )]
    OlderFormat { path: PathBuf, found: u32 },
    /// Another recorder has the store open for writing.
    #[error("{}: store is open for writing by another lagtrace record", path.display())]
    Locked { path: PathBuf },
    /// The file does not exist (when reading).
    #[error("{}: no such store file", path.display())]
    Missing { path: PathBuf },
    /// A chunk or table could not be decoded.
    #[error("{}: corrupt store: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// An I/O or database error.
    #[error("{}: store error: {detail}", path.display())]
    Db { path: PathBuf, detail: String },
}

impl StoreError {
    /// Whether the file itself is at fault (missing, foreign, of another format,
    /// corrupt), as opposed to the machine or another process (I/O, a lock).
    pub fn is_bad_file(&self) -> bool {
        match self {
            StoreError::NotAStore { .. }
            | StoreError::NewerFormat { .. }
            | StoreError::OlderFormat { .. }
            | StoreError::Missing { .. }
            | StoreError::Corrupt { .. } => true,
            StoreError::Locked { .. } | StoreError::Db { .. } => false,
        }
    }

    /// Whether trying again later may succeed: an I/O or database error (a full disk),
    /// not a file that is not ours or is held by another recorder.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Db { .. })
    }
}

/// The error for a store at `path` whose contents make no sense: `detail` says where.
fn corrupt_at(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Maps any redb error to a [`StoreError`] about `path`.
fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    match e {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.to_path_buf(),
        },
        redb::Error::Corrupted(detail) => StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: format!("redb says: {}", detail.to_lowercase()),
        },
        // redb's answer to a file without its magic number.
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: "not a redb file".into(),
            }
        }
        // A file shorter than its own header says: cut off (a copy that stopped, a disk
        // that filled while it was written).
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            corrupt_at(path, "the file is truncated")
        }
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: "it is a directory".into(),
            }
        }
        other => StoreError::Db {
            path: path.to_path_buf(),
            detail: other.to_string().to_lowercase(),
        },
    }
}

/// The interned key of a cluster.
pub fn cluster_key(cluster: &str) -> String {
    format!("c/{cluster}")
}

/// The interned key of a replica.
pub fn replica_key(cluster: &str, replica: &str) -> String {
    format!("r/{cluster}/{replica}")
}

/// The page cache of a store open for appending. The writer only appends at the end of
/// the chunk table and rewrites a few open chunks per flush; redb's cache keeps the
/// pages written (heaptrack: 1.45 MB after 150 s at 1 ms with two replicas), so with
/// its default of 1 GiB a recorder running for weeks would grow towards that. 1 MiB
/// holds the pages a flush touches (the right edge of the chunk table and the open
/// chunks); anything else is read back from the OS page cache.
const WRITE_CACHE_BYTES: usize = 1 << 20;

/// A store open for appending (by `record`).
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens a store for appending, creating it if the file does not exist. Refuses
    /// files that are not lagtrace stores or are of a newer format, without writing.
    pub fn open_or_create(path: &Path) -> Result<Store, StoreError> {
        let existed = path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        if existed {
            // Refuse foreign, newer and older files before opening for writing: opening
            // a redb file for writing rewrites its header.
            let (db, version) = open_read(path)?;
            drop(db);
            if version < UPGRADABLE_VERSION {
                return Err(StoreError::OlderFormat {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
        }
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .set_cache_size(WRITE_CACHE_BYTES)
            .create(path)
            .map_err(|e| db_err(path, e))?;
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        if existed {
            let version = check_meta(path, &store.db.begin_read().map_err(|e| db_err(path, e))?)?;
            if version < UPGRADABLE_VERSION {
                return Err(StoreError::OlderFormat {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
            if version < FORMAT_VERSION {
                store.upgrade()?;
            }
        } else {
            store.init_tables()?;
        }
        Ok(store)
    }

    /// Opens again a store this process had open for appending, after an I/O error
    /// made redb refuse further writes: redb recovers the last committed state.
    pub fn reopen(path: &Path) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .set_cache_size(WRITE_CACHE_BYTES)
            .create(path)
            .map_err(|e| db_err(path, e))?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_tables(&self) -> Result<(), StoreError> {
        let p = &self.path;
        let tx = self.db.begin_write().map_err(|e| db_err(p, e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| db_err(p, e))?;
            meta.insert("magic", MAGIC).map_err(|e| db_err(p, e))?;
            meta.insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())
                .map_err(|e| db_err(p, e))?;
            tx.open_table(NAMES).map_err(|e| db_err(p, e))?;
            tx.open_table(NAME_IDS).map_err(|e| db_err(p, e))?;
            tx.open_table(SESSIONS).map_err(|e| db_err(p, e))?;
            tx.open_table(CHUNKS).map_err(|e| db_err(p, e))?;
        }
        tx.commit().map_err(|e| db_err(p, e))
    }

    /// Makes a version 2 store a version 3 one: the chunks of the sessions from the next
    /// one on carry checksums ([`CHECKSUMS_FROM`]); the older ones are left as they are.
    fn upgrade(&self) -> Result<(), StoreError> {
        let p = &self.path;
        let tx = self.db.begin_write().map_err(|e| db_err(p, e))?;
        {
            let next_session = tx
                .open_table(SESSIONS)
                .map_err(|e| db_err(p, e))?
                .last()
                .map_err(|e| db_err(p, e))?
                .map_or(1, |(k, _)| k.value() + 1);
            let mut meta = tx.open_table(META).map_err(|e| db_err(p, e))?;
            meta.insert(CHECKSUMS_FROM, next_session.to_le_bytes().as_slice())
                .map_err(|e| db_err(p, e))?;
            meta.insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())
                .map_err(|e| db_err(p, e))?;
            tracing::info!(store = %p.display(), from_session = next_session, "store upgraded to format 3 (chunk checksums)");
        }
        tx.commit().map_err(|e| db_err(p, e))
    }

    /// Returns the id of each key (see [`cluster_key`], [`replica_key`]), interning new ones.
    pub fn intern(&self, keys: &[String]) -> Result<Vec<u32>, StoreError> {
        let p = &self.path;
        let tx = self.db.begin_write().map_err(|e| db_err(p, e))?;
        let mut ids = Vec::with_capacity(keys.len());
        {
            let mut names = tx.open_table(NAMES).map_err(|e| db_err(p, e))?;
            let mut by_id = tx.open_table(NAME_IDS).map_err(|e| db_err(p, e))?;
            let mut next = by_id
                .last()
                .map_err(|e| db_err(p, e))?
                .map_or(1, |(k, _)| k.value() + 1);
            for key in keys {
                let existing = names
                    .get(key.as_str())
                    .map_err(|e| db_err(p, e))?
                    .map(|v| v.value());
                let id = match existing {
                    Some(id) => id,
                    None => {
                        let id = next;
                        next += 1;
                        names.insert(key.as_str(), id).map_err(|e| db_err(p, e))?;
                        by_id.insert(id, key.as_str()).map_err(|e| db_err(p, e))?;
                        id
                    }
                };
                ids.push(id);
            }
        }
        tx.commit().map_err(|e| db_err(p, e))?;
        Ok(ids)
    }

    /// Compacts the file: moves pages down and truncates the free tail.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let p = self.path.clone();
        while self.db.compact().map_err(|e| StoreError::Db {
            path: p.clone(),
            detail: format!("compaction: {}", e.to_string().to_lowercase()),
        })? {}
        Ok(())
    }

    /// Records a new session and returns its id.
    pub fn begin_session(&self, info: &SessionInfo) -> Result<u32, StoreError> {
        let p = &self.path;
        let tx = self.db.begin_write().map_err(|e| db_err(p, e))?;
        let id;
        {
            let mut sessions = tx.open_table(SESSIONS).map_err(|e| db_err(p, e))?;
            id = sessions
                .last()
                .map_err(|e| db_err(p, e))?
                .map_or(1, |(k, _)| k.value() + 1);
            let bytes = info.to_bytes().map_err(|e| StoreError::Db {
                path: p.clone(),
                detail: e.to_string(),
            })?;
            sessions
                .insert(id, bytes.as_slice())
                .map_err(|e| db_err(p, e))?;
        }
        tx.commit().map_err(|e| db_err(p, e))?;
        Ok(id)
    }
}

/// The first session whose chunks carry a checksum in a store of format `version` read
/// through `tx`; `None` when none do (formats 1 and 2).
pub(crate) fn checksums_from(
    path: &Path,
    tx: &redb::ReadTransaction,
    version: u32,
) -> Result<Option<u32>, StoreError> {
    if version < 3 {
        return Ok(None);
    }
    let meta = tx.open_table(META).map_err(|e| db_err(path, e))?;
    let from = meta.get(CHECKSUMS_FROM).map_err(|e| db_err(path, e))?;
    match from {
        None => Ok(Some(0)),
        Some(v) => <[u8; 4]>::try_from(v.value())
            .map(|b| Some(u32::from_le_bytes(b)))
            .map_err(|_| corrupt_at(path, format!("{CHECKSUMS_FROM} is not a u32"))),
    }
}

/// Checks that a read transaction sees a lagtrace store of a version this build reads,
/// and returns that version.
fn check_meta(path: &Path, tx: &redb::ReadTransaction) -> Result<u32, StoreError> {
    let meta = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: "a redb file without lagtrace's meta table".into(),
            });
        }
        Err(e) => return Err(db_err(path, e)),
    };
    let magic = meta.get("magic").map_err(|e| db_err(path, e))?;
    if magic.as_ref().map(|m| m.value()) != Some(MAGIC) {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: "its meta table lacks lagtrace's magic".into(),
        });
    }
    let version = meta
        .get("format_version")
        .map_err(|e| db_err(path, e))?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt_at(path, "format_version missing"))?;
    if version > FORMAT_VERSION {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < OLDEST_READABLE_VERSION {
        return Err(corrupt_at(
            path,
            format!("unknown old format version {version}"),
        ));
    }
    Ok(version)
}

/// The page cache of a store opened for reading. The offline commands read each chunk
/// once, in key order: a cache as large as redb's default (1 GiB) would only hold the
/// file in memory, so that a week's analysis took seven times a day's memory. What a
/// walk reads again is the branch pages on its paths down the tree (height 5 for a week
/// at 100 Hz: a few dozen pages for the few series walked at once); 4 MiB holds those
/// many times over. A larger cache only churned the allocator: with 16 MiB the bench
/// day peaked at 33 MB RSS and the week at 41-46 MB, with 4 MiB at 21 and 23 MB, as
/// fast.
const READ_CACHE_BYTES: usize = 4 << 20;

/// Opens a store for reading; works while a recorder appends to it. Returns the
/// database and its format version.
pub fn open_read(path: &Path) -> Result<(ReadOnlyDatabase, u32), StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    let open = || {
        Database::builder()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .set_cache_size(READ_CACHE_BYTES)
            .open_read_only(path)
    };
    let db = match open() {
        Ok(db) => db,
        // After a crash (a recorder killed), redb must repair the file before anyone reads
        // it, and a read-only handle cannot. Opening it for writing once does the repair,
        // as the next `record` would; nothing else is written.
        Err(redb::DatabaseError::RepairAborted) => {
            tracing::info!(store = %path.display(), "repairing after an unclean shutdown");
            // The repair writes: on a full disk it cannot finish, and the file is left
            // as it was (redb's commit is copy-on-write).
            let unrepaired = |e: StoreError| StoreError::Db {
                path: path.to_path_buf(),
                detail: format!(
                    "the store was not closed cleanly and repairing it failed ({}); free space on its disk (or copy it to one with room) and try again",
                    match e {
                        StoreError::Db { detail, .. } => detail,
                        other => other.to_string(),
                    }
                ),
            };
            let repaired = Database::builder()
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .open(path)
                .map_err(|e| unrepaired(db_err(path, e)))?;
            check_meta(path, &repaired.begin_read().map_err(|e| db_err(path, e))?)?;
            drop(repaired);
            open().map_err(|e| unrepaired(db_err(path, e)))?
        }
        Err(e) => return Err(db_err(path, e)),
    };
    let version = check_meta(path, &db.begin_read().map_err(|e| db_err(path, e))?)?;
    Ok((db, version))
}

// What the store's writer, scans, retention and events tables agree on.

/// Longest time a chunk covers (1 h), so a reader can find every chunk overlapping a
/// window by starting its key range one hour early.
pub const MAX_CHUNK_SPAN_US: i64 = 3_600_000_000;
/// How far before `from` beats are loaded, so that a replica lagging by up to this much
/// at the start of the window still has its beat to bound the lag.
pub const BEAT_LOOKBACK_US: i64 = 6 * 3_600_000_000;

/// Where a prune cuts, UTC µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// Observations and status samples before this go.
    pub samples_us: i64,
    /// Beats before this go: later than `samples_us` by the lag a kept read may show
    /// (the reads just after the cutoff still find the beats they saw).
    pub beats_us: i64,
}

impl Cutoff {
    /// The cutoff for keeping `retain_us` before `now_us`; beats are kept
    /// `min(retain_us, BEAT_LOOKBACK_US)` longer, as far back as `analyze --from` looks.
    pub fn keeping(now_us: i64, retain_us: i64) -> Cutoff {
        let samples_us = now_us.saturating_sub(retain_us);
        Cutoff {
            samples_us,
            beats_us: samples_us.saturating_sub(retain_us.min(BEAT_LOOKBACK_US)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lagtrace-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.redb")
    }

    #[test]
    fn create_intern_and_reopen() {
        let path = temp("intern");
        let store = Store::open_or_create(&path).unwrap();
        let ids = store
            .intern(&[cluster_key("a"), replica_key("a", "r1")])
            .unwrap();
        assert_eq!(ids, [1, 2]);
        let s1 = store
            .begin_session(&SessionInfo {
                started_us: 1,
                interval_us: 100_000,
                version: "t".into(),
                host: "h".into(),
                read_every: 1,
            })
            .unwrap();
        drop(store);
        let store = Store::open_or_create(&path).unwrap();
        let ids = store
            .intern(&[replica_key("a", "r2"), cluster_key("a")])
            .unwrap();
        assert_eq!(ids, [3, 1]);
        let s2 = store
            .begin_session(&SessionInfo {
                started_us: 2,
                interval_us: 100_000,
                version: "t".into(),
                host: "h".into(),
                read_every: 1,
            })
            .unwrap();
        assert_eq!((s1, s2), (1, 2));
        drop(store);
        open_read(&path).unwrap();
    }

    #[test]
    fn foreign_files_are_refused_untouched() {
        let path = temp("foreign");
        std::fs::write(
            &path,
            b"this is not a database, it is a grocery list\n".repeat(200),
        )
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        let e = Store::open_or_create(&path).err().expect("refused");
        assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "file was modified");
        let e = open_read(&path).err().expect("refused");
        assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");

        // A real redb file that is not ours.
        let other = temp("other-redb");
        {
            let db = Database::create(&other).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TableDefinition::<u64, u64>::new("x"))
                .unwrap();
            tx.commit().unwrap();
        }
        let e = Store::open_or_create(&other).err().expect("refused");
        assert!(e.to_string().contains("not a lagtrace store"), "{e}");
    }

    #[test]
    fn newer_format_is_refused() {
        let path = temp("newer");
        drop(Store::open_or_create(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("format_version", 99u32.to_le_bytes().as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let e = Store::open_or_create(&path).err().expect("refused");
        assert!(e.to_string().contains("format version 99 is newer"), "{e}");
        let e = open_read(&path).err().expect("refused");
        assert!(matches!(e, StoreError::NewerFormat { found: 99, .. }));
    }

    #[test]
    fn a_format_1_store_is_read_and_never_appended_to() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/stores/v1.redb");
        let path = temp("v1");
        std::fs::copy(&fixture, &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let (_, version) = open_read(&path).unwrap();
        assert_eq!(version, 1);
        let e = Store::open_or_create(&path).err().expect("refused");
        assert!(matches!(e, StoreError::OlderFormat { found: 1, .. }), "{e}");
        assert!(e.to_string().contains("record to a new store file"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "file was modified");
    }

    #[test]
    fn missing_store_for_reading() {
        let e = open_read(Path::new("/nonexistent/x.redb")).err().unwrap();
        assert_eq!(e.to_string(), "/nonexistent/x.redb: no such store file");
    }
}
