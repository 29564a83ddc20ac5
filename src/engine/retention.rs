//! The leader's pruner: what `store.retention` no longer keeps is removed a batch of
//! incidents at a time (see `store::retention`), beside the engine loop, with a pause
//! between batches so that the engine's own writes never wait behind more than one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Setup;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::Store;

/// Incidents looked at per transaction: one, so that a page's write that comes during a
/// transaction waits for no more than one incident's rows (the history benchmark's pages
/// during a prune).
const BATCH: i64 = 1;
/// Between two batches of one walk.
const PAUSE: Duration = Duration::from_millis(20);
/// Between two walks over the store, and before the first (start-up goes first).
const EVERY: Duration = Duration::from_secs(600);
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// Prune until `shutdown`.
pub async fn prune(
    store: Store,
    clock: Clock,
    metrics: Arc<Metrics>,
    setup: watch::Receiver<Arc<Setup>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = FIRST_AFTER;
    let mut cursor = 0;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let retention = setup.borrow().config.store.retention.std();
        let before = Store::retention_cutoff(clock.now(), retention);
        wait = match store.prune_step(before, cursor, BATCH).await {
            Ok(step) => {
                metrics.store_pruned_rows_total.inc_by(step.rows);
                if step.incidents > 0 {
                    tracing::debug!(incidents = step.incidents, rows = step.rows, "pruned");
                }
                match step.next {
                    Some(next) => {
                        cursor = next;
                        PAUSE
                    }
                    None => {
                        cursor = 0;
                        EVERY
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning the store failed; trying again later");
                EVERY
            }
        };
    }
}
