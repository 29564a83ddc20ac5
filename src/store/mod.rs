//! The durable store: every incident, impact, timeline entry, rule state, lease, heartbeat,
//! escalation and page. SQLite for one engine, PostgreSQL for several; the same portable SQL
//! (through sqlx's Any driver) serves both, with a migration folder per backend.
//!
//! - `model`: the data the engine hands in and reads back; `statements`: SQL with bound
//!   values, as both backends run it.
//! - `state` (the engine's batches and its state after a restart), `queries` (reads for
//!   the API), `outbox`, `inbox`, `leader`, `sources`, `secrets`, `health`, `audit` (the
//!   audit log's HMAC chain): portable SQL.
//! - `sqlite/` and `postgres/`: what each backend adds (connections, migrations, dialect;
//!   for SQLite the file lock, the checkpointer and the writer thread).
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

mod audit;
mod cases;
mod health;
mod inbox;
mod leader;
mod live;
pub mod model;
mod outbox;
mod postgres;
mod queries;
mod retention;
mod schema;
mod secrets;
mod sources;
mod sqlite;
mod state;
mod statements;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use audit::{audit_mac, AuditCheck, AuditEntry, NewAuditEntry};
pub use health::StoreHealth;
pub use inbox::done_names;
pub use leader::LeaseRow;
pub use outbox::{Claim, DeliveryWrite, OutboxEntry, OutboxStatus};
pub use postgres::inbox_signals::LeaderUrl;
pub use queries::IncidentFilter;
pub use retention::Pruned;
pub use schema::{schema_status, Migration, SchemaStatus};
pub use sqlite::backup::{restore, RestoreError, Restored};
pub use sqlite::lock::{host_name, Owner};
pub use sqlite::writer::{Durable, Submitted};

/// Incidents not resolved, said so that the status index finds them: `status <> 'resolved'`
/// reads every row of the history.
const OPEN_STATUS: &str = "status IN ('triggered', 'acknowledged')";

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
    #[error("store: cannot start the thread that commits to PostgreSQL: {0}")]
    CommitterStart(#[source] std::io::Error),
    #[error("store: the commit of the engine's changes stopped before it was done")]
    CommitStopped,
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
    #[error(
        "a PostgreSQL store is backed up with pg_dump (docs/operations.md, \"Backup and restore\")"
    )]
    BackupOfPostgres,
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
    /// A SQLite store's own parts (write turns, writer, file lock); `None` for PostgreSQL
    /// and for a store opened read-only.
    sqlite: Option<Arc<sqlite::Sqlite>>,
    /// PostgreSQL: the inbox's notifications (see `postgres::inbox_signals`).
    inbox_signals: Option<Arc<postgres::inbox_signals::InboxSignals>>,
    /// PostgreSQL: the thread that commits the engine's batches (see `postgres::committer`);
    /// `None` for a store opened read-only.
    committer: Option<Arc<postgres::committer::Committer>>,
}

/// Who must hold the lease for a write to go through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fencing {
    pub holder: String,
    pub term: i64,
    /// The pages a batch writes are claimed for `holder` in the same transaction, this long
    /// from their creation (see `Store::claim_page`): the leader that wrote a page sends it
    /// without another round trip to claim it.
    pub page_claims: PerChannel,
}

/// A length of time for each channel a page can go through: how long an attempt through it
/// can take, or how long a leader's batches claim the pages they write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerChannel {
    pub email: chrono::Duration,
    /// By webhook name.
    pub webhooks: std::collections::HashMap<String, chrono::Duration>,
    /// A channel the config lacks (its attempts fail at once).
    pub otherwise: chrono::Duration,
}

impl PerChannel {
    /// The time for `page`'s channel.
    pub fn of(&self, page: &crate::paging::Page) -> chrono::Duration {
        match page.recipient.channel {
            crate::paging::Channel::Email => self.email,
            crate::paging::Channel::Webhook => self
                .webhooks
                .get(&page.recipient.address)
                .copied()
                .unwrap_or(self.otherwise),
        }
    }
}

impl Backend {
    /// Milliseconds now, by the database's clock, as SQL.
    pub(super) fn now_ms(self) -> &'static str {
        match self {
            Backend::Sqlite => sqlite::NOW_MS,
            Backend::Postgres => postgres::NOW_MS,
        }
    }

    /// What a `SELECT` ends with to lock the rows it reads: `share` for a read that others
    /// may share, else to claim them, skipping rows another writer holds. Nothing on
    /// SQLite, where a write transaction holds the whole file.
    pub(super) fn row_lock(self, share: bool) -> &'static str {
        match (self, share) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, true) => "FOR SHARE",
            (Backend::Postgres, false) => "FOR UPDATE SKIP LOCKED",
        }
    }
}

impl Store {
    /// Open (creating the SQLite file and its folders when missing) and migrate, as this
    /// process serving no port.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_as(url, &Owner::this_process(None)).await
    }

    /// Open and migrate on behalf of `owner`. A SQLite file is locked for it first (see
    /// `sqlite::lock`): a store another engine holds is refused at once, naming that
    /// engine, and nothing is written to it.
    pub async fn open_as(url: &str, owner: &Owner) -> Result<Store> {
        let (pool, sqlite) = match backend_of(url) {
            Backend::Sqlite => {
                let (pool, sqlite) = sqlite::open(url, owner).await?;
                (pool, Some(Arc::new(sqlite)))
            }
            Backend::Postgres => (postgres::open(url).await?, None),
        };
        let (inbox_signals, committer) = match backend_of(url) {
            Backend::Postgres => (
                Some(postgres::inbox_signals::InboxSignals::new(url)),
                Some(Arc::new(postgres::committer::Committer::start(url)?)),
            ),
            Backend::Sqlite => (None, None),
        };
        Ok(Store {
            pool,
            backend: backend_of(url),
            fencing: None,
            sqlite,
            inbox_signals,
            committer,
        })
    }

    /// Why an engine could not open `url` now because another engine uses it (a SQLite file
    /// another engine holds), if so; nothing is created or written.
    pub fn in_use(url: &str) -> Option<StoreError> {
        match backend_of(url) {
            Backend::Sqlite => sqlite::in_use(url),
            Backend::Postgres => None,
        }
    }

    /// Open a store only to read it, beside an engine that may be using it (a test looking
    /// at a running engine's store): no lock, no migration, no writer; writes fail.
    pub async fn open_read_only(url: &str) -> Result<Store> {
        let backend = backend_of(url);
        let pool = match backend {
            Backend::Sqlite => sqlite::open_read_only(url).await?,
            Backend::Postgres => postgres::connect(url).await?,
        };
        Ok(Store {
            pool,
            backend,
            fencing: None,
            sqlite: None,
            inbox_signals: None,
            committer: None,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This store, with writes of core changes fenced by the lease at `term`, and the pages
    /// they write claimed for `holder` (for as long as `page_claims` says).
    pub fn fenced(&self, holder: &str, term: i64, page_claims: PerChannel) -> Store {
        Store {
            fencing: Some(Arc::new(Fencing {
                holder: holder.to_string(),
                term,
                page_claims,
            })),
            ..self.clone()
        }
    }

    /// This writer's turn (SQLite); held until its transaction is over, by whatever the
    /// guard is handed to (an engine batch on its way to the writer thread).
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite {
            Some(sqlite) => Some(sqlite.write_turn().await),
            None => None,
        }
    }

    /// The SQLite file's writer, when this store writes one.
    fn sqlite_writer(&self) -> Option<&sqlite::SqliteWriter> {
        self.sqlite.as_ref()?.writer.as_ref()
    }

    /// A consistent copy of a SQLite store, as one self-contained file at `dest` (which must
    /// not exist), taken while the engine goes on writing (see `sqlite::backup`).
    pub async fn backup_to(&self, dest: &std::path::Path) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlite::backup::vacuum_into(&self.pool, dest).await,
            Backend::Postgres => Err(StoreError::BackupOfPostgres),
        }
    }

    /// The SQLite file this store holds locked, if any.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        let lock = self.sqlite.as_ref()?.lock.as_ref()?;
        Some(&lock.database)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        if let Some(writer) = self.sqlite_writer() {
            writer.close().await;
        }
        if let Some(committer) = &self.committer {
            committer.close().await;
        }
        self.pool.close().await;
        if let Some(lock) = self.sqlite.as_ref().and_then(|s| s.lock.as_ref()) {
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

/// A pool on `connect_url`, with `options`; `url` (as configured) names it in an error.
async fn connect_pool(url: &str, connect_url: &str, options: AnyPoolOptions) -> Result<AnyPool> {
    options
        .acquire_timeout(StdDuration::from_secs(10))
        .connect(connect_url)
        .await
        .map_err(|reason| StoreError::Open {
            url: redact(url),
            reason,
        })
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
