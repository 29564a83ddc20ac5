//! The engine's batch writes to a SQLite file: rusqlite on a thread of their own, beside
//! sqlx (which serves reads, claims, cursors and PostgreSQL).
//!
//! - **One call per batch, not per statement.** sqlx runs a SQLite connection on a worker
//!   thread and makes a round trip to it per statement; a batch that opens an incident and
//!   pages it is ~9. This thread takes the whole batch in one message and runs it in one
//!   transaction, on the same file and libsqlite3, its statements prepared once and kept.
//! - **Commit, then fsync beside.** SQLite commits with `synchronous = NORMAL`: the
//!   transaction is in the WAL through the OS's page cache when COMMIT returns, so it
//!   survives the process being killed and readers see it. The engine hands the batch's
//!   pages to delivery then; a second thread fsyncs the WAL (one fsync for every commit
//!   queued) and only then are the inputs that made the batch answered. A power cut in
//!   between can lose a batch whose pages went out, never one whose inputs were answered:
//!   the source sends it again and the page goes again (a duplicate, not a loss).
//! - **Small writes on the caller's thread.** A write of at most `WRITE_HERE_MAX_VALUES`
//!   bound values is committed on the caller's thread, on the same connection, when the
//!   thread is not using it: no hand-over and wake-up on a page's way out.
//! - **Ahead of the commit** (`submit_ahead`): a small batch that pages is appended to the
//!   redo log (`redo_log`), its pages go at once, and this thread commits it meanwhile. A
//!   batch SQLite refuses stays in the log and in `WriterThread::unapplied`, and is committed
//!   before any later write.
//! - **Room in the WAL** (`wal_room`): before the first batch the WAL is grown with zeros
//!   to its checkpoint bound, so the first burst after a start writes over blocks it has.
//! - Delivery outcomes are written on this connection too (`Store::write_statements`), so
//!   SQLite keeps its page cache between the engine's commits.
//!
//! Their measured effect is in BENCHMARKS.md ("The store's mechanisms"). A connection that
//! failed a write is closed, not reused: after an I/O error SQLite may leave it inside its
//! transaction (see the `store` module docs). The next write opens a fresh one.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{oneshot, OwnedMutexGuard};

use super::redo_log::RedoLog;
use super::wal_room;
use crate::store::statements::{Statement, Val};
use crate::store::{Result, StoreError};

/// Prepared statements kept per connection: a table's multi-row inserts come in seven sizes.
const STATEMENT_CACHE: usize = 128;

/// Batches with at most this many bound values are written on the caller's thread (see the
/// module docs). A new alert that opens and pages an incident binds ~30.
const WRITE_HERE_MAX_VALUES: usize = 256;

/// WAL frames (4 KiB pages) past which a commit on the writer's connection checkpoints the
/// WAL itself: 64 MiB (see `open`).
const WAL_CHECKPOINT_FRAMES: u32 = 16384;

/// The writer's connection (opened on first use), shared by the thread and the callers that
/// write small batches themselves.
type SharedConnection = Arc<Mutex<Option<Connection>>>;

/// Makes a write's statements, on the thread (serializing a large batch's rows is work
/// the engine's task is better without).
pub(in crate::store) type Plan = Box<dyn FnOnce() -> Result<Vec<Statement>> + Send>;

enum Job {
    Write {
        plan: Plan,
        /// How many statements ran (see `Statement::needs_row`).
        committed: oneshot::Sender<Result<usize>>,
        /// Fsync after the commit and say so here; `None`: the commit is enough.
        durable: Option<SyncWaiter>,
    },
    /// A batch already in the redo log (record `number`, its statements ending with the
    /// update of `redo_applied`): commit it, then fsync and say so on `durable`. `turn` is
    /// the store's write turn, held until then.
    Ahead {
        number: u64,
        statements: Vec<Statement>,
        durable: SyncWaiter,
        turn: Option<OwnedMutexGuard<()>>,
    },
    /// Close the connection (a later write opens a new one).
    Close(oneshot::Sender<()>),
}

/// Told once its write is on disk, or why it is not.
type SyncWaiter = oneshot::Sender<Result<()>>;

/// Hands batches to the writer thread, and commits to fsync to the sync thread; both end
/// when the last handle is dropped.
#[derive(Debug)]
pub(in crate::store) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
    syncs: mpsc::Sender<SyncWaiter>,
    conn: SharedConnection,
    path: PathBuf,
    /// The redo log, once opened (see [`SqliteWriter::open_redo_log`]); `None` before, or
    /// when another process holds it.
    redo: Arc<Mutex<Option<RedoLog>>>,
    /// Set while a batch of the redo log failed to commit: every write goes to the thread,
    /// which commits such batches again before anything else.
    behind: Arc<AtomicBool>,
}

impl SqliteWriter {
    /// A writer for the database file at `path` (created and migrated by sqlx already).
    pub fn start(path: PathBuf) -> std::io::Result<SqliteWriter> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (syncs, to_sync) = mpsc::channel::<SyncWaiter>();
        let wal = wal_path(&path);
        let conn = SharedConnection::default();
        let redo = Arc::new(Mutex::new(None));
        let behind = Arc::new(AtomicBool::new(false));
        let thread = WriterThread {
            conn: Arc::clone(&conn),
            database: path.clone(),
            syncs: syncs.clone(),
            redo: Arc::clone(&redo),
            behind: Arc::clone(&behind),
            unapplied: VecDeque::new(),
        };
        let database_to_sync = path.clone();
        std::thread::Builder::new()
            .name("tocsin-sqlite-sync".into())
            .spawn(move || sync_loop(&to_sync, &wal, &database_to_sync))?;
        std::thread::Builder::new()
            .name("tocsin-sqlite-writer".into())
            .spawn(move || thread.run(inbox))?;
        Ok(SqliteWriter {
            jobs,
            syncs,
            conn,
            path,
            redo,
            behind,
        })
    }

    /// Make room in the WAL for the commits up to its checkpoint before the engine's first
    /// batch (see `wal_room`). A failure costs speed only: it is logged, and commits append
    /// to the file as before.
    pub fn make_wal_room(&self) {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let wal = wal_path(&self.path);
        let made = (|| {
            let conn = match conn.as_mut() {
                Some(conn) => conn,
                None => conn.insert(open(&self.path).map_err(std::io::Error::other)?),
            };
            let page_size: u32 = conn
                .query_row("PRAGMA page_size", [], |row| row.get(0))
                .map_err(std::io::Error::other)?;
            let bytes = wal_room::wal_bytes(WAL_CHECKPOINT_FRAMES, page_size);
            wal_room::make_room(conn, &wal, bytes)
        })();
        match made {
            Ok(Some((before, after))) => {
                tracing::debug!(wal = %wal.display(), before, after, "made room in the SQLite WAL");
            }
            Ok(None) => {}
            Err(e) => {
                // It may have stopped inside its transaction: the next write opens another.
                *conn = None;
                tracing::warn!(
                    wal = %wal.display(),
                    error = %e,
                    "cannot make room in the SQLite WAL; commits append to it"
                );
            }
        }
    }

    /// Open the redo log beside the database and commit what it holds that SQLite does not
    /// (the batches of a process that stopped between the two); from then on
    /// [`SqliteWriter::submit_ahead`] writes to it. Without it (another process holds it)
    /// batches are committed before their pages go, as before.
    pub fn open_redo_log(&self) -> Result<()> {
        let path = super::redo_log::path_for(&self.path);
        let mut log = match RedoLog::open(&path) {
            Ok(Some(log)) => log,
            Ok(None) => {
                tracing::warn!(
                    log = %path.display(),
                    "another process holds this store's redo log; pages wait for their commit"
                );
                return Ok(());
            }
            // A folder that cannot take the file (read-only): SQLite alone, as before. A log
            // left there by an earlier run is read once it can be opened.
            Err(e) => {
                tracing::warn!(
                    log = %path.display(),
                    error = %e,
                    "cannot open the redo log; pages wait for their commit"
                );
                return Ok(());
            }
        };
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let (applied, epoch) = match conn.as_ref() {
            Some(conn) => read_applied(conn),
            None => read_applied(conn.insert(open(&self.path)?)),
        }?;
        let epoch = match epoch {
            0 => {
                // This store's first start with a redo log: it gets its number.
                let epoch = rand::random_range(1..i64::MAX);
                let set = Statement::new(
                    "UPDATE redo_applied SET epoch = $1 WHERE id = 1",
                    vec![Val::I64(epoch)],
                );
                if let Err(e) = write_with(&mut conn, &self.path, &[set]) {
                    tracing::warn!(
                        error = %e,
                        "cannot write the store's redo log number; pages wait for their commit"
                    );
                    return Ok(());
                }
                epoch
            }
            epoch => epoch,
        };
        let epoch = epoch.unsigned_abs();
        let records = log.unapplied(epoch, applied).map_err(StoreError::RedoLog)?;
        let mut last = applied;
        for (number, statements) in records {
            write_with(&mut conn, &self.path, &statements).map_err(|source| {
                StoreError::Replay {
                    log: path.display().to_string(),
                    number,
                    source,
                }
            })?;
            tracing::info!(record = number, "committed a batch from the redo log");
            last = number;
        }
        log.start_empty(epoch, last + 1)
            .map_err(StoreError::RedoLog)?;
        *self.redo.lock().unwrap_or_else(PoisonError::into_inner) = Some(log);
        Ok(())
    }

    /// As [`SqliteWriter::submit`] for a batch whose pages go out once this returns: its
    /// statements are appended to the redo log here, in one write, and committed to SQLite
    /// by the thread (see `redo_log`). Returns a batch already committed as far as the
    /// caller is concerned: the redo log holds it. `turn` is held until SQLite has it.
    pub fn submit_ahead(
        &self,
        mut statements: Vec<Statement>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Result<Submitted> {
        let mut redo = self.redo.lock().unwrap_or_else(PoisonError::into_inner);
        // While SQLite refuses the log's batches, a batch waits for its commit as any
        // other: refused, it is kept and paged from memory by the engine loop, and the
        // store's health says so, instead of each page going out as if stored.
        let Some(log) = redo
            .as_mut()
            .filter(|_| !self.behind.load(Ordering::Acquire))
        else {
            drop(redo);
            return self.submit(statements, turn);
        };
        let number = log.next_number();
        statements.push(Statement::new(
            "UPDATE redo_applied SET seq = $1 WHERE id = 1",
            vec![Val::I64(i64::try_from(number).unwrap_or(i64::MAX))],
        ));
        log.append(&statements).map_err(StoreError::RedoLog)?;
        let (durable, is_durable) = oneshot::channel();
        let job = Job::Ahead {
            number,
            statements,
            durable,
            turn,
        };
        if self.jobs.send(job).is_err() {
            // Refused, and the engine keeps the batch to write it again: the record must
            // not stay ahead of that second one.
            log.forget_last();
            return Err(StoreError::WriterStopped);
        }
        Ok(Submitted::ready(Ok(Durable(Some(is_durable)))))
    }

    /// Run `statements` in one transaction: all of them land, or none. `turn` (the store's
    /// write turn) is held until they are committed. A small batch is committed here, on
    /// the caller's thread, when the writer thread is not writing (see the module docs);
    /// otherwise this returns once the thread has the batch.
    pub fn submit(
        &self,
        statements: Vec<Statement>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Result<Submitted> {
        if let Some(written) = self.write_here(&statements) {
            drop(turn);
            written?;
            let (durable, is_durable) = oneshot::channel();
            self.syncs
                .send(durable)
                .map_err(|_| StoreError::WriterStopped)?;
            return Ok(Submitted::ready(Ok(Durable(Some(is_durable)))));
        }
        self.submit_plan(Box::new(move || Ok(statements)), turn)
    }

    /// As [`SqliteWriter::submit`] for a large batch: `plan` makes its statements on the
    /// thread. Returns once the thread has it.
    pub fn submit_plan(&self, plan: Plan, turn: Option<OwnedMutexGuard<()>>) -> Result<Submitted> {
        let (durable, is_durable) = oneshot::channel();
        let committed = self.hand_over(plan, Some(durable))?;
        Ok(Submitted(Inner::Writing {
            committed,
            durable: is_durable,
            _turn: turn,
        }))
    }

    /// Queue a write for the thread; it answers on the returned channel once committed, and
    /// on `durable`, when given, once fsynced.
    fn hand_over(
        &self,
        plan: Plan,
        durable: Option<SyncWaiter>,
    ) -> Result<oneshot::Receiver<Result<usize>>> {
        let (committed, is_committed) = oneshot::channel();
        self.jobs
            .send(Job::Write {
                plan,
                committed,
                durable,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(is_committed)
    }

    /// Run `statements` in one transaction, up to the first that needs a row and changed
    /// none; returns once committed (not fsynced), with how many ran. `turn` is held until
    /// then. Small writes are committed here, like small batches: on the thread they would
    /// wait behind its fsync of the last batch, with the write turn held, and so would the
    /// engine's next batch (a 50 ms fsync put 50 ms on pages, signal-to-page benchmark).
    pub async fn write(
        &self,
        statements: Vec<Statement>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Result<usize> {
        if let Some(written) = self.write_here(&statements) {
            drop(turn);
            return Ok(written?);
        }
        let committed = self.hand_over(Box::new(move || Ok(statements)), None)?;
        let ran = committed.await.map_err(|_| StoreError::WriterStopped)??;
        drop(turn);
        Ok(ran)
    }

    /// Commit a small write on the caller's thread, if the thread is not using the
    /// connection (it is only while it writes a batch of its own); `None`: hand it over.
    fn write_here(&self, statements: &[Statement]) -> Option<rusqlite::Result<usize>> {
        let values: usize = statements.iter().map(|s| s.values.len()).sum();
        // Batches of the redo log not yet committed go first, on the thread.
        if values > WRITE_HERE_MAX_VALUES || self.behind.load(Ordering::Acquire) {
            return None;
        }
        let mut conn = self.conn.try_lock().ok()?;
        Some(write_with(&mut conn, &self.path, statements))
    }

    /// Close the writer's connection, so that when the pool closes too SQLite copies the
    /// WAL into the database file and removes it.
    /// The redo log is let go of too (its lock with it): writes after this wait for their
    /// commit, and a store opened next on this file replays what is left in it.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = closed.await;
        }
        self.redo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// A batch handed to the store, not yet known to be committed.
#[derive(Debug)]
pub struct Submitted(Inner);

#[derive(Debug)]
enum Inner {
    /// Written (or refused) before `Store::submit` returned.
    Ready(Result<Durable>),
    /// Being committed on a thread of its own (PostgreSQL, where a commit is durable).
    Committing(oneshot::Receiver<Result<()>>),
    Writing {
        committed: oneshot::Receiver<Result<usize>>,
        durable: oneshot::Receiver<Result<()>>,
        _turn: Option<OwnedMutexGuard<()>>,
    },
}

impl Submitted {
    /// A batch already written, or refused.
    pub fn ready(result: Result<Durable>) -> Submitted {
        Submitted(Inner::Ready(result))
    }

    /// A batch being committed elsewhere, which says through `committed` how it went.
    pub fn committing(committed: oneshot::Receiver<Result<()>>) -> Submitted {
        Submitted(Inner::Committing(committed))
    }

    /// Wait until the batch is committed (readers see it, it survives this process); what
    /// it returns resolves once it is on disk too. The write turn is handed on here.
    pub async fn committed(self) -> Result<Durable> {
        match self.0 {
            Inner::Ready(result) => result,
            Inner::Committing(committed) => {
                committed.await.map_err(|_| StoreError::CommitStopped)??;
                Ok(Durable::done())
            }
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
pub struct Durable(Option<oneshot::Receiver<Result<()>>>);

impl Durable {
    pub fn done() -> Durable {
        Durable(None)
    }

    /// Wait until the write is on disk.
    pub async fn wait(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(synced) => synced.await.map_err(|_| StoreError::WriterStopped)?,
        }
    }
}

/// The writer thread's side: its jobs, one at a time, in the order they came.
struct WriterThread {
    conn: SharedConnection,
    database: PathBuf,
    /// Commits to fsync, for the sync thread.
    syncs: mpsc::Sender<SyncWaiter>,
    redo: Arc<Mutex<Option<RedoLog>>>,
    behind: Arc<AtomicBool>,
    /// Batches of the redo log that failed to commit, oldest first: committed before
    /// anything else, so SQLite gets every batch in the order the engine made them.
    unapplied: VecDeque<(u64, Vec<Statement>)>,
}

impl WriterThread {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Write {
                    plan,
                    committed,
                    durable,
                } => {
                    let result = self.catch_up().and_then(|()| {
                        let statements = plan()?;
                        Ok(write_locked(&self.conn, &self.database, &statements)?)
                    });
                    let ok = result.is_ok();
                    let _ = committed.send(result);
                    if let Some(durable) = durable.filter(|_| ok) {
                        // Fsynced on the sync thread while this one writes the next batch
                        // (see `sync_loop`).
                        let _ = self.syncs.send(durable);
                    }
                }
                Job::Ahead {
                    number,
                    statements,
                    durable,
                    turn,
                } => {
                    self.unapplied.push_back((number, statements));
                    match self.catch_up() {
                        Ok(()) => {
                            let _ = self.syncs.send(durable);
                        }
                        Err(e) => {
                            // Debug: the caller has the error and reports the store's outage
                            // once, however many writes it refuses (each batch that pages
                            // logged an error here before).
                            tracing::debug!(
                                record = number,
                                error = %e,
                                "cannot commit a batch of the redo log; it is committed before \
                                 the next write, or from the log on the next start"
                            );
                            let _ = durable.send(Err(e));
                        }
                    }
                    drop(turn);
                }
                Job::Close(done) => {
                    *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    let _ = done.send(());
                }
            }
        }
    }

    /// Commit the batches of the redo log still waiting, oldest first, each in its own
    /// transaction; stops at the first that fails.
    fn catch_up(&mut self) -> Result<()> {
        while let Some((number, statements)) = self.unapplied.front() {
            let number = *number;
            if let Err(e) = write_locked(&self.conn, &self.database, statements) {
                self.behind.store(true, Ordering::Release);
                return Err(e.into());
            }
            self.unapplied.pop_front();
            if let Some(log) = self
                .redo
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                log.committed_up_to(number);
            }
        }
        self.behind.store(false, Ordering::Release);
        Ok(())
    }
}

/// The last record of the redo log SQLite committed, and the store's epoch (0: none yet).
fn read_applied(conn: &Connection) -> rusqlite::Result<(u64, i64)> {
    conn.query_row(
        "SELECT seq, epoch FROM redo_applied WHERE id = 1",
        [],
        |row| {
            let seq: i64 = row.get(0)?;
            Ok((u64::try_from(seq).unwrap_or(0), row.get(1)?))
        },
    )
}

/// The WAL file of the database at `database`.
fn wal_path(database: &Path) -> PathBuf {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Fsync the WAL for every commit that asks, several at a time: each fsync answers all the
/// commits that were made before it began. On the writer thread, each batch's fsync kept the
/// next batch waiting; here the next batch is written meanwhile. Answers go out in the order the commits were
/// made, so callers learn of them in order too.
fn sync_loop(to_sync: &mpsc::Receiver<SyncWaiter>, wal: &PathBuf, database: &PathBuf) {
    while let Ok(first) = to_sync.recv() {
        let mut waiting = vec![first];
        waiting.extend(to_sync.try_iter());
        let synced = sync_file(wal, database);
        for waiter in waiting {
            let _ = waiter.send(match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Sync(std::io::Error::new(
                    e.kind(),
                    e.to_string(),
                ))),
            });
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
    // As sqlx's connections (`sqlite::connect`), checkpoints beside the writer, and NORMAL:
    // the fsync of each commit is this thread's, after the commit (see the module docs).
    // wal_autocheckpoint: the checkpoint beside the writer (every second,
    // `sqlite::checkpoint_wal`) copies the WAL into the database while commits go on, and
    // SQLite starts the WAL again from its beginning only once a checkpoint has copied all
    // of it. Under writes that never pause, it never had: the WAL grew past 1,000 MiB over
    // 200,000 new alerts (ingest benchmark), each new frame a block the file system zeroed
    // first (9 % of all samples). Past WAL_CHECKPOINT_FRAMES a commit here checkpoints what
    // the other left (passive: it never waits for readers), and the next one starts the WAL
    // again.
    // temp_store MEMORY: each multi-row upsert keeps a statement journal (to undo itself
    // alone), and SQLite spilled those of a large batch to temporary files (7 % of the
    // writer's samples; first pass of 50,000 alerts 56,540 / 59,305 → 62,754 / 62,003
    // alerts/s with it).
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_FRAMES}; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// [`write_with`] on the shared connection, waiting for a caller writing on it.
fn write_locked(
    conn: &SharedConnection,
    path: &PathBuf,
    statements: &[Statement],
) -> rusqlite::Result<usize> {
    let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
    write_with(&mut conn, path, statements)
}

/// Run `statements` in one transaction on `conn` (opened when `None`); a connection that
/// failed is dropped (see the module docs).
fn write_with(
    conn: &mut Option<Connection>,
    path: &PathBuf,
    statements: &[Statement],
) -> rusqlite::Result<usize> {
    let written = write(conn, path, statements);
    if written.is_err() {
        *conn = None;
    }
    written
}

/// As `statements::run_statements`, on this connection.
fn write(
    conn: &mut Option<Connection>,
    path: &PathBuf,
    statements: &[Statement],
) -> rusqlite::Result<usize> {
    let conn = match conn {
        Some(conn) => conn,
        None => conn.insert(open(path)?),
    };
    // IMMEDIATE: take the write lock now, so a busy database is waited for here and not
    // half-way through the batch. BEGIN and COMMIT are prepared once and kept, as the
    // batch's statements are: rusqlite's `Transaction` parses both again on every write,
    // ~5 µs of a page's begin and ~10 µs of its commit (signal-to-page benchmark). A write
    // that fails leaves its transaction to the connection's close (see `write_with`).
    conn.prepare_cached("BEGIN IMMEDIATE")?.raw_execute()?;
    let mut done = 0;
    for statement in statements {
        let mut prepared = conn.prepare_cached(&statement.sql)?;
        for (i, value) in statement.values.iter().enumerate() {
            prepared.raw_bind_parameter(i + 1, value)?;
        }
        if prepared.raw_execute()? == 0 && statement.needs_row {
            break;
        }
        done += 1;
    }
    conn.prepare_cached("COMMIT")?.raw_execute()?;
    Ok(done)
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
mod tests;
