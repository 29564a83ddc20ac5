//! Sources: probes, pulled Prometheus and Alertmanager alerts, pushes, CRIs, heartbeats.
//!
//! The running sources follow the config: on a reload, the probes restart when their
//! section changed, and each pull source restarts, starts or stops on its own, handing its
//! memory of firing alerts to its successor so nothing it reported is left firing. Pushes and
//! CRIs arrive over HTTP: the API's ingest endpoints (`api::ingest`) decode them with
//! [`push`] and [`cri`], reading the config in force on every request.

pub mod alertmanager;
pub mod case;
pub mod cri;
pub mod probe;
pub mod prometheus;
pub mod pull;
pub mod pulled;
pub mod push;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::probe::ProbeContext;
use self::pull::{PullContext, PullKind, PullMemory};
pub use self::sink::{NotTaken, SignalSink};
use crate::clock::Clock;
use crate::config::{Config, PullSource};
use crate::metrics::Metrics;
use crate::store::Store;

/// What the sources are handed. `S` is the engine's compiled setup, which carries the config
/// in force.
pub struct SourceParts<S> {
    /// Takes their signals.
    pub engine: Arc<dyn SignalSink>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// The config in force; sources restart on a reload.
    pub setup: watch::Receiver<Arc<S>>,
    pub shutdown: watch::Receiver<bool>,
    /// Keeps each pulled source's memory across restarts and takeovers.
    pub store: Store,
}

/// Start every configured source.
pub fn spawn<S>(parts: SourceParts<S>) -> JoinHandle<()>
where
    S: AsRef<Config> + Send + Sync + 'static,
{
    tokio::spawn(supervise(parts))
}

/// A task with its own stop switch.
struct Running<T> {
    stop: watch::Sender<bool>,
    task: JoinHandle<T>,
}

impl<T> Running<T> {
    async fn stop(self) -> Option<T> {
        let _ = self.stop.send(true);
        self.task.await.ok()
    }
}

/// The probes, and the text of the config they were built from.
struct ProbeStage {
    built_from: String,
    names: Vec<String>,
    running: Running<()>,
}

struct PullTask {
    source: PullSource,
    running: Running<PullMemory>,
}

async fn supervise<S>(parts: SourceParts<S>)
where
    S: AsRef<Config> + Send + Sync + 'static,
{
    let SourceParts {
        engine,
        clock,
        metrics,
        mut setup,
        mut shutdown,
        store,
    } = parts;
    let pull_context = PullContext {
        engine: Arc::clone(&engine),
        clock: clock.clone(),
        metrics: Arc::clone(&metrics),
        store: Some(store.clone()),
    };
    let initial = Arc::clone(&setup.borrow());
    forget_removed_sources(&store, (*initial).as_ref(), &pull_context).await;
    let mut probes: Option<ProbeStage> = None;
    let mut pulls: BTreeMap<(PullKind, String), PullTask> = BTreeMap::new();
    loop {
        let config = Arc::new((**setup.borrow_and_update()).as_ref().clone());
        probes = follow_probes(probes, &config, &engine, &clock, &metrics).await;
        follow_pulls(&mut pulls, &config, &pull_context).await;
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            changed = setup.changed() => if changed.is_err() { break },
        }
    }
    if let Some(stage) = probes {
        stage.running.stop().await;
    }
    for (_, task) in pulls {
        task.running.stop().await;
    }
}

/// Sources removed from the config while no engine pulled them: resolve what they reported.
async fn forget_removed_sources(store: &Store, config: &Config, context: &PullContext) {
    let names = match store.source_state_names().await {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list stored pull memories");
            return;
        }
    };
    let configured: Vec<String> = config
        .sources
        .prometheus
        .iter()
        .map(|s| pull::memory_key(PullKind::Prometheus, &s.name))
        .chain(
            config
                .sources
                .alertmanager
                .iter()
                .map(|s| pull::memory_key(PullKind::Alertmanager, &s.name)),
        )
        .collect();
    // Other rows of the table (the services' availability) are no pull source's.
    let pulled = |name: &str| {
        [PullKind::Prometheus, PullKind::Alertmanager]
            .iter()
            .any(|kind| name.starts_with(&pull::memory_key(*kind, "")))
    };
    for name in names
        .into_iter()
        .filter(|n| pulled(n) && !configured.contains(n))
    {
        if let Some(memory) = pull::stored_memory(store, &name).await {
            let signals = memory.forget(context.clock.now());
            if !signals.is_empty() && context.engine.send_signals(signals).await.is_err() {
                continue;
            }
        }
        tracing::info!(source = %name, "source no longer configured: what it reported is resolved");
        let _ = store.delete_source_state(&name).await;
    }
}

/// The probe section as text: the config types carry no `PartialEq`, and every field of the
/// section is in their `Debug` output.
fn probe_section(config: &Config) -> String {
    format!(
        "{:?} {:?} {:?}",
        config.probes,
        config.probing,
        config.base_dir()
    )
}

async fn follow_probes(
    current: Option<ProbeStage>,
    config: &Arc<Config>,
    engine: &Arc<dyn SignalSink>,
    clock: &Clock,
    metrics: &Arc<Metrics>,
) -> Option<ProbeStage> {
    let section = probe_section(config);
    if let Some(stage) = current {
        if stage.built_from == section {
            return Some(stage);
        }
        tracing::info!("probe config changed: restarting the probes");
        stage.running.stop().await;
        // A removed probe's gauges would otherwise report its last result forever.
        for name in &stage.names {
            if !config.probes.iter().any(|p| &p.name == name) {
                let _ = metrics.probe_success.remove_label_values(&[name]);
                let _ = metrics.probe_duration_seconds.remove_label_values(&[name]);
            }
        }
    }
    let (stop, stopped) = watch::channel(false);
    let context = ProbeContext {
        clock: clock.clone(),
        metrics: Arc::clone(metrics),
        max_in_flight: config.probing.max_in_flight,
    };
    let task = tokio::spawn(probe::run_stage(
        Arc::clone(config),
        Arc::clone(engine),
        context,
        stopped,
    ));
    Some(ProbeStage {
        built_from: section,
        names: config.probes.iter().map(|p| p.name.clone()).collect(),
        running: Running { stop, task },
    })
}

async fn follow_pulls(
    pulls: &mut BTreeMap<(PullKind, String), PullTask>,
    config: &Config,
    context: &PullContext,
) {
    let wanted: BTreeMap<(PullKind, String), &PullSource> = config
        .sources
        .prometheus
        .iter()
        .map(|s| ((PullKind::Prometheus, s.name.clone()), s))
        .chain(
            config
                .sources
                .alertmanager
                .iter()
                .map(|s| ((PullKind::Alertmanager, s.name.clone()), s)),
        )
        .collect();
    let mut memories = BTreeMap::new();
    let keys: Vec<_> = pulls.keys().cloned().collect();
    for key in keys {
        let unchanged = wanted
            .get(&key)
            .is_some_and(|s| format!("{s:?}") == format!("{:?}", pulls[&key].source));
        if unchanged {
            continue;
        }
        let task = pulls.remove(&key).expect("listed key");
        let memory = task.running.stop().await.unwrap_or_default();
        if wanted.contains_key(&key) {
            memories.insert(key, memory);
        } else {
            tracing::info!(source = %key.1, "source removed: resolving what it reported");
            context
                .metrics
                .source_up
                .remove_label_values(&[&key.1])
                .ok();
            let signals = memory.forget(context.clock.now());
            if !signals.is_empty() {
                if let Err(e) = context.engine.send_signals(signals).await {
                    tracing::warn!(source = %key.1, error = %e, "resolutions not recorded");
                }
            }
            if let Some(store) = &context.store {
                let _ = store
                    .delete_source_state(&pull::memory_key(key.0, &key.1))
                    .await;
            }
        }
    }
    for (key, source) in wanted {
        if pulls.contains_key(&key) {
            continue;
        }
        let memory = memories.remove(&key).unwrap_or_default();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(pull::run(
            key.0,
            source.clone(),
            memory,
            context.clone(),
            stopped,
        ));
        pulls.insert(
            key,
            PullTask {
                source: source.clone(),
                running: Running { stop, task },
            },
        );
    }
}
