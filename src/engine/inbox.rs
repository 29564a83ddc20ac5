//! The leader's inbox reader: inputs that engines which do not lead took (several engines
//! on one PostgreSQL store) wait in the store's inbox until the leader applies them.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::runtime::EngineHandle;
use super::{Input, Reply};
use crate::clock::Clock;
use crate::store::Store;

/// Inputs read at once, at most.
const BATCH: i64 = 256;
/// How long an id skipped over is looked for: an input's id is taken when its insert starts,
/// so one may commit after a later id was read. One never seen (an insert rolled back) is
/// given up after this.
const GAP_KEEP: Duration = Duration::from_secs(600);
/// Ids skipped over, at most (the newest are kept).
const GAPS_MAX: usize = 4096;

/// Where the reader is: the largest id read, and the ids below it not read yet.
#[derive(Debug, Default)]
struct Cursor {
    after: i64,
    /// Skipped ids, with when they were skipped.
    gaps: BTreeMap<i64, Instant>,
}

impl Cursor {
    /// The input `id` was read.
    fn saw(&mut self, id: i64, now: Instant) {
        if id <= self.after {
            self.gaps.remove(&id);
            return;
        }
        // The first read of a term starts past every input applied before it: nothing skipped.
        if self.after > 0 {
            let from = (self.after + 1).max(id - GAPS_MAX as i64);
            for skipped in from..id {
                self.gaps.insert(skipped, now);
            }
        }
        self.after = id;
    }

    fn oldest_gap(&self) -> Option<i64> {
        self.gaps.keys().next().copied()
    }

    fn is_gap(&self, id: i64) -> bool {
        self.gaps.contains_key(&id)
    }

    /// Give up ids skipped `GAP_KEEP` ago, and the oldest beyond `GAPS_MAX`.
    fn forget_old_gaps(&mut self, now: Instant) {
        self.gaps.retain(|_, at| now.duration_since(*at) < GAP_KEEP);
        while self.gaps.len() > GAPS_MAX {
            self.gaps.pop_first();
        }
    }
}

/// The leader applies inputs other engines took (pushes, CRIs, heartbeats, acks); each is
/// marked done with its reply in the same transaction as its effects.
pub async fn read_inbox(
    store: Store,
    engine: EngineHandle,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = Cursor::default();
    let mut last_prune = Instant::now();
    // Woken when an input is put (PostgreSQL's notifications), else at the next poll.
    let mut put = store.inbox_put_signal();
    // A store that does not answer is logged once, not at every poll.
    let mut failing = false;
    loop {
        let mut full = false;
        let read = async {
            let mut rows = match cursor.oldest_gap() {
                Some(first) => store
                    .inbox_pending_between(first, cursor.after, BATCH)
                    .await?
                    .into_iter()
                    .filter(|(id, _)| cursor.is_gap(*id))
                    .collect(),
                None => Vec::new(),
            };
            let newer = store.inbox_pending(cursor.after, BATCH).await?;
            full = newer.len() as i64 == BATCH;
            rows.extend(newer);
            Ok::<_, crate::store::StoreError>(rows)
        };
        match read.await {
            Ok(rows) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("the inbox can be read again");
                }
                let now = Instant::now();
                for (id, json) in rows {
                    cursor.saw(id, now);
                    let input = match serde_json::from_str::<Input>(&json) {
                        Ok(input) => input,
                        Err(e) => {
                            // Written by an engine of another version: answer, do not guess.
                            tracing::error!(inbox = id, error = %e, "an inbox input cannot be read");
                            let reply =
                                Reply::Conflict(format!("this leader cannot read the input: {e}"));
                            let json = serde_json::to_string(&reply).unwrap_or_default();
                            let _ = store.inbox_answer(id, &json, clock.now()).await;
                            continue;
                        }
                    };
                    if engine.submit_inbox(id, input).await.is_err() {
                        return;
                    }
                }
                cursor.forget_old_gaps(now);
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read the inbox; retrying every 250 ms");
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the inbox"),
        }
        if last_prune.elapsed() > Duration::from_secs(60) {
            last_prune = Instant::now();
            let _ = store
                .inbox_prune(clock.now() - chrono::Duration::hours(1))
                .await;
        }
        let wait = match (full, failing) {
            (_, true) => 250,
            (true, false) => 0,
            (false, false) => 20,
        };
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = changed_or_never(put.as_mut()) => {}
        }
    }
}

/// Once `signal` changes; never when there is none, or its sender is gone.
pub(super) async fn changed_or_never(signal: Option<&mut watch::Receiver<u64>>) {
    if let Some(signal) = signal {
        if signal.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input whose id was skipped (its insert committed after a later one's) is read
    /// when it appears; one never seen is given up after `GAP_KEEP`.
    #[test]
    fn ids_skipped_over_are_looked_for_until_they_come_or_time_out() {
        let start = Instant::now();
        let mut cursor = Cursor::default();
        cursor.saw(7, start);
        assert_eq!(
            cursor.oldest_gap(),
            None,
            "a term's first read skips nothing"
        );
        cursor.saw(8, start);
        cursor.saw(11, start);
        assert_eq!(cursor.after, 11);
        assert_eq!(cursor.gaps.keys().copied().collect::<Vec<_>>(), vec![9, 10]);
        cursor.saw(9, start);
        assert_eq!(cursor.oldest_gap(), Some(10));
        assert!(cursor.is_gap(10) && !cursor.is_gap(9));
        cursor.forget_old_gaps(start + GAP_KEEP - Duration::from_secs(1));
        assert_eq!(cursor.oldest_gap(), Some(10));
        cursor.forget_old_gaps(start + GAP_KEEP);
        assert_eq!(cursor.oldest_gap(), None);
    }

    #[test]
    fn a_long_jump_keeps_the_newest_skipped_ids_only() {
        let now = Instant::now();
        let mut cursor = Cursor::default();
        cursor.saw(1, now);
        cursor.saw(100_000, now);
        assert_eq!(cursor.gaps.len(), GAPS_MAX);
        assert_eq!(cursor.oldest_gap(), Some(100_000 - GAPS_MAX as i64));
    }
}
