//! The peer of the ingest and page benchmarks: Debian's `prometheus-alertmanager`, started
//! on 127.0.0.1 with a config of the benchmark's own, its storage in a temporary folder and
//! gossip off (a single instance, as a single tocsin engine is).
#![allow(dead_code)]

use std::time::Duration;

use crate::common::{free_port, installed, wait_for_http, Proc};

pub const PROGRAM: &str = "prometheus-alertmanager";

pub struct Alertmanager {
    pub proc: Proc,
    pub url: String,
    pub version: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Start it on `config` (YAML); None when it is not installed or never became ready.
    pub async fn start(config: &str) -> Option<Alertmanager> {
        if !installed(PROGRAM) {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let port = free_port();
        let path = dir.path().join("alertmanager.yml");
        std::fs::write(&path, config).ok()?;
        let proc = Proc::spawn(
            "alertmanager",
            PROGRAM,
            &[
                format!("--config.file={}", path.display()),
                format!("--storage.path={}", dir.path().join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--cluster.listen-address=".into(),
                "--log.level=warn".into(),
            ],
            &dir.path().join("stderr.log"),
        );
        let url = format!("http://127.0.0.1:{port}");
        if !wait_for_http(&format!("{url}/-/ready"), Duration::from_secs(30)).await {
            return None;
        }
        Some(Alertmanager {
            proc,
            url,
            version: version(),
            _dir: dir,
        })
    }
}

/// `prometheus-alertmanager --version`'s first line, for the printout.
pub fn version() -> String {
    std::process::Command::new(PROGRAM)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}
