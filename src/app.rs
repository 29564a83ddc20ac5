//! The daemon's wiring: bind the port, open the store, build the setup, and hand each stage
//! its parts: the leader's services and the lease (`engine::leader`), reloads on SIGHUP or
//! `POST /-/reload` (`engine::reload`), the HTTP API (`api`). `tocsin run` (`cli::run`)
//! adds the signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::engine::forward::{self, Forwarder};
use crate::engine::leader::LeaderContext;
use crate::engine::leadership::{default_engine_id, Fence, LeaseTiming};
use crate::engine::reload::{reload_loop, ReloadRequest};
use crate::engine::secrets::AckKeys;
use crate::engine::watchdog::{self, LoopPulse};
use crate::engine::{Core, EngineHandle, Setup};
use crate::metrics::Metrics;
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
        .unwrap_or_else(|| default_engine_id(addr));
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
    // another leads are handed to the leader, or go through the store's inbox.
    let forward = if shared {
        match forward::shared_key(&store).await {
            Ok(key) => store
                .leader_urls()
                .map(|leader| Forwarder::new(key, leader, metrics.follower_inputs_total.clone())),
            Err(e) => {
                store.close().await;
                return Err((e.into(), shutdown_tx));
            }
        }
    } else {
        None
    };
    let advertise_url = setup.config.advertise_url(addr);
    let engine = EngineHandle::new(shared.then(|| store.clone()), forward, clock.clone());
    let (setup_tx, setup_rx) = watch::channel(Arc::clone(&setup));
    let fence = if shared {
        Fence::new()
    } else {
        Fence::forever()
    };
    let health = StoreHealth::of(&store);
    let pulse = LoopPulse::new();
    let leader = LeaderContext {
        store: store.clone(),
        engine: engine.clone(),
        clock: clock.clone(),
        metrics: Arc::clone(&metrics),
        setup: setup_rx.clone(),
        holder: holder.clone(),
        shared,
        fence,
        health: health.clone(),
        pulse: Arc::clone(&pulse),
        advertise_url,
    };
    let leading = match leader.lead(lease, shutdown_rx.clone()).await {
        Ok(leading) => leading,
        Err(e) => return Err((e.into(), shutdown_tx)),
    };
    let mut tasks = leading.tasks;
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(8);
    let ready = Arc::new(AtomicBool::new(false));
    let (refusal_tx, refusal_rx) = watch::channel(None);
    let state = AppState {
        engine: engine.clone(),
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        setup: setup_rx.clone(),
        ready: Arc::clone(&ready),
        store_health: health,
        clock: clock.clone(),
        reload: reload_tx,
        role: leading.role,
        engine_id: Arc::from(holder.as_str()),
        started_at: clock.now(),
        last_refusal: refusal_rx,
    };
    tasks.push(tokio::spawn(reload_loop(
        options.config_path.clone(),
        ack_keys,
        reload_rx,
        setup_tx,
        engine.clone(),
        Arc::clone(&metrics),
        refusal_tx,
        shutdown_rx.clone(),
    )));

    tasks.push(tokio::spawn(watchdog::run_outbound(
        watchdog::WatchdogParts {
            setup: setup_rx.clone(),
            pulse: Arc::clone(&pulse),
            health: state.store_health.clone(),
            metrics: Arc::clone(&metrics),
            shutdown: shutdown_rx.clone(),
        },
    )));
    tasks.push(tokio::spawn(watchdog::feed_systemd(
        Arc::clone(&pulse),
        shutdown_rx.clone(),
    )));

    gate.open(api::router(state.clone()));
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success_timestamp_seconds
        .set(chrono::Utc::now().timestamp() as f64);
    ready.store(true, Ordering::Release);
    // systemd's Type=notify: /-/ready answers 200 from now on.
    watchdog::notify_systemd(sd_notify::NotifyState::Ready);
    tracing::info!(%addr, engine = %holder, leader = leading.first.leader, "tocsin is ready");
    Ok(Running {
        addr,
        state,
        metrics,
        shutdown: shutdown_tx,
        tasks,
        supervisor: leading.supervisor,
    })
}
