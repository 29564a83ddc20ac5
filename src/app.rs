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
use crate::config::{self, Config};
use crate::engine::runtime::{self, LoopParts};
use crate::engine::{Clock, Core, EngineHandle, Input, Setup};
use crate::metrics::Metrics;
use crate::paging::Page;
use crate::store::{Store, StoreHealth};

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
    engine_task: JoinHandle<Core>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.state.engine
    }

    /// Stop every task and write what is left; returns the core for inspection.
    pub async fn stop(self) -> Core {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let core = self.engine_task.await.expect("engine loop does not panic");
        self.state.store.close().await;
        core
    }
}

/// Read a secret file: its content without the trailing newline.
pub fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

/// The ack-link key: from `server.ack_secret_file`, else generated once under `data/`.
fn ack_key(config: &Config) -> Result<Vec<u8>> {
    if let Some(file) = &config.server.ack_secret_file {
        return read_secret(&config.resolve_path(file));
    }
    let path = config.data_dir().join("ack-link.key");
    if path.exists() {
        return read_secret(&path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key: [u8; 32] = rand::random();
    let text = hex::encode(key);
    write_private(&path, text.as_bytes())?;
    Ok(text.into_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// API bearer tokens, one per line (blank lines and `#` comments skipped).
fn api_tokens(config: &Config) -> Result<Vec<String>> {
    let Some(auth) = &config.server.auth else {
        return Ok(Vec::new());
    };
    let path = config.resolve_path(&auth.tokens_file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read tokens file {}", path.display()))?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    anyhow::ensure!(
        !tokens.is_empty(),
        "tokens file {} holds no token",
        path.display()
    );
    Ok(tokens)
}

/// Build the compiled setup from a config, reading the secrets it names.
pub fn build_setup(config: Config) -> Result<Arc<Setup>> {
    let key = ack_key(&config)?;
    Ok(Setup::new(config, Some(key)))
}

/// Start an engine: store, core, API and every task.
///
/// The port is bound first and answers at once: `/-/healthy` 200 and `/-/ready` 503 while the
/// store opens and the state loads (a slow PostgreSQL, a long migration), and a port clash
/// fails before anything else is touched.
pub async fn start(options: Options) -> Result<Running> {
    let config =
        config::load(&options.config_path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let metrics = Arc::new(Metrics::new());
    let tokens = api_tokens(&config)?;
    let listen = options
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let gate = api::Gate::new(api::admin::starting_router(Arc::clone(&metrics)));
    let mut server_shutdown = shutdown_rx.clone();
    let app = gate.clone().into_router();
    let server = tokio::spawn(async move {
        // With the peer address, for the per-client rate limit of the ingest endpoints.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    let parts = StartParts {
        options,
        config,
        metrics,
        tokens,
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
    tokens: Vec<String>,
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
        tokens,
        addr,
        shutdown_tx,
        shutdown_rx,
    } = parts;
    let store_url = config.store_url();
    metrics.prime(&config);
    let opened = async {
        let setup = build_setup(config)?;
        let store = Store::open(&store_url).await.context("opening the store")?;
        let snapshot = store.load().await.context("loading state from the store")?;
        anyhow::Ok((setup, store, snapshot))
    }
    .await;
    let (setup, store, snapshot) = match opened {
        Ok(opened) => opened,
        Err(e) => return Err((e, shutdown_tx)),
    };
    let clock = options.clock.clone();
    let now = clock.now();
    let mut core = Core::new(Arc::clone(&setup), Arc::clone(&metrics), now);
    tracing::info!(
        incidents = snapshot.incidents.len(),
        rule_states = snapshot.rule_states.len(),
        "state loaded from the store"
    );
    // Also sets the open-incident and queue gauges from what was stored.
    core.restore(snapshot, now);

    let (setup_tx, setup_rx) = watch::channel(Arc::clone(&setup));
    let (pages_tx, pages_rx) = mpsc::unbounded_channel::<Vec<Page>>();
    let (engine, inputs) = runtime::channel();
    // Set by failed writes of the engine loop and the delivery worker; read by /-/ready.
    let health = StoreHealth::new();
    let engine_task = tokio::spawn(runtime::run_loop(
        core,
        inputs,
        LoopParts {
            store: store.clone(),
            clock: clock.clone(),
            metrics: Arc::clone(&metrics),
            pages: pages_tx,
            shutdown: shutdown_rx.clone(),
            health: health.clone(),
        },
    ));

    let mut tasks = Vec::new();
    tasks.push(crate::paging::notify::spawn(
        crate::paging::notify::DeliveryParts {
            store: store.clone(),
            engine: engine.clone(),
            clock: clock.clone(),
            metrics: Arc::clone(&metrics),
            setup: setup_rx.clone(),
            pages: pages_rx,
            shutdown: shutdown_rx.clone(),
            health: health.clone(),
        },
    ));
    tasks.push(crate::sources::spawn(crate::sources::SourceParts {
        engine: engine.clone(),
        clock: clock.clone(),
        metrics: Arc::clone(&metrics),
        setup: setup_rx.clone(),
        shutdown: shutdown_rx.clone(),
    }));

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
        tokens: Arc::new(tokens),
    };
    tasks.push(tokio::spawn(reload_loop(
        options.config_path.clone(),
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
    // One engine on its store evaluates rules and sends pages: it is the leader.
    metrics.leader.set(1);
    ready.store(true, Ordering::Release);
    tracing::info!(%addr, "tocsin is ready");
    Ok(Running {
        addr,
        state,
        metrics,
        shutdown: shutdown_tx,
        tasks,
        engine_task,
    })
}

/// Reload requests (API and SIGHUP): a bad config is refused whole and the old one runs on.
async fn reload_loop(
    config_path: PathBuf,
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
        let result = reload_once(&config_path, &setup_tx, &engine).await;
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
    setup_tx: &watch::Sender<Arc<Setup>>,
    engine: &EngineHandle,
) -> Result<(), String> {
    let config = config::load(config_path).map_err(|e| e.to_string())?;
    let old = setup_tx.borrow().config.store_url();
    if config.store_url() != old {
        return Err("store.url cannot change on reload; restart the engine".into());
    }
    let setup = build_setup(config).map_err(|e| format!("{e:#}"))?;
    engine
        .send(Input::Reload(Arc::clone(&setup)))
        .await
        .map_err(|e| e.to_string())?;
    setup_tx.send_replace(setup);
    Ok(())
}

/// `tocsin run`: start, then wait for Ctrl-C or SIGTERM; SIGHUP reloads.
pub async fn run(options: Options) -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Installed before starting: a SIGHUP that arrives while the store opens must not
        // kill the process (the default action of SIGHUP); it reloads once started.
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let running = start(options).await?;
        let reload = running.state.reload.clone();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if reload.send(tx).await.is_ok() {
                        let _ = rx.await;
                    }
                }
            }
        }
        tracing::info!("shutting down");
        running.stop().await;
    }
    #[cfg(not(unix))]
    {
        let running = start(options).await?;
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        running.stop().await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}
