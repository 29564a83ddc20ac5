//! What every benchmark shares: percentiles, CPU and memory of a process read from /proc,
//! peers started as child processes on 127.0.0.1 and stopped when dropped, and the tocsin
//! release binary started on a config of the benchmark's own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `cargo test --all-targets` runs bench binaries too; only `cargo bench` passes --bench.
/// Returns false (after saying how to run it) when the benchmark should not run.
pub fn invoked_by_cargo_bench(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("{name} benchmark: run with `cargo bench --bench {name}`");
    false
}

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The p-th percentile (0–100) of an ascending slice, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// `p50 … ms, p99 … ms, max … ms` of latencies in milliseconds, as every benchmark prints them.
pub fn p50_p99_max(latencies_ms: &[f64]) -> String {
    let s = sorted(latencies_ms);
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        percentile(&s, 100.0)
    )
}

/// Ascending copy, for [`percentile`].
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// User + system CPU seconds of this process so far.
pub fn own_cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// User + system CPU seconds of process `pid` so far (its threads included), from
/// /proc/PID/stat; None once it has exited.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Resident memory of process `pid` in bytes (VmRSS), None once it has exited.
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released) for peers that take a
/// listen address on their command line.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Wait (at most 15 s) until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16) -> bool {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Wait (at most `timeout`) until GET `url` answers 2xx.
pub async fn wait_for_http(url: &str, timeout: Duration) -> bool {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A child process stopped with SIGTERM (then SIGKILL after 5 s) when dropped, so that a
/// master process such as nginx's can stop its workers.
pub struct Proc {
    pub child: Child,
    pub name: String,
    /// Reaped already (see [`Proc::sigkill`]): nothing left to stop.
    reaped: bool,
}

impl Proc {
    /// Start `program` with `args`; stdout is discarded, stderr goes to `log`.
    pub fn spawn(name: &str, program: &str, args: &[String], log: &Path) -> Proc {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e} (is it installed?)"));
        Proc {
            child,
            name: name.to_string(),
            reaped: false,
        }
    }

    /// SIGKILL it, as a crash would, and reap it.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    pub fn rss_bytes(&self) -> u64 {
        process_rss_bytes(self.pid()).unwrap_or(0)
    }

    // Drop cannot await; a blocking wait of at most 5 s at the end of a benchmark is fine.
    #[allow(clippy::disallowed_methods)]
    pub fn terminate(&mut self) {
        if self.reaped {
            return;
        }
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Whether `program` is on PATH.
/// How many items `url` lists (at most 30 s): Alertmanager's `/api/v2/alerts` answers a
/// JSON array, tocsin's incident list an object whose `incidents` is one.
pub async fn listed(url: &str) -> Option<usize> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .ok()?;
    let list: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    list.as_array()
        .or_else(|| list["incidents"].as_array())
        .map(Vec::len)
}

pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// nginx (Debian `nginx-light`) on 127.0.0.1:`port` answering every path with
/// `{"status":"ok"}`, in a folder of its own; `workers` worker processes.
pub struct Nginx {
    pub proc: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub async fn start(workers: u32) -> Option<Nginx> {
        if !installed("nginx") {
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().ok()?;
        let d = dir.path().display();
        let config = format!(
            r#"daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_timeout 0;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=8192;
    location / {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
  }}
}}
"#
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).ok()?;
        let proc = Proc::spawn(
            "nginx",
            "nginx",
            &[
                "-c".into(),
                path.display().to_string(),
                "-p".into(),
                dir.path().display().to_string(),
            ],
            &dir.path().join("stderr.log"),
        );
        if !wait_for_port(port).await {
            return None;
        }
        Some(Nginx {
            proc,
            port,
            _dir: dir,
        })
    }
}

/// The release `tocsin` binary next to this benchmark (cargo bench builds it), or
/// `TOCSIN_BIN` when set: a copy of an earlier build, for before/after figures.
pub fn tocsin_binary() -> PathBuf {
    std::env::var_os("TOCSIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tocsin")))
}

/// A tocsin engine (the release binary) in a folder of its own: `config.yaml` is `config`
/// with `store`, `rule_files` and a generous `server.rate_limit` added when missing; the
/// rules are written to `rules/`. Listens on 127.0.0.1:`port`.
pub struct Tocsin {
    pub proc: Proc,
    pub url: String,
    pub port: u16,
    pub dir: PathBuf,
}

/// A folder for an engine's config, rules and SQLite store that survives the engine (so a
/// restart benchmark can start another on the same store); removed when dropped.
pub struct EngineDir {
    pub dir: tempfile::TempDir,
}

impl EngineDir {
    pub fn new(config: &str, rule_files: &[(&str, &str)]) -> EngineDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        let mut text = config.to_string();
        if !text.contains("\nstore:") && !text.starts_with("store:") {
            text.push_str("\nstore: { url: \"sqlite://data/tocsin.db\" }\n");
        }
        if !text.contains("rule_files:") {
            text.push_str("\nrule_files: [ \"rules/*.yaml\" ]\n");
        }
        std::fs::write(dir.path().join("config.yaml"), text).unwrap();
        for (name, body) in rule_files {
            std::fs::write(dir.path().join("rules").join(name), body).unwrap();
        }
        EngineDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Start the engine on this folder, listening on 127.0.0.1:`port` (0: a free one).
    pub fn start(&self, port: u16) -> Tocsin {
        let port = if port == 0 { free_port() } else { port };
        let log = self.path().join(format!("engine-{port}.log"));
        let proc = Proc::spawn(
            "tocsin",
            &tocsin_binary().display().to_string(),
            &[
                "run".into(),
                "--config".into(),
                self.path().join("config.yaml").display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
            ],
            &log,
        );
        Tocsin {
            proc,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir: self.path().to_path_buf(),
        }
    }
}

impl Tocsin {
    /// Wait until /-/ready answers 200 (at most 60 s); false if it never did.
    pub async fn wait_ready(&self) -> bool {
        wait_for_http(&format!("{}/-/ready", self.url), Duration::from_secs(60)).await
    }

    /// The engine's log so far (for a failed run's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("engine-{}.log", self.port)))
            .unwrap_or_default()
    }
}

/// How many rounds a side-by-side benchmark runs (env ROUNDS, at least 1).
pub fn rounds(default: u64) -> usize {
    env_or("ROUNDS", default).max(1) as usize
}

/// Whether tocsin goes first in `round` (from 0): the two systems take turns, so neither
/// always runs on a machine the other has just warmed (page cache, CPU frequency) or
/// loaded (its processes still exiting, its files still being written back).
pub fn tocsin_first(round: usize) -> bool {
    round % 2 == 1
}

/// The round's banner: its number and who goes first.
pub fn announce_round(round: usize, rounds: usize, peer: Option<&str>) {
    let order = match peer {
        Some(peer) if tocsin_first(round) => format!("tocsin first, then {peer}"),
        Some(peer) => format!("{peer} first, then tocsin"),
        None => "tocsin alone".to_string(),
    };
    println!("--- round {} of {rounds}: {order}", round + 1);
}

/// Median and spread (lowest, highest) of one figure over the rounds.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let sorted = sorted(values);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `median M (min A, max B)`, with `decimals` places.
    pub fn show(&self, decimals: usize, unit: &str) -> String {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        format!(
            "median {:.*}{unit} (min {:.*}, max {:.*})",
            decimals, self.median, decimals, self.min, decimals, self.max
        )
    }
}

/// Print one figure of both systems over the rounds: the median and spread of tocsin's,
/// of the peer's, and of the ratio tocsin/peer taken round by round (each round's two runs
/// ran back to back, so their ratio cancels what the machine did that round). With no peer
/// figures (the peer not run), tocsin's alone.
pub fn print_compared(label: &str, unit: &str, tocsin: &[f64], peer_name: &str, peer: &[f64]) {
    let t = Spread::of(tocsin);
    if peer.is_empty() {
        println!(
            "{label} over {}: tocsin {}",
            rounds_of(tocsin.len()),
            t.show(3, unit)
        );
        return;
    }
    assert_eq!(
        tocsin.len(),
        peer.len(),
        "{label}: a figure per round of each"
    );
    let p = Spread::of(peer);
    let ratios: Vec<f64> = tocsin.iter().zip(peer).map(|(t, p)| t / p).collect();
    let r = Spread::of(&ratios);
    println!(
        "{label} over {}: tocsin {}; {peer_name} {}; tocsin/{peer_name} {}",
        rounds_of(tocsin.len()),
        t.show(3, unit),
        p.show(3, unit),
        r.show(2, "")
    );
}

/// `1 round`, `3 rounds`.
pub fn rounds_of(n: usize) -> String {
    if n == 1 {
        "1 round".to_string()
    } else {
        format!("{n} rounds")
    }
}

/// End the benchmark without a figure: the run is not what it claims to measure (requests
/// failed, or the system under test did not store what was sent). A panic, so that the
/// peers and engines are dropped (stopped) on the way out; the exit status is not 0.
pub fn invalid_run(bench: &str, why: impl std::fmt::Display) -> ! {
    panic!("{bench}: this run is not valid and prints no figures: {why}");
}
