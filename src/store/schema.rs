//! Which schema version a store is at, read without changing it (`tocsin check --store`).
//!
//! A SQLite file is opened read-only: no migration, no checkpoint, no redo log (so none of
//! its locks either: an engine may be running on it). With no `-wal` file beside it the file
//! is opened `immutable`, so SQLite creates no `-wal` or `-shm` of its own next to it; with
//! one, what that WAL holds is read too (a store an engine left when it was killed). A
//! PostgreSQL store is read in a read-only transaction.

use std::path::Path;

use super::sqlite::file_of as sqlite_file;
use super::{postgres, redact, sqlite, Backend, StoreError};

/// One migration this binary has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub description: String,
}

/// A store's schema against this binary's migrations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaStatus {
    pub backend: Backend,
    /// The URL, its password hidden.
    pub url: String,
    /// The last migration applied; None when there is no store there yet (a SQLite file
    /// that does not exist), 0 when it has none.
    pub at: Option<i64>,
    /// The last migration this binary has.
    pub needs: i64,
    /// This binary's migrations the store lacks, in order: what the next start applies.
    pub pending: Vec<Migration>,
    /// Migrations the store has that this binary does not know: a newer tocsin wrote it.
    pub unknown: Vec<i64>,
    /// Migrations applied with other contents than this binary's (a start refuses them).
    pub modified: Vec<i64>,
    /// Migrations that began and did not finish.
    pub failed: Vec<i64>,
}

impl SchemaStatus {
    /// A store this binary can start on (migrating it first, if need be).
    pub fn usable(&self) -> bool {
        self.unknown.is_empty() && self.modified.is_empty() && self.failed.is_empty()
    }
}

/// A row of `_sqlx_migrations`.
struct Applied {
    version: i64,
    checksum: Vec<u8>,
    success: bool,
}

/// Read the schema version of the store at `url`, changing nothing.
pub async fn schema_status(url: &str) -> Result<SchemaStatus, StoreError> {
    let (backend, migrator) = if url.starts_with("postgres") {
        (Backend::Postgres, &postgres::MIGRATE)
    } else {
        (Backend::Sqlite, &sqlite::MIGRATE)
    };
    let applied = match backend {
        Backend::Sqlite => match sqlite_file(url) {
            Some(path) if !Path::new(path).exists() => None,
            Some(path) => Some(read_sqlite(Path::new(path))?),
            None => None,
        },
        Backend::Postgres => Some(read_postgres(url).await?),
    };
    let known: Vec<_> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    let mut status = SchemaStatus {
        backend,
        url: redact(url),
        at: applied
            .as_ref()
            .map(|rows| rows.iter().map(|r| r.version).max().unwrap_or(0)),
        needs: known.iter().map(|m| m.version).max().unwrap_or(0),
        pending: Vec::new(),
        unknown: Vec::new(),
        modified: Vec::new(),
        failed: Vec::new(),
    };
    let rows = applied.unwrap_or_default();
    for m in &known {
        match rows.iter().find(|r| r.version == m.version) {
            None => status.pending.push(Migration {
                version: m.version,
                description: m.description.to_string(),
            }),
            Some(row) if *row.checksum != *m.checksum => status.modified.push(m.version),
            Some(_) => {}
        }
    }
    for row in &rows {
        if !known.iter().any(|m| m.version == row.version) {
            status.unknown.push(row.version);
        }
        if !row.success {
            status.failed.push(row.version);
        }
    }
    Ok(status)
}

fn read_sqlite(path: &Path) -> Result<Vec<Applied>, StoreError> {
    use rusqlite::OpenFlags;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // A URI, so that `immutable` can be said; the path's own `?`, `#` and `%` escaped.
    let mut uri = String::from("file:");
    for c in path.display().to_string().chars() {
        match c {
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '%' => uri.push_str("%25"),
            c => uri.push(c),
        }
    }
    if !Path::new(&wal).exists() {
        uri.push_str("?immutable=1");
    }
    let conn = rusqlite::Connection::open_with_flags(&uri, flags)?;
    let table: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |row| row.get(0),
        )
        .ok();
    if table.is_none() {
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
        if tables > 0 {
            return Err(StoreError::NotAStore);
        }
        return Ok(Vec::new());
    }
    let mut statement =
        conn.prepare("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")?;
    let rows = statement
        .query_map([], |row| {
            Ok(Applied {
                version: row.get(0)?,
                checksum: row.get(1)?,
                success: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

async fn read_postgres(url: &str) -> Result<Vec<Applied>, StoreError> {
    use sqlx::{Connection, Row};
    let open = |reason| StoreError::Open {
        url: redact(url),
        reason,
    };
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(open)?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let mut rows = Vec::new();
    if exists {
        for row in
            sqlx::query("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut *tx)
                .await?
        {
            rows.push(Applied {
                version: row.try_get(0)?,
                checksum: row.try_get(1)?,
                success: row.try_get(2)?,
            });
        }
    } else {
        let tables: i64 =
            sqlx::query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if tables > 0 {
            return Err(StoreError::NotAStore);
        }
    }
    tx.rollback().await?;
    conn.close().await.ok();
    Ok(rows)
}
