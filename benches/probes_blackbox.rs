//! Probes beside Prometheus and blackbox_exporter: 10,000 http probes every 10 s (timeout
//! 5 s) against one nginx, by the `tocsin` binary and by Prometheus scraping
//! blackbox_exporter's `/probe` for the same 10,000 target URLs, each for the same wall time.
//!
//! Measured over the window (after one interval of warm-up, so every probe is on its
//! schedule): CPU seconds of tocsin, and of prometheus + blackbox_exporter together, from
//! /proc; how many probe runs completed and succeeded; tocsin's schedule lag from its
//! `tocsin_probe_schedule_lag_seconds` histogram (the bucket holding the 99th percentile).
//! nginx is the same process for both runs and its CPU is counted for neither.
//!
//! ROUNDS rounds (default 3), the two taking turns going first, each on fresh processes;
//! then the median and spread over the rounds of each figure, of each and of the ratio
//! tocsin/peers. A window in which a probe or a scrape failed ends the benchmark without
//! figures.
//!
//! Run: `cargo bench --bench probes_blackbox` (env PROBES, SECONDS, NGINX_WORKERS, ROUNDS).

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{env_or, free_port, print_compared, wait_for_http, EngineDir, Nginx, Proc};
use serde_json::Value;

/// Samples of one metric (name and labels, value) in a Prometheus text exposition.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines()
        .filter(move |l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
}

fn metric_sum(text: &str, name: &str) -> f64 {
    samples(text, name).map(|(_, v)| v).sum()
}

/// Cumulative bucket counts of a histogram: (upper bound, count).
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    samples(text, &format!("{name}_bucket"))
        .filter_map(|(series, v)| {
            let le = series.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, v))
        })
        .collect()
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// One number from a Prometheus instant query (NaN when it has none).
/// `query` evaluated at `at` (Unix seconds): the window's queries share one instant, so
/// their windows hold the same scrapes.
async fn prom_query(http: &reqwest::Client, base: &str, query: &str, at: &str) -> f64 {
    let Ok(response) = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query), ("time", at)])
        .send()
        .await
    else {
        return f64::NAN;
    };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

struct TocsinFigures {
    cpu: f64,
    runs: f64,
    /// Probe runs that failed in the window (`tocsin_probe_failures_total`).
    failed: f64,
    succeeded_last: f64,
    incidents: f64,
    lag_p99_bucket: f64,
    lag_under_50ms: f64,
    rss: u64,
}

async fn run_tocsin(port: u16, probes: u64, seconds: u64) -> TocsinFigures {
    let mut config =
        String::from("server: { rate_limit: { per_client: 1000000, burst: 1000000 } }\nprobes:\n");
    for i in 0..probes {
        let _ = writeln!(
            config,
            "  - {{ name: p{i}, kind: http, url: \"http://127.0.0.1:{port}/t/{i}\", interval: 10s, timeout: 5s, labels: {{ service: bench }} }}"
        );
    }
    // The probe rules of rules/default.yaml: every result goes through them, as in use.
    let rules = r#"
groups:
  - name: probes
    rules:
      - name: ProbeFailing
        match: [ 'source="probe"' ]
        when: "!probe.success"
        failures: 3
        successes: 2
        impact: { kind: outage, sla_breach: true }
      - name: ProbeSlow
        match: [ 'source="probe"' ]
        when: "probe.success && probe.latency_ms > 2000.0"
        for: 5m
        clear_for: 5m
        impact: { kind: latency, business_impact: high }
"#;
    let dir = EngineDir::new(&config, &[("probes.yaml", rules)]);
    let engine = dir.start(0);
    assert!(
        engine.wait_ready().await,
        "engine not ready: {}",
        engine.log()
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let metrics_url = format!("{}/metrics", engine.url);
    // One interval of warm-up: every probe has started on its schedule.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = get_text(&http, &metrics_url).await;
    let cpu_before = engine.proc.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = engine.proc.cpu_seconds() - cpu_before;
    let after = get_text(&http, &metrics_url).await;
    let rss = engine.proc.rss_bytes();

    let runs = samples(&after, "tocsin_signals_total")
        .filter(|(s, _)| s.contains("source=\"probe\""))
        .map(|(_, v)| v)
        .sum::<f64>()
        - samples(&before, "tocsin_signals_total")
            .filter(|(s, _)| s.contains("source=\"probe\""))
            .map(|(_, v)| v)
            .sum::<f64>();
    let lag_name = "tocsin_probe_schedule_lag_seconds";
    let (b0, b1) = (buckets(&before, lag_name), buckets(&after, lag_name));
    let window: Vec<(f64, f64)> = b1
        .iter()
        .map(|(le, n)| {
            let earlier = b0.iter().find(|(l, _)| l == le).map_or(0.0, |(_, v)| *v);
            (*le, n - earlier)
        })
        .collect();
    let total = window.last().map_or(0.0, |(_, n)| *n);
    let lag_p99_bucket = window
        .iter()
        .find(|(_, n)| *n >= 0.99 * total)
        .map_or(f64::NAN, |(le, _)| *le);
    let lag_under_50ms = window
        .iter()
        .find(|(le, _)| (*le - 0.05).abs() < 1e-9)
        .map_or(f64::NAN, |(_, n)| n / total);
    TocsinFigures {
        cpu,
        runs,
        failed: metric_sum(&after, "tocsin_probe_failures_total")
            - metric_sum(&before, "tocsin_probe_failures_total"),
        succeeded_last: metric_sum(&after, "tocsin_probe_success"),
        incidents: metric_sum(&after, "tocsin_incidents_total"),
        lag_p99_bucket,
        lag_under_50ms,
        rss,
    }
}

struct PeerFigures {
    cpu_prometheus: f64,
    cpu_blackbox: f64,
    scrapes: f64,
    scrapes_up: f64,
    probes_succeeded: f64,
    interval_p99: f64,
    rss: u64,
    last_errors: Vec<(String, u64)>,
}

async fn run_peers(port: u16, probes: u64, seconds: u64) -> PeerFigures {
    let dir = tempfile::tempdir().unwrap();
    let bb_port = free_port();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("blackbox.yml"),
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
    )
    .unwrap();
    let mut targets = String::new();
    for i in 0..probes {
        let _ = writeln!(targets, "          - http://127.0.0.1:{port}/t/{i}");
    }
    let prom_config = format!(
        r#"global:
  scrape_interval: 10s
  scrape_timeout: 5s
  evaluation_interval: 10s
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets:
{targets}    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{bb_port}
"#
    );
    std::fs::write(dir.path().join("prometheus.yml"), prom_config).unwrap();
    let blackbox = Proc::spawn(
        "blackbox_exporter",
        "prometheus-blackbox-exporter",
        &[
            format!(
                "--config.file={}",
                dir.path().join("blackbox.yml").display()
            ),
            format!("--web.listen-address=127.0.0.1:{bb_port}"),
        ],
        &dir.path().join("blackbox.log"),
    );
    assert!(
        wait_for_http(
            &format!("http://127.0.0.1:{bb_port}/metrics"),
            Duration::from_secs(15)
        )
        .await,
        "blackbox_exporter did not start"
    );
    let prometheus = Proc::spawn(
        "prometheus",
        "prometheus",
        &[
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir.path().join("prometheus.log"),
    );
    let base = format!("http://127.0.0.1:{prom_port}");
    assert!(
        wait_for_http(&format!("{base}/-/ready"), Duration::from_secs(30)).await,
        "prometheus did not start"
    );
    // The same warm-up as tocsin's: every target has had its first scrape.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (p0, b0) = (prometheus.cpu_seconds(), blackbox.cpu_seconds());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (p1, b1) = (prometheus.cpu_seconds(), blackbox.cpu_seconds());
    let rss = prometheus.rss_bytes() + blackbox.rss_bytes();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // The samples of the measured window only.
    let range = format!("{seconds}s");
    let at = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let scrapes_up = prom_query(
        &http,
        &base,
        &format!("sum(sum_over_time(up{{job=\"blackbox\"}}[{range}]))"),
        &at,
    )
    .await;
    let scrapes = prom_query(
        &http,
        &base,
        &format!("sum(count_over_time(up{{job=\"blackbox\"}}[{range}]))"),
        &at,
    )
    .await;
    let probes_succeeded = prom_query(
        &http,
        &base,
        &format!("sum(sum_over_time(probe_success[{range}]))"),
        &at,
    )
    .await;
    let interval_p99 = prom_query(
        &http,
        &base,
        "max(prometheus_target_interval_length_seconds{quantile=\"0.99\"})",
        &at,
    )
    .await;
    // Why scrapes failed, as Prometheus says: the most common last errors of the targets.
    let targets: Value = match http
        .get(format!("{base}/api/v1/targets?state=active"))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    for t in targets["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let e = t["lastError"].as_str().unwrap_or("").to_string();
        // The URL differs per target; keep what follows it.
        let e = e.rsplit("\": ").next().unwrap_or(&e).to_string();
        *errors.entry(e).or_default() += 1;
    }
    let mut errors: Vec<(String, u64)> = errors.into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    errors.truncate(3);
    drop(prometheus);
    drop(blackbox);
    PeerFigures {
        cpu_prometheus: p1 - p0,
        cpu_blackbox: b1 - b0,
        scrapes,
        scrapes_up,
        probes_succeeded,
        interval_p99,
        rss,
        last_errors: errors,
    }
}

/// A window in which a probe failed (nginx answers every one, so a failure is the prober
/// falling behind or erring) measures something else than probing: the run ends without
/// figures. So does one with no probe run at all.
fn require_clean_tocsin(t: &TocsinFigures, probes: u64) {
    if !(t.runs.is_finite() && t.failed.is_finite())
        || t.runs <= 0.0
        || t.failed > 0.0
        || t.incidents > 0.0
        || t.succeeded_last < probes as f64
    {
        common::invalid_run(
            "probes_blackbox",
            format!(
                "tocsin: {:.0} probe runs, {:.0} failed, {:.0} incidents opened, {:.0} of {probes} probes' last run succeeded",
                t.runs, t.failed, t.incidents, t.succeeded_last
            ),
        );
    }
}

fn require_clean_peers(p: &PeerFigures) {
    // NaN: Prometheus did not answer the query, so nothing is known to have worked.
    let answered = [p.scrapes, p.scrapes_up, p.probes_succeeded]
        .iter()
        .all(|v| v.is_finite());
    if !answered
        || p.scrapes <= 0.0
        || p.scrapes_up < p.scrapes
        || p.probes_succeeded < p.scrapes_up
    {
        common::invalid_run(
            "probes_blackbox",
            format!(
                "prometheus + blackbox_exporter: {:.0} scrapes, {:.0} up, {:.0} probes succeeded; last errors {:?}",
                p.scrapes, p.scrapes_up, p.probes_succeeded, p.last_errors
            ),
        );
    }
}

fn print_tocsin(t: &TocsinFigures, expected: f64) {
    println!(
        "tocsin: {:.0} probe runs of {expected:.0} scheduled ({:.1}%), none failed, {:.0} probes' last run succeeded; schedule lag p99 <= {} ms ({:.2}% under 50 ms); cpu {:.2} s; rss {:.1} MB",
        t.runs,
        100.0 * t.runs / expected,
        t.succeeded_last,
        t.lag_p99_bucket * 1000.0,
        100.0 * t.lag_under_50ms,
        t.cpu,
        t.rss as f64 / 1024.0 / 1024.0
    );
}

fn print_peers(p: &PeerFigures, expected: f64) {
    println!(
        "prometheus + blackbox_exporter: {:.0} scrapes, all up, {:.0} probes succeeded of {expected:.0} scheduled ({:.1}%); scrape interval p99 {:.3} s; cpu {:.2} s (prometheus {:.2}, blackbox_exporter {:.2}); rss {:.1} MB",
        p.scrapes,
        p.probes_succeeded,
        100.0 * p.probes_succeeded / expected,
        p.interval_p99,
        p.cpu_prometheus + p.cpu_blackbox,
        p.cpu_prometheus,
        p.cpu_blackbox,
        p.rss as f64 / 1024.0 / 1024.0
    );
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("probes_blackbox") {
        return;
    }
    let probes = env_or("PROBES", 10_000);
    let seconds = env_or("SECONDS", 60);
    let workers = env_or("NGINX_WORKERS", 2) as u32;
    let rounds = common::rounds(3);
    for program in ["nginx", "prometheus", "prometheus-blackbox-exporter"] {
        assert!(
            common::installed(program),
            "{program} is not installed (Debian: nginx-light, prometheus, prometheus-blackbox-exporter)"
        );
    }
    let nginx = Nginx::start(workers).await.expect("nginx starts");
    let expected = (probes * seconds / 10) as f64;
    println!(
        "probes: {probes} http probes every 10 s (timeout 5 s), {seconds} s measured after 11 s of warm-up, against nginx ({workers} workers, not counted); {}, the two taking turns going first",
        common::rounds_of(rounds)
    );

    let (mut t, mut p) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        common::announce_round(round, rounds, Some("prometheus + blackbox_exporter"));
        let tocsin_first = common::tocsin_first(round);
        if !tocsin_first {
            let peers = run_peers(nginx.port, probes, seconds).await;
            require_clean_peers(&peers);
            print_peers(&peers, expected);
            p.push(peers);
        }
        let tocsin = run_tocsin(nginx.port, probes, seconds).await;
        require_clean_tocsin(&tocsin, probes);
        print_tocsin(&tocsin, expected);
        t.push(tocsin);
        if tocsin_first {
            let peers = run_peers(nginx.port, probes, seconds).await;
            require_clean_peers(&peers);
            print_peers(&peers, expected);
            p.push(peers);
        }
    }

    println!("--- over {}", common::rounds_of(rounds));
    let tocsin_cpu: Vec<f64> = t.iter().map(|t| t.cpu).collect();
    let peer_cpu: Vec<f64> = p
        .iter()
        .map(|p| p.cpu_prometheus + p.cpu_blackbox)
        .collect();
    print_compared("cpu", "s", &tocsin_cpu, "prometheus+blackbox", &peer_cpu);
    let tocsin_runs: Vec<f64> = t.iter().map(|t| t.runs / expected).collect();
    let peer_runs: Vec<f64> = p.iter().map(|p| p.probes_succeeded / expected).collect();
    print_compared(
        "probe runs per scheduled run",
        "",
        &tocsin_runs,
        "prometheus+blackbox",
        &peer_runs,
    );
    let lag: Vec<f64> = t.iter().map(|t| t.lag_p99_bucket * 1000.0).collect();
    println!(
        "tocsin schedule lag p99 bucket over {}: {}",
        common::rounds_of(rounds),
        common::Spread::of(&lag).show(0, "ms")
    );
    println!("target: tocsin/prometheus+blackbox <= 0.10, every probe completes, p99 lag < 50 ms");
}
