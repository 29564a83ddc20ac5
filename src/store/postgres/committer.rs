//! The engine's batches on PostgreSQL are committed on a thread of their own, with a
//! runtime and a connection of their own. A batch is a chain of round trips (`BEGIN`, its
//! statements, `COMMIT`), each sent once the one before it is answered. On the engine's
//! runtime each answer would wait for a worker free of HTTP requests and the next inputs,
//! and for the runtime to look at the socket; here the next statement goes as soon as the
//! answer is in.
//!
//! Batches are committed one at a time, in the order handed over (the engine hands over
//! one at a time anyway). A connection whose batch failed is closed, and the next batch
//! opens a fresh one, as the pool does for other writes (see the module docs of `store`).
//! As the pool does too, the connection is pinged before each batch, so that one the server
//! ended meanwhile (a restart, `pg_terminate_backend`, `idle_session_timeout`) costs a
//! reconnection, not a batch.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::store::model::Changes;
use crate::store::{redact, Result, Store, StoreError, Submitted};

/// How long opening the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The handle on the committing thread; the thread ends when every handle is dropped.
#[derive(Debug)]
pub(in crate::store) struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
}

enum Job {
    Commit {
        /// The store as the engine holds it (its fence included).
        store: Store,
        changes: Arc<Changes>,
        done: oneshot::Sender<Result<()>>,
    },
    /// Close the connection, then answer.
    Close(oneshot::Sender<()>),
}

impl Committer {
    /// Start the thread that commits to `url`; it connects at its first batch.
    pub fn start(url: &str) -> Result<Committer> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::CommitterStart)?;
        let url = url.to_string();
        std::thread::Builder::new()
            .name("tocsin-pg-commit".to_string())
            .spawn(move || runtime.block_on(commit_in_order(url, queue)))
            .map_err(StoreError::CommitterStart)?;
        Ok(Committer { jobs })
    }

    /// Hand `changes` over to be committed as `store` writes them.
    pub fn submit(&self, store: Store, changes: Arc<Changes>) -> Submitted {
        let (done, committed) = oneshot::channel();
        // A send that fails drops `done`: the batch then reads as stopped.
        let _ = self.jobs.send(Job::Commit {
            store,
            changes,
            done,
        });
        Submitted::committing(committed)
    }

    /// Close the connection once the batches handed over before are done.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// The thread's loop: each batch in the order it came, on the one connection.
async fn commit_in_order(url: String, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut conn: Option<AnyConnection> = None;
    while let Some(job) = queue.recv().await {
        match job {
            Job::Commit {
                store,
                changes,
                done,
            } => {
                // On a task of its own: a panic ends that batch (read as stopped) and its
                // connection, not the thread.
                let batch = tokio::spawn(commit(url.clone(), conn.take(), store, changes));
                let result = match batch.await {
                    Ok((kept, result)) => {
                        conn = kept;
                        result
                    }
                    Err(_) => Err(StoreError::CommitStopped),
                };
                let _ = done.send(result);
            }
            Job::Close(done) => {
                if let Some(c) = conn.take() {
                    let _ = c.close().await;
                }
                let _ = done.send(());
            }
        }
    }
}

/// Commit one batch, on `conn` when it is still good; the connection to keep, and how the
/// batch went.
async fn commit(
    url: String,
    conn: Option<AnyConnection>,
    store: Store,
    changes: Arc<Changes>,
) -> (Option<AnyConnection>, Result<()>) {
    let mut conn = match usable(conn).await {
        Some(c) => c,
        None => match connect(&url).await {
            Ok(c) => c,
            Err(e) => return (None, Err(e)),
        },
    };
    let result = store.apply_on(&mut conn, &changes).await;
    (result.is_ok().then_some(conn), result)
}

/// The connection, if it answers a ping.
async fn usable(conn: Option<AnyConnection>) -> Option<AnyConnection> {
    let mut conn = conn?;
    conn.ping().await.is_ok().then_some(conn)
}

async fn connect(url: &str) -> Result<AnyConnection> {
    let failed = |reason| StoreError::Open {
        url: redact(url),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(url)).await {
        Ok(connected) => connected.map_err(failed),
        Err(_) => Err(failed(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
        )))),
    }
}
