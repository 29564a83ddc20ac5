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
//! (the engine hands the batch's pages to delivery then), and only then a second thread
//! fsyncs the WAL file and reports the batch durable (the engine answers the inputs that
//! made it then), while the writer goes on with the next batch. The
//! fsync was ~0.4 of a page's ~1 ms from signal to receiver; this way it runs while the page
//! is on its way instead of before it. A power cut in between can lose a batch whose pages
//! went out, never a batch whose inputs were answered: the alert source, not told its
//! alert was taken, sends it again and the page goes out again (a duplicate, not a loss).
//! WAL with `NORMAL` stays consistent after a crash (SQLite's checksums end the log at the
//! last whole commit); the fsync here gives back FULL's durability for what was answered.
//!
//! A small write (an alert or two and its page, a delivery outcome: at most
//! `WRITE_HERE_MAX_VALUES` bound values) is committed on the caller's thread instead, on the
//! same connection, when the thread is not using it. Handing it over and being woken when it
//! was committed were two thread wake-ups on each page's way out (signal-to-page p50 0.65 →
//! 0.56–0.61 ms without them), and a small write queued on the thread waited behind its
//! fsync of the batch before. The caller blocks for the commit, which it would have waited
//! for anyway; large batches still go to the thread, so the engine handles the next inputs
//! while they are written. The fsync is always the sync thread's.
//!
//! A small batch that pages goes another way (`submit_ahead`): its statements are appended
//! to the redo log (`redo_log`) on the caller's thread, its pages go out at once, and this
//! thread commits it meanwhile, on the other core; the fsync and the answers follow as for
//! any batch. A batch SQLite refuses stays in the log and in `WriterThread::unapplied`, and
//! is committed before any later write.
//!
//! Delivery outcomes are written on this connection too (`Store::write_statements`), so that
//! SQLite keeps its page cache between the engine's commits: a write on another connection
//! makes it drop the cache, and the next commit read its pages back from the file.
//!
//! A connection that failed a write is closed, not reused: after an I/O error SQLite may
//! leave it inside its transaction (see the `store` module docs). The next write opens a
//! fresh one.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags, ToSql};
use tokio::sync::{oneshot, OwnedMutexGuard};

use super::redo_log::RedoLog;
use super::statements::{Statement, Val};
use super::wal_room;
use super::{Result, StoreError};

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
pub(super) type Plan = Box<dyn FnOnce() -> Result<Vec<Statement>> + Send>;

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
pub(super) struct SqliteWriter {
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
/// commits that were made before it began. On the writer thread, each batch's fsync (~8 % of
/// its time in the ingest benchmark's first pass, 75 of 880 ms) kept the next batch waiting;
/// here the next batch is written meanwhile. Answers go out in the order the commits were
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
    // As sqlx's connections (`store::connect`), checkpoints beside the writer, and NORMAL:
    // the fsync of each commit is this thread's, after the commit (see the module docs).
    // wal_autocheckpoint: the checkpoint beside the writer (every second,
    // `store::checkpoint_wal`) copies the WAL into the database while commits go on, and
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

    /// Commits waiting for the sync thread are answered in the order they came, by one fsync
    /// when they queued up together; when it fails, each of them hears so.
    #[test]
    fn waiting_commits_are_answered_in_order_with_the_fsync_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        let wal = dir.path().join("tocsin.db-wal");
        let run = |files_exist: bool| {
            if files_exist {
                std::fs::write(&database, b"x").unwrap();
            }
            let (syncs, to_sync) = mpsc::channel::<SyncWaiter>();
            let answers: Vec<_> = (0..3)
                .map(|_| {
                    let (waiter, answer) = oneshot::channel();
                    syncs.send(waiter).unwrap();
                    answer
                })
                .collect();
            drop(syncs);
            sync_loop(&to_sync, &wal, &database);
            answers
                .into_iter()
                .map(|mut answer| {
                    answer.try_recv().expect("answered").map_err(|e| match e {
                        StoreError::Sync(e) => e.kind(),
                        other => panic!("not an fsync error: {other}"),
                    })
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(false),
            vec![Err(std::io::ErrorKind::NotFound); 3],
            "nothing to fsync: not on disk"
        );
        assert_eq!(run(true), vec![Ok(()); 3]);
    }

    /// A fresh database file in WAL mode with one table `t (id, data)`; keep the directory.
    fn table_t() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        Connection::open(&database)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL);",
            )
            .unwrap();
        (dir, database)
    }

    /// A batch whose statement fails leaves none of its rows, the next batch on the same
    /// writer connection lands whole, and a statement that needs a row and changed none
    /// ends the batch with what ran before it committed.
    #[test]
    fn a_failed_batch_leaves_nothing_and_the_next_one_lands() {
        let (_dir, database) = table_t();
        let insert = |id: i64| {
            Statement::new(
                "INSERT INTO t (id, data) VALUES ($1, $2)",
                vec![Val::I64(id), Val::Str(format!("row {id}"))],
            )
        };
        let ids = |conn: &Connection| -> Vec<i64> {
            let mut select = conn.prepare("SELECT id FROM t ORDER BY id").unwrap();
            let rows = select.query_map([], |row| row.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        let mut conn = None;
        assert_eq!(write_with(&mut conn, &database, &[insert(1)]).unwrap(), 1);
        // The second insert repeats the key: the batch is refused and its first row with it.
        let refused = write_with(&mut conn, &database, &[insert(2), insert(1)]);
        assert!(refused.is_err(), "a duplicate key must fail the batch");
        assert!(conn.is_none(), "the connection that failed is closed");
        let reader = Connection::open(&database).unwrap();
        assert_eq!(
            ids(&reader),
            vec![1],
            "nothing of the refused batch is left"
        );
        assert_eq!(
            write_with(&mut conn, &database, &[insert(2), insert(3)]).unwrap(),
            2
        );
        let update_missing =
            Statement::needing_row("UPDATE t SET data = 'x' WHERE id = $1", vec![Val::I64(99)]);
        assert_eq!(
            write_with(
                &mut conn,
                &database,
                &[insert(4), update_missing, insert(5)]
            )
            .unwrap(),
            1,
            "the batch stops at the update that found no row, keeping what ran before it"
        );
        assert_eq!(ids(&reader), vec![1, 2, 3, 4]);
    }

    /// Under commits that never pause (no checkpoint beside them here at all), the writer's
    /// connection checkpoints the WAL itself and starts it again from the beginning: the
    /// file stays near its bound instead of growing with every commit.
    #[test]
    fn the_wal_stays_bounded_under_commits_that_never_pause() {
        let (dir, database) = table_t();
        let bound = u64::from(WAL_CHECKPOINT_FRAMES) * 4096;
        // Rows of 3,000 bytes: one page each, so twice the bound's pages write about twice
        // the bound.
        let data = "x".repeat(3000);
        let rows = 2 * WAL_CHECKPOINT_FRAMES as usize;
        let mut conn = None;
        let mut largest = 0;
        for first in (0..rows).step_by(64) {
            let statements: Vec<Statement> = (first..first + 64)
                .map(|id| {
                    Statement::new(
                        "INSERT INTO t (id, data) VALUES ($1, $2)",
                        vec![Val::I64(id as i64), Val::Str(data.clone())],
                    )
                })
                .collect();
            assert_eq!(write_with(&mut conn, &database, &statements).unwrap(), 64);
            let wal = std::fs::metadata(dir.path().join("tocsin.db-wal")).unwrap();
            largest = largest.max(wal.len());
        }
        let count: i64 = conn
            .as_ref()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count as usize, rows);
        assert!(
            largest < bound + bound / 8,
            "the WAL grew to {largest} bytes, past its bound of {bound}"
        );
    }

    /// The room made in the WAL keeps every frame already there, later commits go into it
    /// instead of growing the file, and a copy of the files as a crash leaves them (nothing
    /// checkpointed, the connection still open) reads back every committed row.
    #[test]
    fn commits_go_into_the_room_made_in_the_wal_and_survive_a_crash() {
        let (dir, database) = table_t();
        let wal = dir.path().join("tocsin.db-wal");
        let insert = |ids: std::ops::Range<i64>| -> Vec<Statement> {
            ids.map(|id| {
                Statement::new(
                    "INSERT INTO t (id, data) VALUES ($1, $2)",
                    vec![
                        Val::I64(id),
                        Val::Str(format!("row {id} {}", "x".repeat(500))),
                    ],
                )
            })
            .collect()
        };
        let mut conn = None;
        write_with(&mut conn, &database, &insert(0..50)).unwrap();
        let frames_before = std::fs::read(&wal).unwrap();
        let room = frames_before.len() as u64 + (3 << 20);
        let made = wal_room::make_room(conn.as_ref().unwrap(), &wal, room).unwrap();
        assert_eq!(made, Some((frames_before.len() as u64, room)));
        let after = std::fs::read(&wal).unwrap();
        assert_eq!(
            &after[..frames_before.len()],
            &frames_before[..],
            "the frames there before are untouched"
        );
        assert!(after[frames_before.len()..].iter().all(|&b| b == 0));
        assert_eq!(
            wal_room::make_room(conn.as_ref().unwrap(), &wal, room - 1).unwrap(),
            None,
            "a WAL long enough is left as it is"
        );

        // The connection is usable after: the lock it took for the room is let go.
        write_with(&mut conn, &database, &insert(50..100)).unwrap();
        write_with(&mut conn, &database, &insert(100..150)).unwrap();
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            room,
            "the commits went into the room, the file did not grow"
        );

        // A crash: the files copied as they are while the writer still holds them open.
        let crashed = tempfile::tempdir().unwrap();
        for file in ["tocsin.db", "tocsin.db-wal"] {
            std::fs::copy(dir.path().join(file), crashed.path().join(file)).unwrap();
        }
        let reopened = Connection::open(crashed.path().join("tocsin.db")).unwrap();
        let (count, last): (i64, i64) = reopened
            .query_row("SELECT COUNT(*), MAX(id) FROM t", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(
            (count, last),
            (150, 149),
            "every committed row, none of the zeros read as one"
        );
        let check: String = reopened
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// A store opened on a SQLite file has room in its WAL for the commits up to the
    /// checkpoint the writer makes itself, before its first batch.
    #[tokio::test]
    async fn a_store_opens_with_room_in_its_wal_up_to_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        let store = super::super::Store::open(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
        let wal = std::fs::metadata(dir.path().join("tocsin.db-wal")).unwrap();
        let frame = 4096 + 24;
        assert!(
            wal.len() >= 32 + u64::from(WAL_CHECKPOINT_FRAMES) * frame,
            "the WAL is {} bytes",
            wal.len()
        );
        store.close().await;
    }

    /// What a process killed between appending a batch to the redo log and committing it
    /// leaves behind is committed when the store opens next, once: a record SQLite already
    /// has is not committed again (its plain INSERT would fail the open if it were).
    #[tokio::test]
    async fn batches_left_in_the_redo_log_are_committed_on_the_next_start_once() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        let url = format!("sqlite://{}", database.display());
        let store = super::super::Store::open(&url).await.unwrap();
        store.close().await;
        drop(store);
        let entry = |id: i64| {
            Statement::new(
                "INSERT INTO timeline (id, incident_id, at, kind, actor, message, data) \
                 VALUES ($1, 1, 0, 'note', 'test', $2, 'null')",
                vec![Val::I64(id), Val::Str(format!("entry {id}"))],
            )
        };
        let applied = |n: i64| {
            Statement::new(
                "UPDATE redo_applied SET seq = $1 WHERE id = 1",
                vec![Val::I64(n)],
            )
        };
        let epoch: i64 = Connection::open(&database)
            .unwrap()
            .query_row("SELECT epoch FROM redo_applied", [], |row| row.get(0))
            .unwrap();
        assert!(epoch > 0, "the store got its number on its first start");
        let log_path = super::super::redo_log::path_for(&database);
        {
            let mut log = RedoLog::open(&log_path)
                .unwrap()
                .expect("the closed store let go of its log");
            // Record 1 reached SQLite before the kill, record 2 did not.
            log.start_empty(epoch.unsigned_abs(), 1).unwrap();
            let first = [entry(10), applied(1)];
            log.append(&first).unwrap();
            log.append(&[entry(20), entry(21), applied(2)]).unwrap();
            let mut conn = None;
            write_with(&mut conn, &database, &first).unwrap();
        }
        let messages = |store: &super::super::Store| {
            let pool = store.pool().clone();
            async move {
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT message FROM timeline ORDER BY id")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                let seq: (i64,) = sqlx::query_as("SELECT seq FROM redo_applied")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                (rows.into_iter().map(|r| r.0).collect::<Vec<_>>(), seq.0)
            }
        };
        let store = super::super::Store::open(&url).await.unwrap();
        let expected = (
            vec!["entry 10".to_string(), "entry 20".into(), "entry 21".into()],
            2,
        );
        assert_eq!(messages(&store).await, expected);
        store.close().await;
        drop(store);
        let store = super::super::Store::open(&url).await.unwrap();
        assert_eq!(messages(&store).await, expected, "nothing committed twice");
        store.close().await;
        drop(store);
        // The database deleted, its log left: a batch the log holds for it is not replayed
        // into the new, empty store in its place.
        {
            let mut log = RedoLog::open(&log_path).unwrap().unwrap();
            // Numbered 1: the very record a new store would expect next.
            log.start_empty(epoch.unsigned_abs(), 1).unwrap();
            log.append(&[entry(30), applied(1)]).unwrap();
        }
        for file in ["tocsin.db", "tocsin.db-wal", "tocsin.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(file));
        }
        let store = super::super::Store::open(&url).await.unwrap();
        assert_eq!(messages(&store).await, (Vec::<String>::new(), 0));
        store.close().await;
    }

    /// A table `t` and the redo log's table, as migration 0005 makes it.
    fn table_t_with_redo() -> (tempfile::TempDir, PathBuf) {
        let (dir, database) = table_t();
        Connection::open(&database)
            .unwrap()
            .execute_batch(
                "CREATE TABLE redo_applied (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, \
                 epoch BIGINT NOT NULL); INSERT INTO redo_applied VALUES (1, 0, 0);",
            )
            .unwrap();
        (dir, database)
    }

    /// Set (to the database's path) in the process this test starts again as the one that
    /// dies: see `a_process_gone_after_the_append_loses_nothing`.
    const DIES_AFTER_APPEND: &str = "TOCSIN_TEST_DIES_AFTER_APPEND";

    /// A process that ends after a batch went into the redo log and before SQLite committed
    /// it (the window in which its pages are already on their way) loses nothing: the next
    /// writer on the file commits it from the log. The test runs itself again as that
    /// process, which holds the writer's connection so the commit cannot happen, appends
    /// the batch and exits on the spot (no destructor runs, its threads die with it).
    #[test]
    fn a_process_gone_after_the_append_loses_nothing() {
        if let Some(database) = std::env::var_os(DIES_AFTER_APPEND) {
            let writer = SqliteWriter::start(PathBuf::from(database)).unwrap();
            writer.open_redo_log().unwrap();
            let _no_commit = writer.conn.lock().unwrap();
            let batch = vec![Statement::new(
                "INSERT INTO t (id, data) VALUES (7, 'paged before its commit')",
                Vec::new(),
            )];
            let submitted = writer.submit_ahead(batch, None).unwrap();
            assert!(matches!(submitted.0, Inner::Ready(Ok(_))), "went ahead");
            std::process::exit(0);
        }
        let (_dir, database) = table_t_with_redo();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::sqlite_writer::tests::a_process_gone_after_the_append_loses_nothing",
                "--nocapture",
            ])
            .env(DIES_AFTER_APPEND, &database)
            .status()
            .unwrap();
        assert!(status.success(), "the process that appends: {status}");
        let rows = |database: &PathBuf| -> Vec<String> {
            let conn = Connection::open(database).unwrap();
            let mut select = conn.prepare("SELECT data FROM t ORDER BY id").unwrap();
            let rows = select.query_map([], |row| row.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert!(rows(&database).is_empty(), "SQLite never got the batch");
        let writer = SqliteWriter::start(database.clone()).unwrap();
        writer.open_redo_log().unwrap();
        assert_eq!(rows(&database), vec!["paged before its commit"]);
        let (seq, _) = read_applied(&Connection::open(&database).unwrap()).unwrap();
        assert_eq!(seq, 1);
    }

    /// A batch of the redo log that SQLite refuses is not lost: its waiter hears why, and it
    /// is committed before the next write, which finds its row.
    #[tokio::test]
    async fn a_refused_batch_of_the_redo_log_is_committed_before_the_next_write() {
        let (_dir, database) = table_t_with_redo();
        let writer = SqliteWriter::start(database.clone()).unwrap();
        writer.open_redo_log().unwrap();
        // Table `later` does not exist yet: SQLite refuses the batch, row 1 of `t` with it.
        let batch = vec![
            Statement::new("INSERT INTO t (id, data) VALUES (1, 'paged')", Vec::new()),
            Statement::new("INSERT INTO later (id) VALUES (1)", Vec::new()),
        ];
        let submitted = writer.submit_ahead(batch, None).unwrap();
        let durable = submitted.committed().await.expect("in the redo log");
        let refused = durable.wait().await.unwrap_err();
        assert!(refused.to_string().contains("later"), "{refused}");
        assert!(writer.behind.load(Ordering::Acquire));
        // Meanwhile a batch that pages does not go ahead: it waits for its commit, which
        // waits for the refused one, and is refused with it (the engine keeps it).
        let next = vec![Statement::new(
            "INSERT INTO t (id, data) VALUES (2, 'next')",
            Vec::new(),
        )];
        let waited = writer.submit_ahead(next, None).unwrap().committed().await;
        assert!(waited.is_err(), "went ahead while SQLite refused the log");
        Connection::open(&database)
            .unwrap()
            .execute_batch("CREATE TABLE later (id INTEGER PRIMARY KEY);")
            .unwrap();
        let update =
            Statement::needing_row("UPDATE t SET data = 'delivered' WHERE id = 1", Vec::new());
        assert_eq!(
            writer.write(vec![update], None).await.unwrap(),
            1,
            "the refused batch went first: the update found its row"
        );
        assert!(!writer.behind.load(Ordering::Acquire));
        let reader = Connection::open(&database).unwrap();
        let data: String = reader
            .query_row("SELECT data FROM t WHERE id = 1", [], |row| row.get(0))
            .unwrap();
        assert_eq!(data, "delivered");
        let seq: i64 = reader
            .query_row("SELECT seq FROM redo_applied", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seq, 1);
        let rows: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(
            rows, 1,
            "the batch refused at its commit is the engine's to retry"
        );
        writer.close().await;
    }
}
