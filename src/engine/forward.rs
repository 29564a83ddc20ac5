//! Inputs handed to the leader over HTTP. With several engines on PostgreSQL, an engine that
//! does not lead hands the inputs it takes (pushes, CRIs, heartbeats, acks) straight to the
//! leader's API, where the leader applies them as its own and answers once they are stored:
//! no row in the store's inbox, no wait for its notifications. The leader says where it serves
//! (`server.advertise_url`) through the store every second of its term, and at once when an
//! engine asks ([`announce`]).
//!
//! The inbox stays the way that always works: an input goes there when no leader has said
//! where it serves, when the leader cannot be reached, or when the engine reached no longer
//! leads; the leader then has not taken it. Once the input is sent, a failure is not retried
//! through the inbox, for the leader may have applied it: the caller is told so.
//!
//! The engines prove themselves to each other with a key kept in the store, made by the first
//! engine that asks, so only an engine that can read the store can hand inputs to the leader.

use std::sync::Mutex;
use std::time::Duration;

use prometheus::IntCounterVec;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio::time::Instant;

use super::runtime::EngineError;
use super::{Input, Reply};
use crate::store::{LeaderUrl, Store, StoreError};

/// Where the leader takes handed-over inputs (POST, the input's JSON).
pub const PATH: &str = "/-/cluster/input";

/// The key's name in the store.
const KEY_NAME: &str = "forward_key";

/// How often the leader says where it serves, unasked.
pub(super) const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// How long the leader may take to connect: longer, and the input goes through the inbox.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);

/// After a leader could not be reached, inputs go straight to the inbox for this long.
const UNREACHABLE_FOR: Duration = Duration::from_secs(5);

/// The leader's answer: the core's reply once stored, or why it was not.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Reply(Reply),
    Error(EngineError),
}

impl From<Result<Reply, EngineError>> for Answer {
    fn from(result: Result<Reply, EngineError>) -> Self {
        match result {
            Ok(reply) => Answer::Reply(reply),
            Err(e) => Answer::Error(e),
        }
    }
}

/// The key engines on one store hand inputs over with (the store's, made once).
pub async fn shared_key(store: &Store) -> Result<String, StoreError> {
    let candidate = hex::encode(rand::random::<[u8; 32]>());
    store.shared_secret(KEY_NAME, &candidate).await
}

/// An engine's side of handing inputs over: the key, and where the leader serves.
pub struct Forwarder {
    key: String,
    leader: watch::Receiver<Option<LeaderUrl>>,
    client: reqwest::Client,
    counted: IntCounterVec,
    /// A leader's URL that could not be reached, and until when it is not tried again.
    unreachable: Mutex<Option<(String, Instant)>>,
}

/// How handing an input to the leader went.
pub enum Handover {
    /// The leader answered (or took the input and then failed to answer).
    Answered(Result<Reply, EngineError>),
    /// The leader did not take it: put it in the inbox.
    NotTaken,
}

impl Forwarder {
    /// `leader`: the store's news of the leader; `counted`: `tocsin_follower_inputs_total`.
    pub fn new(
        key: String,
        leader: watch::Receiver<Option<LeaderUrl>>,
        counted: IntCounterVec,
    ) -> Forwarder {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_WITHIN)
            .build()
            .expect("an HTTP client with no TLS settings builds");
        Forwarder {
            key,
            leader,
            client,
            counted,
            unreachable: Mutex::new(None),
        }
    }

    /// Whether `presented` is the key (compared in constant time).
    pub fn accepts(&self, presented: &str) -> bool {
        bool::from(self.key.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// An input goes through the inbox: count it.
    pub fn count_inbox(&self) {
        self.counted.with_label_values(&["inbox"]).inc();
    }

    /// Hand `input` to the leader, waiting at most `wait` for its answer.
    pub async fn hand(&self, input: &Input, wait: Duration) -> Handover {
        let Some(leader) = self.leader.borrow().clone() else {
            return Handover::NotTaken;
        };
        if self.is_unreachable(&leader.url) {
            return Handover::NotTaken;
        }
        let Ok(body) = serde_json::to_vec(input) else {
            return Handover::NotTaken;
        };
        let sent = self
            .client
            .post(format!("{}{PATH}", leader.url))
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(wait)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // Not connected: the leader has seen nothing of it.
            Err(e) if e.is_connect() => {
                tracing::warn!(leader = %leader.url, error = %e, "cannot reach the leader; using the inbox");
                *self.unreachable.lock().expect("unreachable lock") =
                    Some((leader.url, Instant::now() + UNREACHABLE_FOR));
                return Handover::NotTaken;
            }
            Err(e) => return self.unanswered(&leader, e.to_string()),
        };
        let status = response.status();
        // 503: it does not lead (any more). 4xx: it refused the input before taking it (a
        // key or an input it does not know, an engine of another version).
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE || status.is_client_error() {
            if status != reqwest::StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(leader = %leader.url, %status, "the leader refused a handed-over input; using the inbox");
            }
            return Handover::NotTaken;
        }
        let answer = match response.bytes().await {
            Ok(body) if status.is_success() => serde_json::from_slice::<Answer>(&body)
                .map_err(|e| format!("its answer cannot be read: {e}")),
            Ok(body) => Err(format!(
                "it answered {status}: {}",
                String::from_utf8_lossy(&body)
            )),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(Answer::Reply(reply)) => {
                self.counted.with_label_values(&["http"]).inc();
                Handover::Answered(Ok(reply))
            }
            Ok(Answer::Error(e)) => {
                self.counted.with_label_values(&["http"]).inc();
                Handover::Answered(Err(e))
            }
            Err(e) => self.unanswered(&leader, e),
        }
    }

    fn is_unreachable(&self, url: &str) -> bool {
        let mut unreachable = self.unreachable.lock().expect("unreachable lock");
        match &*unreachable {
            Some((known, until)) if known == url && Instant::now() < *until => true,
            Some(_) => {
                *unreachable = None;
                false
            }
            None => false,
        }
    }

    fn unanswered(&self, leader: &LeaderUrl, error: String) -> Handover {
        tracing::warn!(leader = %leader.url, %error, "the leader took an input and did not answer");
        self.counted.with_label_values(&["http"]).inc();
        Handover::Answered(Err(EngineError::Unanswered(error)))
    }
}

/// The leader of `term` says that it serves at `url` every `every` and whenever an engine
/// asks, until `stop`.
pub async fn announce(
    store: Store,
    term: i64,
    url: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let leader = LeaderUrl { term, url };
    let mut wanted = store.leader_wanted();
    let mut failing = false;
    loop {
        match store.announce_leader(&leader).await {
            Ok(()) => failing = false,
            Err(e) if !std::mem::replace(&mut failing, true) => {
                tracing::warn!(error = %e, "cannot say where this leader serves; the other engines use the inbox");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(every) => {}
            _ = super::inbox::changed_or_never(wanted.as_mut()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarder() -> Forwarder {
        let counted =
            IntCounterVec::new(prometheus::Opts::new("inputs", "inputs"), &["via"]).unwrap();
        let (_, leader) = watch::channel(None);
        Forwarder::new("the-key".into(), leader, counted)
    }

    #[test]
    fn only_the_key_itself_is_accepted() {
        let forwarder = forwarder();
        assert!(forwarder.accepts("the-key"));
        for other in ["", "the-ke", "the-key ", "THE-KEY"] {
            assert!(!forwarder.accepts(other), "{other:?}");
        }
    }

    /// A leader that could not be reached is not tried again for a while; another leader is.
    #[tokio::test(start_paused = true)]
    async fn an_unreachable_leader_is_left_alone_for_a_while() {
        let forwarder = forwarder();
        *forwarder.unreachable.lock().unwrap() = Some((
            "http://10.0.0.5:9470".into(),
            Instant::now() + UNREACHABLE_FOR,
        ));
        assert!(forwarder.is_unreachable("http://10.0.0.5:9470"));
        assert!(!forwarder.is_unreachable("http://10.0.0.6:9470"));
        *forwarder.unreachable.lock().unwrap() = Some((
            "http://10.0.0.5:9470".into(),
            Instant::now() + UNREACHABLE_FOR,
        ));
        tokio::time::advance(UNREACHABLE_FOR - Duration::from_millis(1)).await;
        assert!(forwarder.is_unreachable("http://10.0.0.5:9470"));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!forwarder.is_unreachable("http://10.0.0.5:9470"));
    }

    /// With no leader heard of, an input is not handed over.
    #[tokio::test]
    async fn nothing_is_handed_over_before_a_leader_says_where_it_serves() {
        let forwarder = forwarder();
        let input = Input::Heartbeat("nightly".into());
        assert!(matches!(
            forwarder.hand(&input, Duration::from_secs(1)).await,
            Handover::NotTaken
        ));
    }
}
