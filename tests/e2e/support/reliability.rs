//! Helpers for the reliability and security tests: the real binary with its log, receivers
//! that record (and dedupe on `X-Tocsin-Delivery`), one that accepts and never answers, and
//! real store trouble (a size-limited tmpfs that fills up, an immutable database file on a
//! file system of the test's own).

pub mod crash;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{engine_port_taken, engine_said_ready, wait_ready_or_start_again, Started};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;

/// An HTTP client that never goes through a proxy and never waits long.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

// ----- the real binary --------------------------------------------------------------------

/// `tocsin run --config DIR/config.yaml --listen 127.0.0.1:PORT`, its stderr in a log file
/// that every start appends to.
pub struct Proc {
    pub child: Option<Child>,
    pub url: String,
    pub port: u16,
    pub log: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    /// Where this start's output begins in the log.
    log_start: u64,
    /// Ready at least once: a start that fails later keeps what the log says before it.
    ready_once: bool,
}

impl Proc {
    /// Start with `TOCSIN_LOG=log_level` and extra environment variables.
    pub fn start(config: &Path, port: u16, log: &Path, env: &[(&str, &str)]) -> Proc {
        let mut proc = Proc {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            port,
            log: log.to_path_buf(),
            config: config.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_start: 0,
            ready_once: false,
        };
        proc.restart();
        proc
    }

    /// Start again (after a kill), on the same port and log.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.log_start = log.metadata().map_or(0, |m| m.len());
        let mut command = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("TOCSIN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("spawn tocsin"));
    }

    /// Wait until `/-/ready` answers 200 (bounded; see `wait_ready_or_start_again`).
    pub async fn wait_ready(&mut self) {
        if !wait_ready_or_start_again(self, Duration::from_secs(15)).await {
            panic!("tocsin not ready; log:\n{}", self.log_text());
        }
        self.ready_once = true;
    }

    /// What this start wrote to the log.
    fn log_since_start(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(self.log_start).unwrap_or(0).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Is the process still running?
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines at `level` (ERROR, WARN, INFO).
    pub fn log_lines(&self, level: &str) -> Vec<String> {
        let tag = format!(" {level} ");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&tag))
            .map(str::to_string)
            .collect()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = http()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_bytes(path, body.to_string().into_bytes()).await
    }

    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = http()
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The value of a metric series without labels, or with exactly these.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----- receivers ----------------------------------------------------------------------------

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Got {
    pub at: tokio::time::Instant,
    pub delivery: String,
    pub event: String,
    pub signature: String,
    pub path: String,
    pub raw: Bytes,
    pub body: Value,
}

impl Got {
    pub fn incident(&self) -> i64 {
        self.body["incident"]["id"].as_i64().unwrap_or(-1)
    }
}

#[derive(Default)]
struct Log {
    got: Vec<Got>,
    /// Distinct `X-Tocsin-Delivery` values, in the order first seen.
    seen: BTreeMap<String, usize>,
}

/// A webhook receiver on 127.0.0.1 that answers every POST with one status and records it;
/// it dedupes on `X-Tocsin-Delivery` as the contract asks receivers to.
pub struct Recorder {
    pub url: String,
    log: Arc<Mutex<Log>>,
    status: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn record(
    State((log, status)): State<(Arc<Mutex<Log>>, Arc<AtomicUsize>)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let got = Got {
        at: tokio::time::Instant::now(),
        delivery: header("x-tocsin-delivery"),
        event: header("x-tocsin-event"),
        signature: header("x-tocsin-signature"),
        path: uri.path().to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
    };
    let mut log = log.lock().unwrap();
    let n = log.seen.len();
    log.seen.entry(got.delivery.clone()).or_insert(n);
    log.got.push(got);
    StatusCode::from_u16(status.load(Ordering::Relaxed) as u16).unwrap()
}

impl Recorder {
    pub async fn start(status: u16) -> Recorder {
        let log = Arc::new(Mutex::new(Log::default()));
        let status = Arc::new(AtomicUsize::new(status as usize));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .route("/hook/{*rest}", axum::routing::post(record))
            .with_state((Arc::clone(&log), Arc::clone(&status)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder {
            url: format!("http://{addr}/hook"),
            log,
            status,
            task,
        }
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status as usize, Ordering::Relaxed);
    }

    /// Every request, in order (retries and re-sends included).
    pub fn got(&self) -> Vec<Got> {
        self.log.lock().unwrap().got.clone()
    }

    /// Requests per delivery id.
    pub fn per_delivery(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for got in self.got() {
            *out.entry(got.delivery).or_insert(0) += 1;
        }
        out
    }

    /// The first request of each delivery id: what a deduping receiver acts on.
    pub fn deduped(&self) -> Vec<Got> {
        let log = self.log.lock().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        log.got
            .iter()
            .filter(|g| seen.insert(g.delivery.clone()))
            .cloned()
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts TCP connections and never answers (nor closes them): a hung receiver.
pub struct Hang {
    pub url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hang {
    pub async fn start() -> Hang {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                held.push(stream);
            }
        });
        Hang {
            url: format!("http://{addr}/hook"),
            accepted,
            task,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Hang {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- real store trouble -------------------------------------------------------------------

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Set to 1 by someone without root to leave out the tests that mount file systems of their
/// own (they need root, or CAP_SYS_ADMIN); `scripts/test-all.sh` never sets it.
pub const WITHOUT_ROOT_VAR: &str = "TOCSIN_TEST_WITHOUT_ROOT";

/// Whether a test that mounts file systems of its own runs: yes, unless left out on purpose
/// with [`WITHOUT_ROOT_VAR`] (it then says so).
pub fn mounts_wanted(test: &str) -> bool {
    if std::env::var(WITHOUT_ROOT_VAR).is_ok_and(|v| v == "1") {
        eprintln!("{test}: left out, as {WITHOUT_ROOT_VAR}=1 asks (it mounts file systems)");
        return false;
    }
    true
}

/// Fail a test whose store trouble cannot be made here, saying why and what to do.
pub fn cannot_make(trouble: &str, why: &str) -> ! {
    panic!(
        "cannot make {trouble} here: {why}. This test mounts a file system of its own and \
         needs root (or CAP_SYS_ADMIN); run it as root, or set {WITHOUT_ROOT_VAR}=1 to leave \
         it out"
    )
}

/// A size-limited tmpfs mounted on a folder (needs root or CAP_SYS_ADMIN), unmounted when
/// dropped. `fill` takes every free byte with a file, so the filesystem is really full.
pub struct Tmpfs {
    pub dir: PathBuf,
    filler: PathBuf,
}

impl Tmpfs {
    /// Err (why) when mounting is not permitted here.
    pub fn mount(dir: &Path, megabytes: u32) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0755"),
                "tmpfs",
                &dir.to_string_lossy(),
            ],
        )?;
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
            filler: dir.join("filler"),
        })
    }

    /// Fill the filesystem to the last byte.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(&self.filler).unwrap();
        let block = vec![0xA5u8; 64 * 1024];
        let mut small = vec![0xA5u8; 512];
        while file.write_all(&block).is_ok() {}
        // Then the last bits that a whole block no longer fits into.
        while !small.is_empty() {
            if file.write_all(&small).is_err() {
                small.truncate(small.len() / 2);
            }
        }
        let _ = file.sync_all();
        // Really full: not one more byte goes in.
        let full = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.filler)
            .and_then(|mut f| f.write_all(&[0]).and_then(|()| f.sync_all()));
        assert!(full.is_err(), "{} is not full", self.dir.display());
    }

    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there does not keep the mount around.
        let _ = run("umount", &["-l", &self.dir.to_string_lossy()]);
    }
}

/// An ext4 file system of the test's own, in an image file mounted through a loop device
/// (needs root or CAP_SYS_ADMIN), unmounted when dropped. Its files can be made immutable
/// (`chattr +i`), which ext4 enforces even on descriptors opened before; tmpfs, which may
/// hold the temporary folder, does not.
///
/// A read-only mount cannot stand in: remounting read-only is refused while the engine
/// holds its database open for writing, and a read-only bind mount does not stop
/// descriptors opened before it.
pub struct Ext4 {
    pub dir: PathBuf,
}

impl Ext4 {
    /// Err (why) when it cannot be made or mounted here.
    pub fn mount(image: &Path, dir: &Path, megabytes: u64) -> Result<Ext4, String> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::File::create(image)
            .and_then(|f| f.set_len(megabytes * 1024 * 1024))
            .map_err(|e| format!("{}: {e}", image.display()))?;
        run("mkfs.ext4", &["-q", "-F", &image.to_string_lossy()])?;
        run(
            "mount",
            &[
                "-o",
                "loop",
                &image.to_string_lossy(),
                &dir.to_string_lossy(),
            ],
        )?;
        let fs = Ext4 {
            dir: dir.to_path_buf(),
        };
        fs.check_immutable_refuses_writes()?;
        Ok(fs)
    }

    /// A write through a descriptor opened before `chattr +i` fails: the trouble is real.
    fn check_immutable_refuses_writes(&self) -> Result<(), String> {
        use std::io::Write;
        let probe = self.dir.join("probe");
        let mut file = std::fs::File::create(&probe).map_err(|e| e.to_string())?;
        immutable(std::slice::from_ref(&probe), true)?;
        let written = file.write_all(b"x").and_then(|()| file.sync_all());
        immutable(std::slice::from_ref(&probe), false)?;
        std::fs::remove_file(&probe).map_err(|e| e.to_string())?;
        match written {
            Err(_) => Ok(()),
            Ok(()) => Err(format!(
                "{} took a write to an immutable file",
                self.dir.display()
            )),
        }
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there does not keep the mount around; the
        // loop device goes with the last reference.
        let _ = run("umount", &["-l", &self.dir.to_string_lossy()]);
    }
}

/// Set or clear the immutable attribute (`chattr +i`), which refuses writes even to root and
/// (on ext4) even through file descriptors opened before.
pub fn immutable(paths: &[PathBuf], on: bool) -> Result<(), String> {
    let flag = if on { "+i" } else { "-i" };
    for path in paths {
        if path.exists() {
            run("chattr", &[flag, &path.to_string_lossy()])?;
        }
    }
    Ok(())
}

/// Make `path` (a file or a folder) read-only for this process, or writable again: the
/// immutable attribute as root (permissions do not stop root), its mode bits otherwise.
pub fn read_only(path: &Path, on: bool) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return immutable(&[path.to_path_buf()], on);
    }
    let mode = match (path.is_dir(), on) {
        (true, true) => 0o555,
        (true, false) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
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

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Started for Proc {
    fn ready_url(&self) -> String {
        format!("{}/-/ready", self.url)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    fn port_was_taken(&self) -> bool {
        engine_port_taken(&self.log_since_start())
    }

    fn said_ready(&self) -> bool {
        engine_said_ready(&self.log_since_start())
    }

    /// A first start leaves no trace of the failed one, for the tests that count the log's
    /// errors.
    fn start_again(&mut self) {
        self.child = None;
        if !self.ready_once {
            std::fs::write(&self.log, "").unwrap();
        }
        self.restart();
    }
}
