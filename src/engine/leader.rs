//! The leader's services: what runs only while this engine leads (the engine loop, delivery,
//! the sources, the pruner, the inbox reader and saying where it serves), started when it
//! takes the lease and stopped when it loses it. One engine on its own SQLite store leads
//! for good.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::leadership::{
    claim_engine_id, publish_fence, publish_term_start, run_lease, EngineIdInUse, Fence,
    Leadership, LeaseTiming, RealInstant,
};
use super::runtime::{run_loop, EngineHandle, LoopParts};
use super::watchdog::LoopPulse;
use super::{Core, Setup};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::paging::notify::Handed;
use crate::store::{Store, StoreError, StoreHealth};

/// Why this engine could not start as it should.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error(transparent)]
    EngineIdInUse(#[from] EngineIdInUse),
    #[error("loading state from the store: {0}")]
    Load(StoreError),
}

/// Leadership under way: the role this engine started in and follows, the lease task
/// (several engines on one store), and the supervisor of the leader's services.
pub struct Leading {
    pub role: watch::Receiver<Leadership>,
    pub first: Leadership,
    pub tasks: Vec<JoinHandle<()>>,
    /// Returns the last core this engine ran as the leader, at shutdown.
    pub supervisor: JoinHandle<Option<Core>>,
}

/// How long a stopping engine loop may take to write what it kept before it counts as wedged.
const WEDGED_LOOP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the leader's services are built from.
pub struct LeaderContext {
    pub store: Store,
    pub engine: EngineHandle,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub setup: watch::Receiver<Arc<Setup>>,
    /// This engine's name in the lease.
    pub holder: String,
    /// Several engines may share the store (PostgreSQL).
    pub shared: bool,
    pub fence: Arc<Fence>,
    /// Set by failed writes of the engine loop and the delivery worker; read by /-/ready.
    pub health: StoreHealth,
    /// Marked by the engine loop at every turn: the lease is renewed only while it turns.
    pub pulse: Arc<LoopPulse>,
    /// Where the other engines reach this one's API (`server.advertise_url`): said while it
    /// leads, so that they hand it their inputs there.
    pub advertise_url: Option<String>,
}

/// The tasks that only the leader runs: the engine loop (rules, timers), delivery, probes
/// and pulls, and the inbox reader.
struct LeaderServices {
    stop: watch::Sender<bool>,
    engine_task: JoinHandle<Core>,
    tasks: Vec<JoinHandle<()>>,
}

impl LeaderContext {
    /// Take the role this engine starts in (leading before it serves, if it gets the lease),
    /// then follow the lease until `shutdown`.
    pub async fn lead(
        self,
        lease: LeaseTiming,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Leading, TakeoverError> {
        let (store, holder, shared) = (self.store.clone(), self.holder.clone(), self.shared);
        let (fence, metrics) = (Arc::clone(&self.fence), Arc::clone(&self.metrics));
        let (role_tx, role_rx) = watch::channel(Leadership::FOLLOWER);
        let mut tasks = Vec::new();
        // This process, among any others under the same engine id (see `store::leader`).
        let instance = super::leadership::new_instance();
        if shared {
            if let Err(e) = claim_engine_id(&store, &holder, &instance, lease).await {
                store.close().await;
                return Err(e.into());
            }
        }
        let initial_role = if shared {
            // The first attempt at the lease decides this engine's role before it serves.
            let sent = RealInstant::now();
            match store
                .acquire_or_renew(&holder, &instance, lease.lease.as_millis() as i64)
                .await
            {
                Ok(Some(term)) => {
                    fence.extend(sent, lease.lease - lease.margin);
                    publish_fence(&fence, &metrics);
                    publish_term_start(&fence, &metrics, sent);
                    Leadership { leader: true, term }
                }
                Ok(None) => Leadership::FOLLOWER,
                Err(e) => {
                    tracing::error!(error = %e, "cannot reach the leader lease; starting as a follower");
                    Leadership::FOLLOWER
                }
            }
        } else {
            // One engine on its own SQLite store leads for good.
            Leadership {
                leader: true,
                term: 0,
            }
        };
        role_tx.send_replace(initial_role);
        metrics.leader.set(i64::from(initial_role.leader));
        let services = if initial_role.leader {
            Some(self.start(initial_role.term).await?)
        } else {
            None
        };
        let (stopped_tx, stopped_rx) = watch::channel(false);
        if shared {
            tasks.push(tokio::spawn(run_lease(
                store.clone(),
                holder.clone(),
                instance,
                lease,
                Arc::clone(&fence),
                role_tx,
                Arc::clone(&metrics),
                Arc::clone(&self.pulse),
                shutdown.clone(),
                stopped_rx,
            )));
        }
        let supervisor = tokio::spawn(supervise(
            self,
            services,
            role_rx.clone(),
            shutdown,
            stopped_tx,
        ));
        Ok(Leading {
            role: role_rx,
            first: initial_role,
            tasks,
            supervisor,
        })
    }

    /// Take over: load the state from the store and start everything the leader runs.
    async fn start(&self, term: i64) -> Result<LeaderServices, TakeoverError> {
        let setup = Arc::clone(&self.setup.borrow());
        let page_claims = crate::paging::notify::page_claims(&setup.config);
        let store = if self.shared {
            self.store.fenced(&self.holder, term, page_claims.clone())
        } else {
            self.store.clone()
        };
        let mut snapshot = store.load().await.map_err(TakeoverError::Load)?;
        let now = self.clock.now();
        let since = now - setup.config.incidents.reopen_within.chrono();
        snapshot.reopenable = store.reopenable(since).await.map_err(TakeoverError::Load)?;
        snapshot.stale_paging = store
            .resolved_with_paging()
            .await
            .map_err(TakeoverError::Load)?;
        let mut core = Core::new(setup, Arc::clone(&self.metrics), now);
        tracing::info!(
            term,
            incidents = snapshot.incidents.len(),
            rule_states = snapshot.rule_states.len(),
            "state loaded from the store"
        );
        // Also sets the open-incident and queue gauges from what was stored.
        core.restore(snapshot, now);
        let (stop, stop_rx) = watch::channel(false);
        let (pages_tx, pages_rx) = mpsc::unbounded_channel::<Handed>();
        let inputs = self.engine.attach();
        let engine_task = tokio::spawn(run_loop(
            core,
            inputs,
            LoopParts {
                store,
                clock: self.clock.clone(),
                metrics: Arc::clone(&self.metrics),
                pages: pages_tx,
                shutdown: stop_rx.clone(),
                health: self.health.clone(),
                pulse: Arc::clone(&self.pulse),
            },
        ));
        let mut tasks = vec![crate::paging::notify::spawn(
            crate::paging::notify::DeliveryParts {
                store: self.store.clone(),
                escalation: Arc::new(self.engine.clone()),
                clock: self.clock.clone(),
                metrics: Arc::clone(&self.metrics),
                setup: self.setup.clone(),
                pages: pages_rx,
                shutdown: stop_rx.clone(),
                claims: self.shared.then(|| crate::paging::notify::Claims {
                    holder: self.holder.clone(),
                    fence: self.fence.clone(),
                    written: page_claims,
                }),
                health: self.health.clone(),
            },
        )];
        tasks.push(crate::sources::spawn(crate::sources::SourceParts {
            engine: Arc::new(self.engine.clone()),
            clock: self.clock.clone(),
            metrics: Arc::clone(&self.metrics),
            setup: self.setup.clone(),
            shutdown: stop_rx.clone(),
            store: self.store.clone(),
        }));
        tasks.push(tokio::spawn(super::retention::prune(
            self.store.clone(),
            self.clock.clone(),
            Arc::clone(&self.metrics),
            self.setup.clone(),
            stop_rx.clone(),
        )));
        if self.shared {
            if let Some(url) = &self.advertise_url {
                tasks.push(tokio::spawn(super::forward::announce(
                    self.store.clone(),
                    term,
                    url.clone(),
                    super::forward::ANNOUNCE_EVERY,
                    stop_rx.clone(),
                )));
            }
            tasks.push(tokio::spawn(super::inbox::read_inbox(
                self.store.clone(),
                self.engine.clone(),
                self.clock.clone(),
                stop_rx,
            )));
        }
        Ok(LeaderServices {
            stop,
            engine_task,
            tasks,
        })
    }
}

impl LeaderServices {
    /// Stop leading: inputs go to the inbox again and every leader task ends.
    async fn stop(self, engine: &EngineHandle) -> Option<Core> {
        engine.detach();
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // A wedged loop never ends by itself: it is dropped, its unwritten changes with it
        // (the engine that leads now redoes them from the store).
        let mut engine_task = self.engine_task;
        match tokio::time::timeout(WEDGED_LOOP_WAIT, &mut engine_task).await {
            Ok(core) => core.ok(),
            Err(_) => {
                tracing::error!("the engine loop does not stop: it is wedged; dropping it");
                engine_task.abort();
                None
            }
        }
    }
}

/// Start the leader's services when this engine takes the lease, stop them when it loses it;
/// returns the last core at shutdown (for tests).
async fn supervise(
    leader: LeaderContext,
    mut services: Option<LeaderServices>,
    mut role: watch::Receiver<Leadership>,
    mut shutdown: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) -> Option<Core> {
    let mut running_term = services.as_ref().map(|_| role.borrow().term);
    let mut last_core = None;
    loop {
        let changed = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            changed = role.changed() => changed.is_ok(),
        };
        if !changed {
            // No lease to follow (one engine on SQLite): lead until shutdown.
            let _ = shutdown.wait_for(|stop| *stop).await;
            break;
        }
        let now = *role.borrow_and_update();
        if running_term.is_some() && (!now.leader || running_term != Some(now.term)) {
            if let Some(s) = services.take() {
                last_core = s.stop(&leader.engine).await;
            }
            running_term = None;
            tracing::info!("leader services stopped");
        }
        if now.leader && running_term.is_none() {
            match leader.start(now.term).await {
                Ok(s) => {
                    services = Some(s);
                    running_term = Some(now.term);
                }
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "cannot take over; staying a follower until the next renewal"
                ),
            }
        }
    }
    if let Some(s) = services.take() {
        last_core = s.stop(&leader.engine).await;
    }
    // What the services kept is written: the lease may go.
    stopped.send_replace(true);
    last_core
}
