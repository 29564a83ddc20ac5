//! Wake-ups of the inbox on PostgreSQL (LISTEN/NOTIFY). An engine that puts an input in the
//! inbox notifies [`PUT`], and the leader's inbox reader reads it at once instead of at its
//! next poll; the leader's commit of the inputs it applied notifies [`DONE`] with their ids,
//! and the engines waiting for those replies read them at once. The polls stay behind the
//! notifications: one lost while the listener reconnects costs a poll's wait, no input.
//!
//! The leader also says where it serves on [`LEADER`], every second of its term, so that the
//! others can hand it their inputs over HTTP instead of through the inbox. An engine that
//! starts listening (at its start, or after a lost connection) asks on [`WANTED`], and the
//! leader says it at once: the engine's inputs need not go through the inbox until the
//! leader's next second.
//!
//! The listening connection is opened on first use (an engine on a shared store), not for
//! every store opened (a CLI command's).

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};

/// Notified, without a payload, when an input is put in the inbox.
pub(in crate::store) const PUT: &str = "tocsin_inbox";
/// Notified when the leader commits inputs it applied; the payload is their ids, comma
/// separated (empty: any may be done).
pub(in crate::store) const DONE: &str = "tocsin_inbox_done";

/// Notified by the leader: its term and the URL it serves at, space separated.
pub(in crate::store) const LEADER: &str = "tocsin_leader";

/// Notified, without a payload, by an engine that starts listening: the leader says where it
/// serves on [`LEADER`] at once.
pub(in crate::store) const WANTED: &str = "tocsin_leader_wanted";

/// Ids in one [`DONE`] payload, at most: PostgreSQL takes payloads under 8,000 bytes.
const IDS_PER_PAYLOAD: usize = 400;

#[derive(Debug)]
pub(in crate::store) struct InboxSignals {
    url: String,
    listening: OnceLock<()>,
    /// Counts inputs put (and reconnections, after which anything may be waiting).
    put: watch::Sender<u64>,
    done: broadcast::Sender<Arc<str>>,
    /// The latest leader heard of.
    leader: watch::Sender<Option<LeaderUrl>>,
    /// Counts the engines that asked where the leader serves.
    wanted: watch::Sender<u64>,
}

/// Where a leader serves, as it said on [`LEADER`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderUrl {
    pub term: i64,
    pub url: String,
}

impl LeaderUrl {
    pub(in crate::store) fn payload(&self) -> String {
        format!("{} {}", self.term, self.url)
    }

    fn parse(payload: &str) -> Option<LeaderUrl> {
        let (term, url) = payload.split_once(' ')?;
        Some(LeaderUrl {
            term: term.parse().ok()?,
            url: url.to_string(),
        })
    }
}

impl InboxSignals {
    pub fn new(url: &str) -> Arc<InboxSignals> {
        Arc::new(InboxSignals {
            url: url.to_string(),
            listening: OnceLock::new(),
            put: watch::Sender::new(0),
            done: broadcast::Sender::new(1024),
            leader: watch::Sender::new(None),
            wanted: watch::Sender::new(0),
        })
    }

    fn listen(self: &Arc<Self>) {
        self.listening.get_or_init(|| {
            tokio::spawn(listen(Arc::downgrade(self)));
        });
    }

    /// Changes when an input may have been put in the inbox.
    pub fn put(self: &Arc<Self>) -> watch::Receiver<u64> {
        self.listen();
        self.put.subscribe()
    }

    /// The payloads of [`DONE`] notifications from now on.
    pub fn done(self: &Arc<Self>) -> broadcast::Receiver<Arc<str>> {
        self.listen();
        self.done.subscribe()
    }

    /// The latest leader heard of on [`LEADER`] (none yet: `None`).
    pub fn leader(self: &Arc<Self>) -> watch::Receiver<Option<LeaderUrl>> {
        self.listen();
        self.leader.subscribe()
    }

    /// Changes when an engine asks where the leader serves ([`WANTED`]).
    pub fn leader_wanted(self: &Arc<Self>) -> watch::Receiver<u64> {
        self.listen();
        self.wanted.subscribe()
    }
}

/// The notifications (channel, payload) that tell the waiting engines that the inputs `ids`
/// are done.
pub(in crate::store) fn done_notifications(ids: &[i64]) -> Vec<(&'static str, String)> {
    ids.chunks(IDS_PER_PAYLOAD)
        .map(|chunk| {
            let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
            (DONE, ids.join(","))
        })
        .collect()
}

/// Whether a [`DONE`] payload may name the input `id`.
pub fn names(payload: &str, id: i64) -> bool {
    payload.is_empty() || payload.split(',').any(|n| n.parse() == Ok(id))
}

/// Listen until the store is dropped, reconnecting after a lost connection.
async fn listen(signals: Weak<InboxSignals>) {
    let mut failing = false;
    loop {
        let Some(url) = signals.upgrade().map(|s| s.url.clone()) else {
            return;
        };
        let mut listener = match PgListener::connect(&url).await {
            Ok(listener) => listener,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot listen for inbox notifications; polling");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([PUT, DONE, LEADER, WANTED]).await {
            tracing::debug!(error = %e, "LISTEN failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Whoever leads says where it serves now, not at its next second.
        let asked = sqlx::query("SELECT pg_notify($1, '')")
            .bind(WANTED)
            .execute(&mut listener)
            .await;
        if let Err(e) = asked {
            tracing::debug!(error = %e, "cannot ask where the leader serves; waiting for it to say");
        }
        failing = false;
        loop {
            // Bounded, so that the task ends soon after the store is dropped.
            let next = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
            let Some(s) = signals.upgrade() else {
                return;
            };
            match next {
                Err(_) => {}
                Ok(Ok(Some(n))) if n.channel() == PUT => s.put.send_modify(|n| *n += 1),
                Ok(Ok(Some(n))) if n.channel() == WANTED => s.wanted.send_modify(|n| *n += 1),
                Ok(Ok(Some(n))) if n.channel() == DONE => {
                    let _ = s.done.send(n.payload().into());
                }
                Ok(Ok(Some(n))) if n.channel() == LEADER => {
                    if let Some(leader) = LeaderUrl::parse(n.payload()) {
                        // A newer term's leader, or the same one again: the latest counts.
                        s.leader.send_if_modified(|known| {
                            let newer = known
                                .as_ref()
                                .is_none_or(|k| leader.term >= k.term && *k != leader);
                            if newer {
                                *known = Some(leader);
                            }
                            newer
                        });
                    }
                }
                Ok(Ok(Some(_))) => {}
                // The connection was lost (the next call reconnects): what was notified
                // meanwhile is not known, so everyone looks.
                Ok(Ok(None)) => {
                    s.put.send_modify(|n| *n += 1);
                    let _ = s.done.send("".into());
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "inbox notifications lost; listening again");
                    s.put.send_modify(|n| *n += 1);
                    let _ = s.done.send("".into());
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_ids_and_an_empty_one_all() {
        assert!(names("3,17,250", 17));
        assert!(!names("3,17,250", 1));
        assert!(!names("3,17,250", 25));
        assert!(names("", 25));
    }

    #[test]
    fn a_leader_says_its_term_and_url() {
        let leader = LeaderUrl {
            term: 7,
            url: "http://10.0.0.5:9470".into(),
        };
        assert_eq!(LeaderUrl::parse(&leader.payload()), Some(leader));
        assert_eq!(LeaderUrl::parse("seven http://x"), None);
        assert_eq!(LeaderUrl::parse("7"), None);
    }

    #[test]
    fn long_lists_go_in_several_payloads() {
        let ids: Vec<i64> = (1..=1000).collect();
        let notifications = done_notifications(&ids);
        assert_eq!(notifications.len(), 3);
        assert_eq!(notifications[0].0, "tocsin_inbox_done");
        assert!(notifications[0].1.starts_with("1,2,"));
        assert!(notifications
            .iter()
            .all(|(_, payload)| payload.len() < 8000));
    }
}
