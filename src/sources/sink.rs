//! Where sources hand their signals. The engine implements [`SignalSink`]; sources know
//! nothing else of it.

use futures::future::BoxFuture;

use crate::signal::Signal;

/// Why signals were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTaken {
    /// The engine is stopping: the source stops too.
    #[error("the engine is shutting down")]
    Stopped,
    /// Not taken as asked, for the reason given (the store cannot be written, no engine
    /// leads); the source goes on.
    #[error("{0}")]
    Refused(String),
}

/// Takes the signals of every source.
pub trait SignalSink: Send + Sync + 'static {
    /// Hand signals over and wait until they are taken.
    fn send_signals(&self, signals: Vec<Signal>) -> BoxFuture<'_, Result<(), NotTaken>>;
}
