//! The leader's inbox reader: inputs that engines which do not lead took (several engines
//! on one PostgreSQL store) wait in the store's inbox until the leader applies them.

use tokio::sync::watch;

use super::runtime::EngineHandle;
use super::{Input, Reply};
use crate::clock::Clock;
use crate::store::Store;

/// The leader applies inputs other engines took (pushes, CRIs, heartbeats, acks); each is
/// marked done with its reply in the same transaction as its effects.
pub async fn read_inbox(
    store: Store,
    engine: EngineHandle,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let mut after = 0;
    let mut last_prune = tokio::time::Instant::now();
    // A store that does not answer is logged once, not at every poll.
    let mut failing = false;
    loop {
        let mut full = false;
        match store.inbox_pending(after, 256).await {
            Ok(rows) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("the inbox can be read again");
                }
                full = rows.len() == 256;
                for (id, json) in rows {
                    after = id;
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
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read the inbox; retrying every 250 ms");
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the inbox"),
        }
        if last_prune.elapsed() > std::time::Duration::from_secs(60) {
            last_prune = tokio::time::Instant::now();
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
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
        }
    }
}
