//! The cluster benchmark's PostgreSQL: a throwaway server of its own
//! (`scripts/throwaway-postgres.sh`, as the tests use), a fresh database for each run, and
//! three tocsin engines on one database.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{free_port, EngineDir, Tocsin};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/throwaway-postgres.sh")
}

/// The throwaway server, stopped and removed when dropped (a failed run's panic included).
pub struct Postgres {
    dir: String,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    url: String,
    databases: std::sync::atomic::AtomicUsize,
}

impl Postgres {
    /// Start one; panics with the script's message when it cannot.
    pub fn start() -> Postgres {
        let out = Command::new(script())
            .arg("start")
            .output()
            .expect("run scripts/throwaway-postgres.sh");
        if !out.status.success() {
            panic!(
                "cluster: the throwaway PostgreSQL did not start:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let url = std::fs::read_to_string(format!("{dir}/url"))
            .expect("the server's url file")
            .trim()
            .to_string();
        Postgres {
            dir,
            url,
            databases: Default::default(),
        }
    }

    /// A new empty database on the server; its URL.
    pub async fn database(&self) -> String {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("bench_{n}");
        self.admin(&format!("CREATE DATABASE {name}")).await;
        let base = self.url.rsplit_once('/').expect("a database URL").0;
        format!("{base}/{name}")
    }

    /// Drop a database [`Postgres::database`] made, once its engines have stopped, so that
    /// the server's work on what a run wrote there (autovacuum) stays out of later runs.
    pub async fn drop_database(&self, url: &str) {
        let name = url.rsplit_once('/').expect("a database URL").1;
        self.admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }

    /// Run `sql` on the server's own database (statements outside any one database).
    async fn admin(&self, sql: &str) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect to the throwaway PostgreSQL");
        sqlx::query(sql)
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        admin.close().await.ok();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = Command::new(script())
            .args(["stop", &self.dir])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            eprintln!(
                "cluster: stopping the throwaway PostgreSQL in {} failed",
                self.dir
            );
        }
    }
}

/// Three engines (`e1`, `e2`, `e3`) on one database, each with a folder and port of its own;
/// stopped when dropped.
pub struct Cluster {
    dirs: Vec<EngineDir>,
    ports: Vec<u16>,
    pub engines: Vec<Option<Tocsin>>,
}

pub const ENGINES: usize = 3;

impl Cluster {
    /// `config` is the engines' config without `store:`; `store` their store's URL; `lease`
    /// the leader's lease in seconds. The first engine starts first, so it leads.
    pub async fn start(store: &str, lease: u64, config: &str, rules: &[(&str, &str)]) -> Cluster {
        let mut cluster = Cluster {
            dirs: Vec::new(),
            ports: Vec::new(),
            engines: Vec::new(),
        };
        for i in 0..ENGINES {
            let text = format!(
                "{config}\nstore: {{ url: \"{store}\", lease: {lease}s, engine_id: e{} }}\n",
                i + 1
            );
            cluster.dirs.push(EngineDir::new(&text, rules));
            cluster.ports.push(free_port());
            cluster.engines.push(None);
            cluster.restart(i).await;
        }
        cluster
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    pub fn urls(&self) -> Vec<String> {
        (0..ENGINES).map(|i| self.url(i)).collect()
    }

    /// (Re)start engine `i` on its folder and port and wait until it is ready.
    pub async fn restart(&mut self, i: usize) {
        let engine = self.dirs[i].start(self.ports[i]);
        if !engine.wait_ready().await {
            panic!(
                "cluster: engine e{} never became ready:\n{}",
                i + 1,
                engine.log()
            );
        }
        self.engines[i] = Some(engine);
    }

    /// SIGKILL engine `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut engine) = self.engines[i].take() {
            engine.proc.sigkill();
        }
    }

    /// The engine whose `/-/ready` says it leads, when exactly one does.
    pub async fn leader(&self, http: &reqwest::Client) -> Option<usize> {
        let mut leaders = Vec::new();
        for i in 0..ENGINES {
            if self.engines[i].is_none() {
                continue;
            }
            if role(http, &self.url(i)).await.as_deref() == Some("leader") {
                leaders.push(i);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Wait (at most `timeout`) until exactly one engine leads.
    pub async fn wait_leader(&self, http: &reqwest::Client, timeout: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Some(i) = self.leader(http).await {
                return Some(i);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The last lines of every engine's log, for a failed run's message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (i, engine) in self.engines.iter().enumerate() {
            if let Some(engine) = engine {
                let log = engine.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(10)..].join("\n");
                text.push_str(&format!("--- e{}:\n{tail}\n", i + 1));
            }
        }
        text
    }
}

/// `leader` or `follower`, as `/-/ready` says in words.
async fn role(http: &reqwest::Client, url: &str) -> Option<String> {
    let text = http
        .get(format!("{url}/-/ready"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    if text.contains(": leader") {
        Some("leader".into())
    } else if text.contains(": follower") {
        Some("follower".into())
    } else {
        None
    }
}
