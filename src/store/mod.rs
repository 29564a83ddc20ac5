//! The durable store: every incident, impact, timeline entry, rule state, lease, heartbeat,
//! escalation and page. SQLite for one engine, PostgreSQL for several; the same portable SQL
//! (through sqlx's Any driver) serves both, with a migration folder per backend.
//!
//! Every write takes a connection of its own and closes it, rather than putting it back in
//! the pool, when the write fails. After an I/O error (a full disk, a file that became
//! read-only) SQLite may leave the connection inside its transaction, its own rollback and
//! sqlx's ROLLBACK failing too. Put back, that connection kept the write lock (every other
//! write waited out busy_timeout and failed), and the next transaction on it was only a
//! savepoint inside the stale one: its "commit" released the savepoint and committed
//! nothing, so the engine took for stored what never reached the file (found by
//! tests/e2e/reliability.rs with a read-only database file). Closing the connection rolls back
//! and releases its locks; the pool opens a fresh one.

mod health;
mod inbox;
mod leader;
mod lock;
mod outbox;
mod queries;
mod redo_log;
mod schema;
mod secrets;
mod sources;
mod sqlite_writer;
mod state;
mod wal_room;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use health::StoreHealth;
pub use leader::LeaseRow;
pub use lock::{host_name, Owner};
pub use outbox::{Claim, DeliveryWrite, OutboxEntry, OutboxStatus};
pub use queries::IncidentFilter;
pub use schema::{schema_status, Migration, SchemaStatus};
pub use sqlite_writer::{Durable, Submitted};

/// A `reason` is said in its variant's message and is not its `source()`, so the one line
/// printed at the binary's edge (`{:#}`, which appends every source) says it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {url}: {reason}")]
    Open { url: String, reason: sqlx::Error },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: cannot start the SQLite writer thread: {0}")]
    WriterStart(#[source] std::io::Error),
    #[error("store: the SQLite writer thread has stopped")]
    WriterStopped,
    #[error("store: cannot fsync the SQLite WAL: {0}")]
    Sync(#[source] std::io::Error),
    #[error("store: the redo log beside the SQLite file: {0}")]
    RedoLog(#[source] std::io::Error),
    #[error(
        "store: record {number} of the redo log {log} cannot be committed: {source}; the \
         engine does not start without it (move the log aside to start without that batch)"
    )]
    Replay {
        log: String,
        number: u64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "store: this engine no longer holds the leader lease (term {term}); the write was refused"
    )]
    Fenced { term: i64 },
    #[error(
        "store {path} is in use by another engine ({holder}); one engine per SQLite store: \
         stop that engine, or give this one a store of its own"
    )]
    InUse { path: String, holder: String },
    #[error("store: cannot open {path} for writing: {reason}")]
    Unwritable {
        path: String,
        reason: std::io::Error,
    },
    #[error("store: cannot lock {path}: {reason}")]
    Lock {
        path: String,
        reason: std::io::Error,
    },
    #[error("store: the database holds tables, but no record of tocsin's migrations: not a tocsin store")]
    NotAStore,
    #[error("store: cannot create folder {path}: {reason}")]
    Folder {
        path: String,
        reason: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Set on the leader's store: its writes of core changes check that it still holds the
    /// lease at this term (the fencing token), so a deposed leader cannot write.
    fencing: Option<Arc<Fencing>>,
    /// SQLite only: the engine's and the delivery worker's writes take turns here before
    /// they ask for SQLite's write lock. A writer that finds SQLite's lock taken gets
    /// SQLITE_BUSY and its busy handler sleeps (1, 2, 5, 10 ms and more) before it tries
    /// again, long after the lock was free: that put milliseconds on a page's way out
    /// (signal-to-page benchmark). Waiting on this mutex wakes the next writer at once.
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite only: write turns taken so far, so the checkpointer idles while nothing is
    /// written.
    writes: Arc<AtomicU64>,
    /// A SQLite file: the engine's batches are written by this thread (see `sqlite_writer`).
    sqlite_writer: Option<Arc<sqlite_writer::SqliteWriter>>,
    /// A SQLite file: this process's lock on it (see `lock`), released by `close`.
    lock: Option<Arc<lock::EngineLock>>,
}

/// Who must hold the lease for a write to go through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fencing {
    pub holder: String,
    pub term: i64,
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Open (creating the SQLite file and its folders when missing) and migrate, as this
    /// process serving no port.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_as(url, &Owner::this_process(None)).await
    }

    /// Open and migrate on behalf of `owner`. A SQLite file is locked for it first (see
    /// `lock`): a store another engine holds is refused at once, naming that engine, and
    /// nothing is written to it.
    pub async fn open_as(url: &str, owner: &Owner) -> Result<Store> {
        let backend = backend_of(url);
        let connect_url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        let lock = match sqlite_file(url).filter(|_| backend == Backend::Sqlite) {
            Some(path) => Some(Arc::new(lock::EngineLock::take(Path::new(path), owner)?)),
            None => None,
        };
        let pool = connect(url, &connect_url, backend).await?;
        // A SQLite file's redo log holds batches of the engine that last ran on it, written
        // for the schema the file is at: they are committed before the migrations, which
        // then carry them forward with the rest (a batch of an earlier version committed
        // after them would miss what they add, such as the links of its new impacts).
        let mut sqlite_writer = None;
        let mut replayed = false;
        // The file itself, so that its redo log is the same whatever path leads to it.
        if let Some(path) = lock.as_ref().map(|lock| lock.database.clone()) {
            let writer =
                sqlite_writer::SqliteWriter::start(path).map_err(StoreError::WriterStart)?;
            if has_table(&pool, "redo_applied").await? {
                writer.open_redo_log()?;
                replayed = true;
            }
            sqlite_writer = Some(writer);
        }
        match backend {
            Backend::Sqlite => MIGRATE_SQLITE.run(&pool).await?,
            Backend::Postgres => MIGRATE_POSTGRES.run(&pool).await?,
        }
        let writes = Arc::new(AtomicU64::new(0));
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_wal(pool.clone(), Arc::clone(&writes)));
        }
        if let Some(writer) = &sqlite_writer {
            writer.make_wal_room();
            if !replayed {
                writer.open_redo_log()?;
            }
        }
        let sqlite_writer = sqlite_writer.map(Arc::new);
        Ok(Store {
            pool,
            backend,
            fencing: None,
            write_turn: (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(()))),
            writes,
            sqlite_writer,
            lock,
        })
    }

    /// Why an engine could not open `url` now because another engine uses it (a SQLite file
    /// another engine holds), if so; nothing is created or written.
    pub fn in_use(url: &str) -> Option<StoreError> {
        let path = sqlite_file(url).filter(|_| backend_of(url) == Backend::Sqlite)?;
        lock::EngineLock::held(Path::new(path))
    }

    /// Open a store only to read it, beside an engine that may be using it (a test looking
    /// at a running engine's store): no lock, no migration, no writer; writes fail.
    pub async fn open_read_only(url: &str) -> Result<Store> {
        let backend = backend_of(url);
        let connect_url = match sqlite_file(url).filter(|_| backend == Backend::Sqlite) {
            Some(path) => format!("sqlite://{path}?mode=ro"),
            None => url.to_string(),
        };
        Ok(Store {
            pool: connect(url, &connect_url, backend).await?,
            backend,
            fencing: None,
            write_turn: None,
            writes: Arc::default(),
            sqlite_writer: None,
            lock: None,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This store, with writes of core changes fenced by the lease at `term`.
    pub fn fenced(&self, holder: &str, term: i64) -> Store {
        Store {
            fencing: Some(Arc::new(Fencing {
                holder: holder.to_string(),
                term,
            })),
            ..self.clone()
        }
    }

    /// This writer's turn (SQLite); held until its transaction is over, by whatever the
    /// guard is handed to (an engine batch on its way to the writer thread).
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_turn {
            Some(turn) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                Some(Arc::clone(turn).lock_owned().await)
            }
            None => None,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
        self.pool.close().await;
        if let Some(lock) = &self.lock {
            lock.release();
        }
    }

    /// Is the store answering?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

fn backend_of(url: &str) -> Backend {
    sqlx::any::install_default_drivers();
    if url.starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// The store's pool (`url` as configured, for messages; `connect_url` as connected to).
async fn connect(url: &str, connect_url: &str, backend: Backend) -> Result<AnyPool> {
    let options = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        })
        .acquire_timeout(StdDuration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers (API, dashboard) run beside the writer. NORMAL:
                    // a commit does not fsync while it holds SQLite's write lock. With
                    // FULL, a delivery outcome's fsync that the disk held for ~90 ms
                    // held the engine's next commit, and the page waiting on it, as
                    // long (signal-to-page benchmark). Delivery outcomes now go through
                    // the engine's writer connection (`write_statements`), committed the
                    // same way; these connections still write claims and source cursors.
                    // All of it is on disk with the next fsync of the WAL: the engine's
                    // after each batch (`sqlite_writer`), or the checkpoint's within a
                    // second. A power cut before that can lose it: a claim that expires
                    // anyway, a cursor read again, a delivered page sent once more (a
                    // duplicate, never a lost page). The engine's own batches answer
                    // nobody before their fsync.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // Checkpoints run beside the writer (see `checkpoint_wal`), not
                    // inside whichever commit crosses 1,000 WAL pages: there, copying
                    // pages into a large database file and fsyncing it held up that
                    // commit, and the page or answer waiting on it, for ~0.5 s.
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        });
    options
        .connect(connect_url)
        .await
        .map_err(|reason| StoreError::Open {
            url: redact(url),
            reason,
        })
}

/// Copy the WAL into the database file every second after writes, beside the writer: a
/// passive checkpoint never waits for or blocks a commit. The WAL is reused from its start
/// once wholly copied, so it stays about as large as a second of writes; under writes that
/// never pause the writer's own commits finish the copy past a bound (`sqlite_writer`).
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

/// Whether the SQLite database has a table `name`.
async fn has_table(pool: &AnyPool, name: &str) -> Result<bool> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

/// The path and the query of a `sqlite://path?query` URL.
fn sqlite_parts(url: &str) -> (&str, Option<&str>) {
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
fn sqlite_file(url: &str) -> Option<&str> {
    let (path, _) = sqlite_parts(url);
    (path != ":memory:" && !path.is_empty()).then_some(path)
}

/// `sqlite://relative/path` → a URL that creates the file, after creating its folder.
fn sqlite_url(url: &str) -> Result<String> {
    let Some(path) = sqlite_file(url) else {
        return Ok("sqlite::memory:".into());
    };
    let (_, query) = sqlite_parts(url);
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

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::from_str(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    Ok(serde_json::from_str(&text)?)
}
