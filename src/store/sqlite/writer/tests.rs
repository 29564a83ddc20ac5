//! The writer's commits, fsyncs, WAL bound and room, and the redo log's replay.
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
    let store = crate::store::Store::open(&format!("sqlite://{}", database.display()))
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
    let store = crate::store::Store::open(&url).await.unwrap();
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
    let messages = |store: &crate::store::Store| {
        let pool = store.pool().clone();
        async move {
            let rows: Vec<(String,)> = sqlx::query_as("SELECT message FROM timeline ORDER BY id")
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
    let store = crate::store::Store::open(&url).await.unwrap();
    let expected = (
        vec!["entry 10".to_string(), "entry 20".into(), "entry 21".into()],
        2,
    );
    assert_eq!(messages(&store).await, expected);
    store.close().await;
    drop(store);
    let store = crate::store::Store::open(&url).await.unwrap();
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
    let store = crate::store::Store::open(&url).await.unwrap();
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
            "store::sqlite::writer::tests::a_process_gone_after_the_append_loses_nothing",
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
    let update = Statement::needing_row("UPDATE t SET data = 'delivered' WHERE id = 1", Vec::new());
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
