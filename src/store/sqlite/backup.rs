//! Backup and restore of a SQLite store.
//!
//! A backup is `VACUUM INTO` a new file, run by the engine that holds the store on a
//! connection of its pool: one read transaction, so the copy holds every transaction
//! committed when it began and nothing of one in flight, while the engine goes on writing.
//! The copy is one self-contained database file (no WAL, no redo log).
//!
//! A restore copies such a file into the store with SQLite's backup API while no engine
//! runs (it takes the store's lock, as an engine does), then removes the store's redo log:
//! its records belong to the database that was there, never to the one restored.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use sqlx::AnyPool;

use super::lock::{EngineLock, Owner};
use super::redo_log;
use crate::store::{schema_status, Result, StoreError};

/// Copy the store into `dest`, a file that must not exist yet.
pub(in crate::store) async fn vacuum_into(pool: &AnyPool, dest: &Path) -> Result<()> {
    sqlx::query("VACUUM INTO $1")
        .bind(dest.display().to_string())
        .execute(pool)
        .await?;
    Ok(())
}

/// What a restore found in its file and put in place.
#[derive(Debug)]
pub struct Restored {
    pub database: PathBuf,
    pub incidents: i64,
    pub schema_version: i64,
}

/// Why a file cannot be restored, in the words of the command.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path}: {reason}")]
    NotABackup { path: String, reason: String },
    #[error(
        "{path} holds a store already ({}); restore into it with --replace, or point the \
         config's store at a new file",
        incidents_text(*incidents)
    )]
    StoreExists { path: String, incidents: i64 },
    #[error("a PostgreSQL store is restored with pg_restore (docs/operations.md, \"Backup and restore\")")]
    Postgres,
    #[error("the config's store is in memory: there is no file to restore into")]
    InMemory,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for RestoreError {
    fn from(e: rusqlite::Error) -> Self {
        RestoreError::Store(StoreError::Sqlite(e))
    }
}

/// Put the backup `from` in place of the store at `url` (a SQLite file no engine holds). A
/// store that already holds incidents is replaced only when `replace` is set.
pub async fn restore(url: &str, from: &Path, replace: bool) -> Result<Restored, RestoreError> {
    if url.starts_with("postgres") {
        return Err(RestoreError::Postgres);
    }
    let Some(database) = super::file_of(url) else {
        return Err(RestoreError::InMemory);
    };
    let (schema_version, incidents) = check_backup(from).await?;
    if let Some(folder) = Path::new(database).parent() {
        std::fs::create_dir_all(folder).map_err(|reason| StoreError::Folder {
            path: folder.display().to_string(),
            reason,
        })?;
    }
    let lock = EngineLock::take(Path::new(database), &Owner::this_process(None)).await?;
    let result = restore_locked(&lock.database, from, replace);
    lock.release();
    result?;
    Ok(Restored {
        database: lock.database.clone(),
        incidents,
        schema_version,
    })
}

fn restore_locked(database: &Path, from: &Path, replace: bool) -> Result<(), RestoreError> {
    let mut target = Connection::open(database)?;
    let held = incidents_in(&target).unwrap_or(0);
    if held > 0 && !replace {
        return Err(RestoreError::StoreExists {
            path: database.display().to_string(),
            incidents: held,
        });
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
        backup.run_to_completion(1024, std::time::Duration::ZERO, None)?;
    }
    target.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(target);
    match std::fs::remove_file(redo_log::path_for(database)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::RedoLog(e).into()),
    }
    Ok(())
}

/// The schema version and incident count of a backup file, or why it is not one this
/// binary can start on.
async fn check_backup(from: &Path) -> Result<(i64, i64), RestoreError> {
    let path = from.display().to_string();
    let not_a_backup = |reason: String| RestoreError::NotABackup {
        path: path.clone(),
        reason,
    };
    if !from.is_file() {
        return Err(not_a_backup("no such file".into()));
    }
    let conn = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not_a_backup(format!("cannot open it: {e}")))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| not_a_backup(format!("not a SQLite database: {e}")))?;
    if check != "ok" {
        return Err(not_a_backup(format!("the database is damaged: {check}")));
    }
    let incidents =
        incidents_in(&conn).map_err(|_| not_a_backup("not a tocsin store".to_string()))?;
    drop(conn);
    let status = schema_status(&format!("sqlite://{path}"))
        .await
        .map_err(|e| not_a_backup(e.to_string()))?;
    if !status.unknown.is_empty() {
        return Err(not_a_backup(format!(
            "made by a newer tocsin (schema migrations {:?} are unknown to this binary)",
            status.unknown
        )));
    }
    if !status.modified.is_empty() || !status.failed.is_empty() {
        return Err(not_a_backup(
            "its schema migrations do not match this binary's".to_string(),
        ));
    }
    Ok((status.at.unwrap_or(0), incidents))
}

fn incidents_text(n: i64) -> String {
    match n {
        1 => "1 incident".into(),
        n => format!("{n} incidents"),
    }
}

fn incidents_in(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT count(*) FROM incidents", [], |row| row.get(0))
}
