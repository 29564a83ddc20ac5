//! Probe benchmark: 1,000 http probes at a 1 s interval against a local server for 30 s.
//! Prints the p50/p99 schedule lag (actual start − scheduled start) and the CPU seconds the
//! probing used. The target is nginx (Debian `nginx-light`) in its own process, so the CPU
//! figure is the prober's alone; without nginx an in-process server is used and counted.
//!
//! Run: `cargo bench --bench probes` (env PROBES, SECONDS to change the load).

mod common;

use std::time::Duration;

use common::{env_or, own_cpu_seconds, percentile, Nginx};

use tocsin::config::{Config, ProbeConfig};
use tocsin::engine::Clock;
use tocsin::metrics::Metrics;
use tocsin::sources::probe::{run_probes, ProbeContext, Prober};
use tokio::sync::{mpsc, watch};

/// The fallback target: an axum server in this process (its CPU counts in the figure).
async fn in_process_server() -> u16 {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("probes") {
        return;
    }
    let probes = env_or("PROBES", 1000);
    let seconds = env_or("SECONDS", 30);
    let nginx = Nginx::start(1).await;
    let (target, port) = match &nginx {
        Some(nginx) => ("nginx (separate process)", nginx.port),
        None => (
            "in-process axum (its CPU is counted)",
            in_process_server().await,
        ),
    };

    let config = Config::default();
    let probers: Vec<Prober> = (0..probes)
        .map(|i| {
            let yaml = format!(
                "{{ name: probe-{i}, kind: http, url: 'http://127.0.0.1:{port}/health', interval: 1s, timeout: 900ms, labels: {{ service: bench }} }}"
            );
            let probe: ProbeConfig = serde_yaml::from_str(&yaml).unwrap();
            Prober::new(&probe, &config)
        })
        .collect();
    let context = ProbeContext {
        clock: Clock::System,
        metrics: std::sync::Arc::new(Metrics::new()),
        max_in_flight: config.probing.max_in_flight,
    };
    let (tx, mut rx) = mpsc::channel(4096);
    let (stop_tx, stop) = watch::channel(false);
    let cpu_before = own_cpu_seconds();
    let started = tokio::time::Instant::now();
    let running = tokio::spawn(run_probes(probers, context, tx, stop));

    let mut lags = Vec::with_capacity((probes * seconds) as usize);
    let mut latencies = Vec::with_capacity(lags.capacity());
    let mut failures = 0u64;
    let deadline = started + Duration::from_secs(seconds);
    let mut batch = Vec::with_capacity(1024);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            n = rx.recv_many(&mut batch, 1024) => if n == 0 { break },
        }
        for report in batch.drain(..) {
            lags.push(report.schedule_lag.as_secs_f64() * 1000.0);
            let result = report.signal.probe.expect("probe signals carry a result");
            latencies.push(result.latency_ms);
            if !result.success {
                failures += 1;
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu_before;
    let _ = stop_tx.send(true);
    let _ = running.await;

    lags.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    println!("probes: {probes} http probes, 1 s interval, {seconds} s, target {target}");
    println!(
        "runs: {} ({} failed), {:.0} per second",
        lags.len(),
        failures,
        lags.len() as f64 / wall
    );
    println!(
        "schedule lag: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "probe latency: p50 {:.3} ms, p99 {:.3} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
    println!(
        "cpu: {cpu:.2} s user+system over {wall:.1} s wall ({:.1}% of one core)",
        100.0 * cpu / wall
    );
}
