//! Real peers started on 127.0.0.1 with free ports, killed when dropped: Prometheus, and
//! chromedriver (which starts headless Chromium).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::free_port;

/// A child process killed (and reaped) when dropped, whatever the test did.
pub struct Reaped {
    pub child: Child,
    pub log: PathBuf,
}

impl Reaped {
    pub fn spawn(command: &mut Command, log: PathBuf) -> Reaped {
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Reaped { child, log }
    }

    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("{out}{err}")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `command(port)` on a free port and poll `path` on it until it answers 2xx
/// (bounded). A peer that exits first is started again on another port: `free_port` lets
/// its port go before the peer binds it, and a socket of another test (a client's, from the
/// same range) can take it meanwhile.
async fn start_up(
    mut command: impl FnMut(u16) -> Command,
    log: PathBuf,
    path: &str,
    timeout: Duration,
) -> (Reaped, String) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for _ in 0..5 {
        let port = free_port();
        let mut process = Reaped::spawn(&mut command(port), log.clone());
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + timeout;
        while !matches!(process.child.try_wait(), Ok(Some(_))) {
            if let Ok(r) = http.get(format!("{url}{path}")).send().await {
                if r.status().is_success() {
                    return (process, url);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url}{path} did not come up:\n{}",
                process.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!(
        "{path}: the peer exited at every start; last log at {}",
        log.display()
    );
}

/// Prometheus 2.x scraping one target every second.
pub struct Prometheus {
    pub url: String,
    pub process: Reaped,
    http: reqwest::Client,
}

impl Prometheus {
    pub async fn scraping(dir: &Path, target: &str) -> Prometheus {
        let folder = dir.join("prometheus");
        std::fs::create_dir_all(folder.join("data")).unwrap();
        let config = folder.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tocsin\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let (process, url) = start_up(
            |port| {
                let mut command = Command::new("prometheus");
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        folder.join("data").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"));
                command
            },
            folder.join("prometheus.log"),
            "/-/ready",
            Duration::from_secs(60),
        )
        .await;
        Prometheus {
            url,
            process,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// An instant query through Prometheus's HTTP API: the value of each series returned.
    pub async fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let Ok(response) = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
        else {
            return Vec::new();
        };
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(body["status"], "success", "query {promql}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (series["metric"].clone(), value)
            })
            .collect()
    }
}

/// chromedriver on a free port; sessions it opens start headless Chromium.
pub struct ChromeDriver {
    pub url: String,
    /// Killed when the driver is dropped.
    _process: Reaped,
}

impl ChromeDriver {
    pub async fn start(dir: &Path) -> ChromeDriver {
        let (process, url) = start_up(
            |port| {
                let mut command = Command::new("chromedriver");
                command
                    .arg(format!("--port={port}"))
                    .arg("--allowed-ips=127.0.0.1")
                    .arg(format!(
                        "--log-path={}",
                        dir.join("chromedriver-verbose.log").display()
                    ));
                command
            },
            dir.join("chromedriver.log"),
            "/status",
            Duration::from_secs(30),
        )
        .await;
        ChromeDriver {
            url,
            _process: process,
        }
    }
}
