//! What the delivery worker asks of the runtime around it: to hear of a page given up, and
//! whether this engine may still send as the leader. The engine implements both; the worker
//! knows nothing else of it.

use futures::future::BoxFuture;

/// A page the worker has given up on: lost for good, so escalation goes on to the next level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GivenUp {
    pub incident_id: i64,
    /// The escalation level the page was sent for (none for a resolution, say).
    pub level: Option<usize>,
    /// Who the page was for, in words: `alice (email alice@example.com)`.
    pub recipient: String,
    pub reason: String,
    /// What the page was (a TSG action's call that is lost fails the action).
    pub event: crate::paging::PageEvent,
}

/// Where the worker reports a page given up.
pub trait Escalation: Send + Sync + 'static {
    /// True when the engine takes the report (it records `delivery_failed` and escalates, or
    /// will once its store takes writes again); false when it does not (the incident is no
    /// longer open, the engine is stopping, or no engine leads): the worker then records the
    /// page given up in the incident's timeline itself.
    fn given_up(&self, page: GivenUp) -> BoxFuture<'_, bool>;
}

/// This engine's leader fence, when several engines share the store: a page is started only
/// while it holds, since the lease may pass to another engine at any moment after.
pub trait LeaderFence: Send + Sync {
    fn is_valid(&self) -> bool;
}
