//! Shared harness for end-to-end tests: an engine started in-process (or as the real
//! binary) on 127.0.0.1 with a config written to a temporary folder.

pub mod api;
pub mod operate;
pub mod paging;
pub mod peers;
pub mod reliability;
pub mod sources;
pub mod upgrade;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tocsin::app::{self, Options, Running};
use tocsin::engine::Clock;

/// A catalog and sections most tests share; append routes, policies and so on.
pub const CATALOG: &str = r#"
catalog:
  services:
    - { name: storage, sla: 99.9, regions: [china-east, china-north] }
    - { name: sqldb, regions: [china-east, china-north] }
  customers:
    - { id: contoso, subscriptions: [ { service: storage, regions: [china-east] } ] }
    - { id: fabrikam, subscriptions: [ { service: storage }, { service: sqldb, regions: [china-east] } ] }
    - { id: northwind, subscriptions: [ { service: sqldb } ] }
"#;

/// The default rules shipped in `rules/default.yaml`.
pub fn default_rules() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
        .expect("rules/default.yaml")
}

/// A folder with `config.yaml` and `rules/*.yaml`; removed when dropped.
pub struct TestDir {
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database of this test, when the suite runs on PostgreSQL.
    pub pg_database: Option<String>,
}

/// `TOCSIN_TEST_STORE=postgres` runs the suite's engines on PostgreSQL (the server of
/// [`PG_URL_VAR`], a database of their own per test) instead of a SQLite file.
pub fn suite_on_postgres() -> bool {
    std::env::var("TOCSIN_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The variable that names the PostgreSQL server of the tests.
pub const PG_URL_VAR: &str = "TOCSIN_TEST_PG_URL";

/// The PostgreSQL server the tests use: the URL in `TOCSIN_TEST_PG_URL`, whose user may
/// create databases. `./scripts/test-all.sh` starts a throwaway cluster of its own on every
/// run and sets it; a test that needs PostgreSQL without it fails saying so.
pub fn pg_server_url() -> reqwest::Url {
    let Ok(text) = std::env::var(PG_URL_VAR) else {
        panic!(
            "{PG_URL_VAR} is not set, and this test needs a PostgreSQL server. Run it through \
             ./scripts/throwaway-postgres.sh run cargo test ..., which starts a throwaway \
             cluster and sets it, or set {PG_URL_VAR}=postgres://USER@127.0.0.1:PORT/DB \
             (a server whose USER may create databases; each test makes its own and drops it)"
        )
    };
    reqwest::Url::parse(&text).unwrap_or_else(|e| {
        panic!("{PG_URL_VAR}={text:?} is not a URL ({e}); expected postgres://USER@HOST:PORT/DB")
    })
}

/// The URL of database `name` on the tests' PostgreSQL server.
pub fn pg_database_url(name: &str) -> String {
    let mut url = pg_server_url();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn psql(sql: &str) {
    let output = Command::new("psql")
        .arg("-d")
        .arg(pg_server_url().as_str())
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (PostgreSQL client, Debian package postgresql-client)");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Run one SQL statement on the store at `url`: to set up what an earlier version left.
pub async fn execute(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

/// A store at `url` as an engine of an earlier version left it: `backend`'s migrations up to
/// `last` (numbered from 1) applied, none after.
pub async fn store_of_an_earlier_version(url: &str, backend: &str, last: i64) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut before = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    let older: Vec<_> = before
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    assert_eq!(older.len() as i64, last);
    before.migrations = older.into();
    let connect = if backend == "sqlite" {
        format!("{url}?mode=rwc")
    } else {
        url.to_string()
    };
    let old = sqlx::AnyPool::connect(&connect).await.unwrap();
    before.run(&old).await.unwrap();
    old
}

/// The real `tocsin` with `args`, in the working directory `cwd`, to its end (at most 60 s):
/// its exit status (-1 for a signal), stdout and stderr.
pub async fn run_tocsin(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(args)
            .current_dir(cwd)
            .env("TOCSIN_LOG", "info")
            // Times print in the reader's zone: the tests read UTC on any machine.
            .env("TZ", "UTC")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("tocsin finishes within 60 s")
    .expect("tocsin runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

impl TestDir {
    /// `config` is the YAML of config.yaml; `rule_files` of `rules/NAME`. The config should
    /// say `rule_files: ["rules/*.yaml"]` and `store: { url: "sqlite://data/tocsin.db" }`
    /// (added when missing).
    pub fn new(config: &str, rule_files: &[(&str, &str)]) -> TestDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        let mut text = config.to_string();
        let mut pg_database = None;
        if !text.contains("\nstore:") && !text.starts_with("store:") {
            if suite_on_postgres() {
                let name = format!("tocsin_test_{}", uuid::Uuid::new_v4().simple());
                psql(&format!("CREATE DATABASE {name}"));
                text.push_str(&format!(
                    "\nstore: {{ url: \"{}\" }}\n",
                    pg_database_url(&name)
                ));
                pg_database = Some(name);
            } else {
                text.push_str("\nstore: { url: \"sqlite://data/tocsin.db\" }\n");
            }
        }
        if !text.contains("rule_files:") {
            text.push_str("\nrule_files: [ \"rules/*.yaml\" ]\n");
            if rule_files.is_empty() {
                // A pattern that matches no file is refused: an engine without rules has an
                // empty rule file.
                std::fs::write(dir.path().join("rules/none.yaml"), "groups: []\n").unwrap();
            }
        }
        std::fs::write(dir.path().join("config.yaml"), text).unwrap();
        for (name, body) in rule_files {
            std::fs::write(dir.path().join("rules").join(name), body).unwrap();
        }
        TestDir { dir, pg_database }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// The store URL this folder's config uses.
    pub fn store_url(&self) -> String {
        match &self.pg_database {
            Some(name) => pg_database_url(name),
            None => format!("sqlite://{}/data/tocsin.db", self.path().display()),
        }
    }

    pub fn write(&self, relative: &str, body: &str) {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, body).unwrap();
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_database {
            psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// An engine running in this process.
pub struct TestEngine {
    pub running: Running,
    pub url: String,
    pub http: reqwest::Client,
}

impl TestEngine {
    pub async fn start(dir: &TestDir) -> TestEngine {
        Self::start_with(dir, Clock::System).await
    }

    pub async fn start_with(dir: &TestDir, clock: Clock) -> TestEngine {
        let options = Options {
            config_path: dir.config_path(),
            clock,
            listen: Some("127.0.0.1:0".into()),
        };
        let running = app::start(options).await.expect("engine starts");
        let url = running.url();
        TestEngine {
            running,
            url,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        get_json(&self.http, &format!("{}{path}", self.url)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_json(&self.http, &format!("{}{path}", self.url), body).await
    }
}

/// The real `tocsin` binary, started with `run --config DIR/config.yaml --listen 127.0.0.1:PORT`.
pub struct EngineProcess {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
    config: PathBuf,
    port: u16,
}

impl EngineProcess {
    pub fn spawn(dir: &TestDir, port: u16) -> EngineProcess {
        Self::spawn_config(&dir.config_path(), port)
    }

    fn spawn_config(config: &Path, port: u16) -> EngineProcess {
        let folder = config.parent().expect("config.yaml in a folder");
        let log = folder.join(format!(
            "engine-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TOCSIN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn tocsin");
        EngineProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            config: config.to_path_buf(),
            port,
        }
    }

    /// Wait until /-/ready answers 200 (bounded; see [`wait_ready_or_start_again`]).
    pub async fn wait_ready(&mut self) {
        if !wait_ready_or_start_again(self, Duration::from_secs(15)).await {
            panic!(
                "engine not ready; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }

    pub fn kill(&mut self) {
        // SIGKILL: no chance to clean up, as in a crash.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Send signal `name` (`INT`, `TERM`, …) to `child`.
pub fn send_signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {}", child.id());
}

/// Wait at most `timeout` for `child` to exit.
pub async fn exit_of(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    eventually(timeout, || {
        let status = child.try_wait().ok().flatten();
        async move { status }
    })
    .await
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` every 50 ms until it returns Some, at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL database of its own for one test, on the tests' server (see
/// [`pg_server_url`]), dropped by [`PgDatabase::drop_db`].
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        use sqlx::Connection;
        let name = format!("tocsin_test_{}", uuid::Uuid::new_v4().simple());
        let server = pg_server_url();
        let mut admin = sqlx::PgConnection::connect(server.as_str())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {PG_URL_VAR}={server}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        PgDatabase {
            url: pg_database_url(&name),
            name,
        }
    }

    pub async fn drop_db(self) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(pg_server_url().as_str())
            .await
            .expect("PostgreSQL");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("drop database");
        admin.close().await.ok();
    }
}

/// A sample's value in a Prometheus text exposition (`series` with its labels, as printed).
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// POST alerts (a JSON array as Alertmanager takes it) to an engine's `/api/v2/alerts`.
pub async fn push_alerts(http: &reqwest::Client, url: &str, alerts: Value) {
    let response = http
        .post(format!("{url}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .expect("push");
    assert!(
        response.status().is_success(),
        "push to {url} answered {}",
        response.status()
    );
}

/// GET `url` (an engine's API or dashboard): the status and the body, as JSON when it is.
pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POST `body` as JSON to `url`: the status and the answer, as JSON when it is.
pub async fn post_json(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = http.post(url).json(body).send().await.expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An engine's incidents, oldest first.
pub async fn list_incidents(http: &reqwest::Client, url: &str) -> Vec<Value> {
    let response = http
        .get(format!("{url}/api/v1/incidents"))
        .send()
        .await
        .expect("list");
    let page: Value = response.json().await.expect("JSON page");
    let mut list: Vec<Value> = page["incidents"].as_array().cloned().expect("a list");
    list.reverse();
    list
}

impl Started for EngineProcess {
    fn ready_url(&self) -> String {
        format!("{}/-/ready", self.url)
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn port_was_taken(&self) -> bool {
        engine_port_taken(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn said_ready(&self) -> bool {
        engine_said_ready(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn start_again(&mut self) {
        *self = Self::spawn_config(&self.config, self.port);
    }
}

/// The engine says it is ready (its `/-/ready` answers 200 from then on).
pub fn engine_said_ready(log: &str) -> bool {
    log.contains("tocsin is ready")
}

/// The engine could not listen: its port is another socket's.
pub fn engine_port_taken(log: &str) -> bool {
    log.contains("cannot listen on") && log.contains("Address already in use")
}

/// A process a test started on a port from [`free_port`], which it can start again.
pub trait Started {
    /// Its `/-/ready`.
    fn ready_url(&self) -> String;
    /// It has exited.
    fn exited(&mut self) -> bool;
    /// It says it could not listen: its port was another socket's.
    fn port_was_taken(&self) -> bool;
    /// Start it again, on the same port.
    fn start_again(&mut self);
    /// The 200 came from this process, not from another test's that holds the port: an
    /// engine says so in its log ("tocsin is ready").
    fn said_ready(&self) -> bool {
        true
    }
}

/// Poll `process`'s `/-/ready` until it answers 200, for at most `wait` from its last start;
/// false if it never did. `free_port` lets the port go before the process binds it, and a
/// socket of another test (a client's, from the same range) can take it meanwhile: a process
/// that exited for that is started again on the same port every 200 ms, for up to 15 s,
/// until that socket lets go of it.
pub async fn wait_ready_or_start_again(process: &mut impl Started, wait: Duration) -> bool {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let polls = wait.as_millis() / 50;
    let mut starts = 0;
    let mut polled = 0;
    while polled < polls {
        polled += 1;
        if let Ok(r) = http.get(process.ready_url()).send().await {
            if r.status().is_success() && process.said_ready() {
                return true;
            }
        }
        if process.exited() {
            if !process.port_was_taken() || starts == 75 {
                return false;
            }
            starts += 1;
            polled = 0;
            tokio::time::sleep(Duration::from_millis(200)).await;
            process.start_again();
            continue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The last line of `tocsin check`'s errors: "1 error", "3 errors".
pub fn is_error_count(line: &str) -> bool {
    let mut words = line.split(' ');
    matches!(
        (words.next(), words.next(), words.next()),
        (Some(n), Some("error" | "errors"), None) if n.parse::<usize>().is_ok()
    )
}
