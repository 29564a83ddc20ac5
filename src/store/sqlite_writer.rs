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
//! A commit is reported in two steps. SQLite commits with `synchronous = NORMAL`: the
//! transaction is in the WAL, through the OS's page cache, when COMMIT returns, so it
//! survives the process being killed, and every reader sees it. The thread reports that
//! (the engine hands the batch's pages to delivery then), and only then fsyncs the WAL file
//! and reports the batch durable (the engine answers the inputs that made it then). The
//! fsync was ~0.4 of a page's ~1 ms from signal to receiver; this way it runs while the page
//! is on its way instead of before it. A power cut in between can lose a batch whose pages
//! went out, never a batch whose inputs were answered: the alert source, not told its
//! alert was taken, sends it again and the page goes out again (a duplicate, not a loss).
//! WAL with `NORMAL` stays consistent after a crash (SQLite's checksums end the log at the
//! last whole commit); the fsync here gives back FULL's durability for what was answered.
//!
//! A connection that failed a write is closed, not reused: after an I/O error SQLite may
//! leave it inside its transaction (see the `store` module docs). The next write opens a
//! fresh one.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{oneshot, OwnedMutexGuard};

use super::state::{Statement, Val};
use super::{Result, StoreError};

/// Prepared statements kept per connection: a table's multi-row inserts come in seven sizes.
const STATEMENT_CACHE: usize = 128;

enum Job {
    Write {
        statements: Vec<Statement>,
        committed: oneshot::Sender<rusqlite::Result<()>>,
        durable: oneshot::Sender<std::io::Result<()>>,
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
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        std::thread::Builder::new()
            .name("tocsin-sqlite-writer".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                for job in inbox {
                    match job {
                        Job::Write {
                            statements,
                            committed,
                            durable,
                        } => {
                            let result = write(&mut conn, &path, &statements);
                            let ok = result.is_ok();
                            if !ok {
                                conn = None;
                            }
                            let _ = committed.send(result);
                            if ok {
                                let _ = durable.send(sync_file(&wal, &path));
                            }
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

    /// Run `statements` in one transaction: all of them land, or none. Returns once the
    /// thread has them; `turn` (the store's write turn) is held until they are committed.
    pub fn submit(
        &self,
        statements: Vec<Statement>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Result<Submitted> {
        let (committed, is_committed) = oneshot::channel();
        let (durable, is_durable) = oneshot::channel();
        self.jobs
            .send(Job::Write {
                statements,
                committed,
                durable,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(Submitted(Inner::Writing {
            committed: is_committed,
            durable: is_durable,
            _turn: turn,
        }))
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

/// A batch handed to the store, not yet known to be committed.
#[derive(Debug)]
pub struct Submitted(Inner);

#[derive(Debug)]
enum Inner {
    /// Written (or refused) before `Store::submit` returned.
    Ready(Result<Durable>),
    Writing {
        committed: oneshot::Receiver<rusqlite::Result<()>>,
        durable: oneshot::Receiver<std::io::Result<()>>,
        _turn: Option<OwnedMutexGuard<()>>,
    },
}

impl Submitted {
    /// A batch already written, or refused.
    pub fn ready(result: Result<Durable>) -> Submitted {
        Submitted(Inner::Ready(result))
    }

    /// Wait until the batch is committed (readers see it, it survives this process); what
    /// it returns resolves once it is on disk too. The write turn is handed on here.
    pub async fn committed(self) -> Result<Durable> {
        match self.0 {
            Inner::Ready(result) => result,
            Inner::Writing {
                committed,
                durable,
                _turn,
            } => {
                committed.await.map_err(|_| StoreError::WriterStopped)??;
                Ok(Durable(Some(durable)))
            }
        }
    }
}

/// A committed write on its way to disk (see the module docs); `Durable::done()` for a
/// write that was durable when it committed.
#[derive(Debug)]
pub struct Durable(Option<oneshot::Receiver<std::io::Result<()>>>);

impl Durable {
    pub fn done() -> Durable {
        Durable(None)
    }

    /// Wait until the write is on disk.
    pub async fn wait(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(synced) => synced
                .await
                .map_err(|_| StoreError::WriterStopped)?
                .map_err(StoreError::Sync),
        }
    }
}

/// fsync the WAL by name: Linux writes back every dirty page of a file, whichever
/// descriptor wrote it (here SQLite's). Without a WAL (a file system where SQLite could not
/// use one and kept its rollback journal) the commit went to the database file: that one.
fn sync_file(wal: &PathBuf, database: &PathBuf) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::File::open(database)?.sync_data()
        }
        Err(e) => Err(e),
    }
}

fn open(path: &PathBuf) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As sqlx's connections (`Store::open`), checkpoints beside the writer, but NORMAL: the
    // fsync of each commit is this thread's, after the commit (see the module docs).
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_synced_else_the_database_file_else_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        let wal = dir.path().join("tocsin.db-wal");
        // Neither file: the commit cannot be on disk, and the caller must hear so.
        let missing = sync_file(&wal, &database).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        // No WAL (rollback journal): the database file is synced.
        std::fs::write(&database, b"x").unwrap();
        sync_file(&wal, &database).expect("the database file");
        // The WAL, when there is one.
        std::fs::write(&wal, b"y").unwrap();
        std::fs::remove_file(&database).unwrap();
        sync_file(&wal, &database).expect("the WAL alone");
    }
}
