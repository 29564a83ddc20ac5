//! The SQLite backend: one engine on one file, in WAL mode.
//!
//! The same portable SQL as PostgreSQL runs through sqlx's pool (reads, claims, cursors);
//! this folder holds what a SQLite file needs besides: the connection settings, the lock
//! that keeps a second engine out (`lock`), the WAL checkpoint beside the writer, and the
//! writer of the engine's batches (`writer`, with `redo_log` and `wal_room`).

pub(super) mod backup;
pub(super) mod lock;
pub(super) mod redo_log;
mod wal_room;
pub(super) mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Owner, Result, StoreError};
pub(super) use writer::SqliteWriter;

pub(super) static MIGRATE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Milliseconds now, by SQLite's clock.
pub(super) const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/// A SQLite store's own parts, shared by the clones of its `Store`.
#[derive(Debug)]
pub(super) struct Sqlite {
    /// The engine's and the delivery worker's writes take turns here before they ask for
    /// SQLite's write lock. A writer that finds SQLite's lock taken gets SQLITE_BUSY and its
    /// busy handler sleeps (1, 2, 5, 10 ms and more) before it tries again, long after the
    /// lock was free: that put milliseconds on a page's way out (signal-to-page benchmark).
    /// Waiting on this mutex wakes the next writer at once.
    write_turn: Arc<Mutex<()>>,
    /// Write turns taken so far, so the checkpointer idles while nothing is written.
    writes: Arc<AtomicU64>,
    /// A file (not `:memory:`): the engine's batches are written by this thread.
    pub writer: Option<SqliteWriter>,
    /// A file: this process's lock on it (see `lock`), released by `Store::close`.
    pub lock: Option<lock::EngineLock>,
}

impl Sqlite {
    pub async fn write_turn(&self) -> OwnedMutexGuard<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Arc::clone(&self.write_turn).lock_owned().await
    }
}

/// Open `url` for `owner`: lock the file, migrate, start the checkpointer and the writer.
pub(super) async fn open(url: &str, owner: &Owner) -> Result<(AnyPool, Sqlite)> {
    let connect_url = create_url(url)?;
    let lock = match file_of(url) {
        Some(path) => Some(lock::EngineLock::take(Path::new(path), owner).await?),
        None => None,
    };
    let pool = connect(url, &connect_url).await?;
    // The file itself, so that its redo log is the same whatever path leads to it.
    let writer = match lock.as_ref().map(|lock| lock.database.clone()) {
        Some(path) => Some(SqliteWriter::start(path).map_err(StoreError::WriterStart)?),
        None => None,
    };
    // A file's redo log holds batches of the engine that last ran on it, written for the
    // schema the file is at: they are committed before the migrations, which then carry
    // them forward with the rest (a batch of an earlier version committed after them would
    // miss what they add, such as the links of its new impacts).
    let replayed = match &writer {
        Some(writer) if has_table(&pool, "redo_applied").await? => {
            writer.open_redo_log()?;
            true
        }
        _ => false,
    };
    MIGRATE.run(&pool).await?;
    let writes = Arc::new(AtomicU64::new(0));
    tokio::spawn(checkpoint_wal(pool.clone(), Arc::clone(&writes)));
    if let Some(writer) = &writer {
        writer.make_wal_room();
        if !replayed {
            writer.open_redo_log()?;
        }
    }
    let sqlite = Sqlite {
        write_turn: Arc::default(),
        writes,
        writer,
        lock,
    };
    Ok((pool, sqlite))
}

/// Why an engine could not open `url` now: another engine holds the file.
pub(super) fn in_use(url: &str) -> Option<StoreError> {
    lock::EngineLock::held(Path::new(file_of(url)?))
}

/// A pool that only reads `url`, beside the engine that may hold it.
pub(super) async fn open_read_only(url: &str) -> Result<AnyPool> {
    let connect_url = match file_of(url) {
        Some(path) => format!("sqlite://{path}?mode=ro"),
        None => url.to_string(),
    };
    connect(url, &connect_url).await
}

/// The pool (`url` as configured, for messages; `connect_url` as connected to).
async fn connect(url: &str, connect_url: &str) -> Result<AnyPool> {
    let options = AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // WAL lets readers (API, dashboard) run beside the writer. NORMAL: a commit
                // does not fsync while it holds SQLite's write lock. With FULL, a delivery
                // outcome's fsync that the disk held for ~90 ms held the engine's next
                // commit, and the page waiting on it, as long (signal-to-page benchmark).
                // Delivery outcomes go through the engine's writer connection
                // (`write_statements`), committed the same way; these connections still
                // write claims and source cursors. All of it is on disk with the next fsync
                // of the WAL: the engine's after each batch (`writer`), or the checkpoint's
                // within a second. A power cut before that can lose it: a claim that
                // expires anyway, a cursor read again, a delivered page sent once more (a
                // duplicate, never a lost page). The engine's own batches answer nobody
                // before their fsync.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                // Checkpoints run beside the writer (see `checkpoint_wal`), not inside
                // whichever commit crosses 1,000 WAL pages: there, copying pages into a
                // large database file and fsyncing it held up that commit, and the page or
                // answer waiting on it, for ~0.5 s.
                conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        });
    super::connect_pool(url, connect_url, options).await
}

/// Copy the WAL into the database file every second after writes, beside the writer: a
/// passive checkpoint never waits for or blocks a commit. The WAL is reused from its start
/// once wholly copied, so it stays about as large as a second of writes; under writes that
/// never pause the writer's own commits finish the copy past a bound (`writer`).
/// Ends when the pool closes.
async fn checkpoint_wal(pool: AnyPool, writes: Arc<AtomicU64>) {
    let mut every = tokio::time::interval(StdDuration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checkpointed = 0;
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        let written = writes.load(Ordering::Relaxed);
        if written == checkpointed {
            continue;
        }
        checkpointed = written;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(error = %e, "WAL checkpoint failed; retried in a second");
        }
    }
}

/// The path and the query of a `sqlite://path?query` URL.
fn url_parts(url: &str) -> (&str, Option<&str>) {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

/// The database file of a SQLite URL; None for an in-memory database.
pub(super) fn file_of(url: &str) -> Option<&str> {
    let (path, _) = url_parts(url);
    (path != ":memory:" && !path.is_empty()).then_some(path)
}

/// `sqlite://relative/path` → a URL that creates the file, after creating its folder.
fn create_url(url: &str) -> Result<String> {
    let Some(path) = file_of(url) else {
        return Ok("sqlite::memory:".into());
    };
    let (_, query) = url_parts(url);
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|reason| StoreError::Folder {
            path: parent.display().to_string(),
            reason,
        })?;
    }
    let mut query = query.map(str::to_string).unwrap_or_default();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{query}"))
}

/// Whether the SQLite database has a table `name`.
async fn has_table(pool: &AnyPool, name: &str) -> Result<bool> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}
