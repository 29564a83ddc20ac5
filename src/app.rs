//! The daemon: builds every stage from the config, runs them, reloads on SIGHUP or
//! `POST /-/reload`, and shuts down cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::{self, AppState, ReloadRequest};
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::engine::leadership::{self, Fence, Leadership, LeaseTiming};
use crate::engine::runtime::{self, LoopParts};
use crate::engine::setup::AckKeys;
use crate::engine::{Core, EngineHandle, Input, Reply, Setup};
use crate::metrics::Metrics;
use crate::paging::Page;
use crate::store::{Backend, Owner, Store, StoreHealth};

/// How to start an engine.
#[derive(Clone, Debug)]
pub struct Options {
    pub config_path: PathBuf,
    pub clock: Clock,
    /// Listen here instead of `server.listen` (tests bind 127.0.0.1:0).
    pub listen: Option<String>,
}

impl Options {
    pub fn new(config_path: impl Into<PathBuf>) -> Self {
        Options {
            config_path: config_path.into(),
            clock: Clock::System,
            listen: None,
        }
    }
}

/// A running engine.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    supervisor: JoinHandle<Option<Core>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.state.engine
    }

    /// Stop every task and write what is left; returns the core for inspection.
    /// Stop every task and write what is left; returns the last core this engine ran as
    /// the leader, for inspection.
    pub async fn stop(self) -> Option<Core> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let core = self.supervisor.await.ok().flatten();
        self.state.store.close().await;
        core
    }
}

/// Start an engine: store, core, API and every task.
///
/// The port is bound first and answers at once: `/-/healthy` 200 and `/-/ready` 503 while the
/// store opens and the state loads (a slow PostgreSQL, a long migration), and a port clash
/// fails before anything else is touched.
pub async fn start(options: Options) -> Result<Running> {
    let config =
        config::load_to_run(&options.config_path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let metrics = Arc::new(Metrics::new());
    let listen = options
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        // Most often the same config started twice: its store is the reason to give.
        Err(e) => match Store::in_use(&config.store_url()) {
            Some(in_use) => return Err(in_use.into()),
            None => return Err(anyhow::Error::new(e).context(format!("cannot listen on {listen}"))),
        },
    };
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let gate = api::Gate::new(api::admin::starting_router(Arc::clone(&metrics)));
    let app = gate.clone().into_router();
    let server = tokio::spawn(api::serve::serve(listener, app, shutdown_rx.clone()));
    let parts = StartParts {
        options,
        config,
        metrics,
        addr,
        shutdown_tx,
        shutdown_rx,
    };
    match start_engine(parts, &gate).await {
        Ok(mut running) => {
            running.tasks.push(server);
            Ok(running)
        }
        Err((e, shutdown)) => {
            // Free the port before saying why: a caller may retry on it.
            let _ = shutdown.send(true);
            let _ = server.await;
            Err(e)
        }
    }
}

struct StartParts {
    options: Options,
    config: Config,
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
}

/// Everything after the port is bound; on failure hands back the shutdown switch.
async fn start_engine(
    parts: StartParts,
    gate: &api::Gate,
) -> Result<Running, (anyhow::Error, watch::Sender<bool>)> {
    let StartParts {
        options,
        config,
        metrics,
        addr,
        shutdown_tx,
        shutdown_rx,
    } = parts;
    let store_url = config.store_url();
    let lease = LeaseTiming::from_lease(config.store.lease.std());
    let holder = config
        .store
        .engine_id
        .clone()
        .unwrap_or_else(|| engine_id(addr));
    metrics.prime(&config);
    let opened = async {
        let owner = Owner::this_process(Some(addr.to_string()));
        let store = Store::open_as(&store_url, &owner).await?;
        let ack_keys = AckKeys::new(store.clone());
        match Setup::build(config, &ack_keys).await {
            Ok(setup) => anyhow::Ok((setup, store, ack_keys)),
            Err(e) => {
                store.close().await;
                Err(e.into())
            }
        }
    }
    .await;
    let (setup, store, ack_keys) = match opened {
        Ok(opened) => opened,
        Err(e) => return Err((e, shutdown_tx)),
    };
    let clock = options.clock.clone();
    let shared = store.backend() == Backend::Postgres;
    // With PostgreSQL several engines may share the store: inputs an engine takes while
    // another leads go through the store's inbox.
    let engine = EngineHandle::new(shared.then(|| store.clone()), clock.clone());
    let (setup_tx, setup_rx) = watch::channel(Arc::clone(&setup));
    let (role_tx, role_rx) = watch::channel(Leadership::FOLLOWER);
    let fence = if shared {
        Fence::new()
    } else {
        Fence::forever()
    };
    // Set by failed writes of the engine loop and the delivery worker; read by /-/ready.
    let health = StoreHealth::of(&store);
    let leader = LeaderContext {
        store: store.clone(),
        engine: engine.clone(),
        clock: clock.clone(),
        metrics: Arc::clone(&metrics),
        setup: setup_rx.clone(),
        holder: holder.clone(),
        shared,
        fence: Arc::clone(&fence),
        health: health.clone(),
    };
    let mut tasks = Vec::new();
    // This process, among any others under the same engine id (see `store::leader`).
    let instance = uuid::Uuid::new_v4().simple().to_string();
    if shared {
        if let Err(e) = leadership::claim_engine_id(&store, &holder, &instance, lease).await {
            store.close().await;
            return Err((e.into(), shutdown_tx));
        }
    }
    let initial_role = if shared {
        // The first attempt at the lease decides this engine's role before it serves.
        let sent = leadership::RealInstant::now();
        match store
            .acquire_or_renew(&holder, &instance, lease.lease.as_millis() as i64)
            .await
        {
            Ok(Some(term)) => {
                fence.extend(sent, lease.lease - lease.margin);
                leadership::publish_fence(&fence, &metrics);
                leadership::publish_term_start(&fence, &metrics, sent);
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
        match leader.start(initial_role.term).await {
            Ok(services) => Some(services),
            Err(e) => return Err((e, shutdown_tx)),
        }
    } else {
        None
    };
    if shared {
        tasks.push(tokio::spawn(leadership::run_lease(
            store.clone(),
            holder.clone(),
            instance,
            lease,
            Arc::clone(&fence),
            role_tx,
            Arc::clone(&metrics),
            shutdown_rx.clone(),
        )));
    }
    let supervisor = tokio::spawn(supervise(
        leader,
        services,
        role_rx.clone(),
        shutdown_rx.clone(),
    ));

    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(8);
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        engine: engine.clone(),
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        setup: setup_rx.clone(),
        ready: Arc::clone(&ready),
        store_health: health,
        clock: clock.clone(),
        reload: reload_tx,
        role: role_rx,
        engine_id: Arc::from(holder.as_str()),
    };
    tasks.push(tokio::spawn(reload_loop(
        options.config_path.clone(),
        ack_keys,
        reload_rx,
        setup_tx,
        engine.clone(),
        Arc::clone(&metrics),
        shutdown_rx.clone(),
    )));

    gate.open(api::router(state.clone()));
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success_timestamp_seconds
        .set(chrono::Utc::now().timestamp() as f64);
    ready.store(true, Ordering::Release);
    tracing::info!(%addr, engine = %holder, leader = initial_role.leader, "tocsin is ready");
    Ok(Running {
        addr,
        state,
        metrics,
        shutdown: shutdown_tx,
        tasks,
        supervisor,
    })
}

/// A name for this engine in the lease: its host and the address it serves on. Two engines
/// cannot serve on one host and address at once, and an engine restarted in place (after a
/// crash, by systemd) is the same holder, so it takes its lease back as soon as it has seen
/// that nobody renews it, instead of waiting for it to run out (`claim_engine_id`).
fn engine_id(addr: SocketAddr) -> String {
    let host = crate::store::host_name().unwrap_or_else(|| "tocsin".into());
    format!("{host}@{addr}")
}

/// What the leader's services are built from.
struct LeaderContext {
    store: Store,
    engine: EngineHandle,
    clock: Clock,
    metrics: Arc<Metrics>,
    setup: watch::Receiver<Arc<Setup>>,
    holder: String,
    shared: bool,
    fence: Arc<Fence>,
    health: StoreHealth,
}

/// The tasks that only the leader runs: the engine loop (rules, timers), delivery, probes
/// and pulls, and the inbox reader.
struct LeaderServices {
    stop: watch::Sender<bool>,
    engine_task: JoinHandle<Core>,
    tasks: Vec<JoinHandle<()>>,
}

impl LeaderContext {
    /// Take over: load the state from the store and start everything the leader runs.
    async fn start(&self, term: i64) -> Result<LeaderServices> {
        let store = if self.shared {
            self.store.fenced(&self.holder, term)
        } else {
            self.store.clone()
        };
        let snapshot = store.load().await.context("loading state from the store")?;
        let setup = Arc::clone(&self.setup.borrow());
        let now = self.clock.now();
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
        let (pages_tx, pages_rx) = mpsc::unbounded_channel::<Vec<Page>>();
        let inputs = self.engine.attach();
        let engine_task = tokio::spawn(runtime::run_loop(
            core,
            inputs,
            LoopParts {
                store,
                clock: self.clock.clone(),
                metrics: Arc::clone(&self.metrics),
                pages: pages_tx,
                shutdown: stop_rx.clone(),
                health: self.health.clone(),
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
                }),
                health: self.health.clone(),
            },
        )];
        tasks.push(crate::sources::spawn(crate::sources::SourceParts {
            engine: self.engine.clone(),
            clock: self.clock.clone(),
            metrics: Arc::clone(&self.metrics),
            setup: self.setup.clone(),
            shutdown: stop_rx.clone(),
            store: self.store.clone(),
        }));
        if self.shared {
            tasks.push(tokio::spawn(read_inbox(
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
        self.engine_task.await.ok()
    }
}

/// Start the leader's services when this engine takes the lease, stop them when it loses it;
/// returns the last core at shutdown (for tests).
async fn supervise(
    leader: LeaderContext,
    mut services: Option<LeaderServices>,
    mut role: watch::Receiver<Leadership>,
    mut shutdown: watch::Receiver<bool>,
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
    last_core
}

/// The leader applies inputs other engines took (pushes, CRIs, heartbeats, acks); each is
/// marked done with its reply in the same transaction as its effects.
async fn read_inbox(
    store: Store,
    engine: EngineHandle,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let mut after = 0;
    let mut last_prune = tokio::time::Instant::now();
    loop {
        let mut full = false;
        match store.inbox_pending(after, 256).await {
            Ok(rows) => {
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
            Err(e) => tracing::warn!(error = %e, "cannot read the inbox"),
        }
        if last_prune.elapsed() > std::time::Duration::from_secs(60) {
            last_prune = tokio::time::Instant::now();
            let _ = store
                .inbox_prune(clock.now() - chrono::Duration::hours(1))
                .await;
        }
        let wait = if full { 0 } else { 20 };
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
        }
    }
}

/// Reload requests (API and SIGHUP): a bad config is refused whole and the old one runs on.
async fn reload_loop(
    config_path: PathBuf,
    ack_keys: AckKeys,
    mut requests: mpsc::Receiver<ReloadRequest>,
    setup_tx: watch::Sender<Arc<Setup>>,
    engine: EngineHandle,
    metrics: Arc<Metrics>,
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
                tracing::info!("config reloaded");
            }
            Err(why) => {
                metrics.config_last_reload_successful.set(0);
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
        .map_err(|e| format!("{e:#}"))?;
    engine
        .send(Input::Reload(Arc::clone(&setup)))
        .await
        .map_err(|e| e.to_string())?;
    setup_tx.send_replace(setup);
    Ok(())
}

/// `tocsin run`: start, then wait for Ctrl-C (SIGINT) or SIGTERM; SIGHUP reloads.
///
/// Either signal stops the engine once, whenever it comes. During start-up the start is
/// given up where it is: nothing has been paged yet, and what it did (the port bound, the
/// store opened, migrated or read) is undone by closing it, a migration by its transaction.
/// After start-up the engine drains (`Running::stop`); a second signal while it drains ends
/// the process at once, as an error.
pub async fn run(options: Options) -> Result<()> {
    // Installed before anything else: a signal during start-up must not kill the process
    // (the default action of all three) but stop it, and a SIGHUP then is a reload to come.
    let mut signals = Signals::install()?;
    let running = tokio::select! {
        started = start(options) => started?,
        name = signals.stop() => {
            tracing::info!("{name} during start-up: stopping");
            tracing::info!("stopped cleanly");
            return Ok(());
        }
    };
    let reload = running.state.reload.clone();
    let name = loop {
        match signals.next().await {
            Signal::Stop(name) => break name,
            Signal::Reload => {
                tracing::info!("SIGHUP: reloading the config");
                let (tx, rx) = tokio::sync::oneshot::channel();
                if reload.send(tx).await.is_ok() {
                    let _ = rx.await;
                }
            }
        }
    };
    tracing::info!("{name}: shutting down (a second signal stops at once)");
    tokio::select! {
        () = async { running.stop().await; } => {}
        again = signals.stop() => anyhow::bail!(
            "{again} while shutting down: stopped at once; pages in flight may go out again \
             after the next start, with the same X-Tocsin-Delivery"
        ),
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The signals `tocsin run` answers.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// The next SIGINT or SIGTERM, by name; a SIGHUP meanwhile waits for [`Signals::next`].
    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Stop("SIGINT"),
            _ = self.terminate.recv() => Signal::Stop("SIGTERM"),
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}

enum Signal {
    Stop(&'static str),
    Reload,
}
