//! Reloading the config (`POST /-/reload` and SIGHUP): the new config is loaded, its secrets
//! read and its setup built; the engine and every stage take it whole, or a bad config is
//! refused whole and the old one runs on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::runtime::EngineHandle;
use super::secrets::AckKeys;
use super::{Input, Setup};
use crate::config;
use crate::metrics::Metrics;

/// A reload request; answered once the reload is done.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// The last reload, when it was refused: when, and every error it named. Cleared by a
/// reload that succeeds; the dashboard shows it on every page.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusedReload {
    pub at: chrono::DateTime<chrono::Utc>,
    pub error: String,
}

/// Where the last refused reload is kept (`None` while the config in force is the last one
/// asked for).
pub type LastRefusal = watch::Receiver<Option<RefusedReload>>;

/// Reload requests (API and SIGHUP): a bad config is refused whole and the old one runs on.
#[allow(clippy::too_many_arguments)] // each part of the runtime it touches, handed in
pub async fn reload_loop(
    config_path: PathBuf,
    ack_keys: AckKeys,
    mut requests: mpsc::Receiver<ReloadRequest>,
    setup_tx: watch::Sender<Arc<Setup>>,
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    refusal: watch::Sender<Option<RefusedReload>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let reply = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            request = requests.recv() => match request {
                Some(reply) => reply,
                None => return,
            },
        };
        let result = reload_once(&config_path, &ack_keys, &setup_tx, &engine).await;
        match &result {
            Ok(()) => {
                metrics.prime(&setup_tx.borrow().config);
                metrics.config_last_reload_successful.set(1);
                metrics
                    .config_last_reload_success_timestamp_seconds
                    .set(chrono::Utc::now().timestamp() as f64);
                refusal.send_replace(None);
                tracing::info!("config reloaded");
            }
            Err(why) => {
                metrics.config_last_reload_successful.set(0);
                refusal.send_replace(Some(RefusedReload {
                    at: chrono::Utc::now(),
                    error: why.clone(),
                }));
                tracing::error!(error = %why, "config reload refused; the old config keeps running");
            }
        }
        let _ = reply.send(result);
    }
}

async fn reload_once(
    config_path: &Path,
    ack_keys: &AckKeys,
    setup_tx: &watch::Sender<Arc<Setup>>,
    engine: &EngineHandle,
) -> Result<(), String> {
    let config = config::load_to_run(config_path).map_err(|e| e.to_string())?;
    let old = setup_tx.borrow().config.store_url();
    if config.store_url() != old {
        return Err("store.url cannot change on reload; restart the engine".into());
    }
    let setup = Setup::build(config, ack_keys)
        .await
        .map_err(|e| e.to_string())?;
    engine
        .send(Input::Reload(Arc::clone(&setup)))
        .await
        .map_err(|e| e.to_string())?;
    setup_tx.send_replace(setup);
    Ok(())
}
