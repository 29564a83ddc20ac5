//! The engine's batch writes to a SQLite file, on a thread of their own.
//!
//! sqlx runs each SQLite connection on a worker thread and makes one round trip to it per
//! statement; a batch that opens an incident and pages it is ~9 statements (begin, six
//! tables, the outbox, commit), and those round trips were ~0.6 ms of the ~0.8 ms a page
//! waited for its write (signal-to-page benchmark; the fsync itself is ~0.15 ms here). This
//! thread takes a whole batch in one message and runs it in one transaction with rusqlite,
//! on the same file and the same libsqlite3 as sqlx. Everything else (reads, the delivery
//! worker's writes, PostgreSQL) stays on sqlx.
//!
//! A connection that failed a write is closed, not reused: after an I/O error SQLite may
//! leave it inside its transaction (see the `store` module docs). The next write opens a
//! fresh one.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::oneshot;

use super::state::{Statement, Val};
use super::{Result, StoreError};

/// Prepared statements kept per connection: a table's multi-row inserts come in seven sizes.
const STATEMENT_CACHE: usize = 128;

enum Job {
    Write {
        statements: Vec<Statement>,
        done: oneshot::Sender<rusqlite::Result<()>>,
    },
    /// Close the connection (a later write opens a new one).
    Close(oneshot::Sender<()>),
}

/// Hands batches to the writer thread; the thread ends when the last handle is dropped.
#[derive(Debug)]
pub(super) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl SqliteWriter {
    /// A writer for the database file at `path` (created and migrated by sqlx already).
    pub fn start(path: PathBuf) -> std::io::Result<SqliteWriter> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tocsin-sqlite-writer".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                for job in inbox {
                    match job {
                        Job::Write { statements, done } => {
                            let result = write(&mut conn, &path, &statements);
                            if result.is_err() {
                                conn = None;
                            }
                            let _ = done.send(result);
                        }
                        Job::Close(done) => {
                            conn = None;
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(SqliteWriter { jobs })
    }

    /// Run `statements` in one transaction: all of them land, or none.
    pub async fn write(&self, statements: Vec<Statement>) -> Result<()> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Write { statements, done })
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(result.await.map_err(|_| StoreError::WriterStopped)??)
    }

    /// Close the writer's connection, so that when the pool closes too SQLite copies the
    /// WAL into the database file and removes it.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

fn open(path: &PathBuf) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As sqlx's connections (`Store::open`): durable commits, checkpoints beside the writer.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA foreign_keys = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn write(
    conn: &mut Option<Connection>,
    path: &PathBuf,
    statements: &[Statement],
) -> rusqlite::Result<()> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(open(path)?),
    };
    // IMMEDIATE: take the write lock now, so a busy database is waited for here and not
    // half-way through the batch.
    let tx = rusqlite::Transaction::new(conn, rusqlite::TransactionBehavior::Immediate)?;
    for statement in statements {
        let mut prepared = tx.prepare_cached(&statement.sql)?;
        for (i, value) in statement.values.iter().enumerate() {
            prepared.raw_bind_parameter(i + 1, value)?;
        }
        prepared.raw_execute()?;
    }
    tx.commit()
}

impl ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::I64(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Val::I32(v) => ToSqlOutput::Owned(Value::Integer(i64::from(*v))),
            Val::Str(v) => ToSqlOutput::from(v.as_str()),
            Val::OptStr(Some(v)) => ToSqlOutput::from(v.as_str()),
            Val::OptStr(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}
