//! `tocsin backup` and `tocsin restore`: a consistent copy of a running engine's SQLite
//! store, and putting one back while the engine is stopped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::client::{root_cause, ClientError};
use crate::output::outln;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The engine's config: its store and, unless --url is given, where it listens.
    #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The engine's base URL (default: the config's server.listen).
    #[arg(long, env = "TOCSIN_URL")]
    pub url: Option<String>,
    /// Bearer token (or TOCSIN_TOKEN).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The file to write (it must not exist).
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The config of the engine whose store is restored (the engine must be stopped).
    #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Overwrite a store that already holds incidents.
    #[arg(long)]
    pub replace: bool,
    /// A file written by `tocsin backup`.
    pub file: PathBuf,
}

pub async fn backup(args: BackupArgs) -> ExitCode {
    match take_backup(&args).await {
        Ok(line) => {
            outln!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin backup: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn restore(args: RestoreArgs) -> ExitCode {
    let config = match crate::config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match crate::store::restore(&config.store_url(), &args.file, args.replace).await {
        Ok(restored) => {
            outln!(
                "restored {} ({}, schema version {}) into {}; start the engine on it",
                args.file.display(),
                crate::words::count(
                    usize::try_from(restored.incidents).unwrap_or_default(),
                    "incident",
                    "incidents"
                ),
                restored.schema_version,
                restored.database.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin restore: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn take_backup(args: &BackupArgs) -> Result<String, String> {
    if args.out.exists() {
        return Err(format!(
            "{} exists; give a file name that does not",
            args.out.display()
        ));
    }
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => match crate::config::load(&args.config) {
            Ok(config) => local_url(&config.server.listen),
            Err(errors) => {
                return Err(errors
                    .0
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        },
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = http.post(format!("{base}/api/v1/admin/backup"));
    if let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    let unreachable = |e: reqwest::Error| {
        ClientError::Unreachable {
            url: base.clone(),
            why: root_cause(&e),
        }
        .to_string()
    };
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        return Err(ClientError::Status {
            status: status.as_u16(),
            message,
            had_token: args.token.is_some(),
        }
        .to_string());
    }
    let partial = partial_name(&args.out);
    let written = save(&mut response, &partial).await;
    let bytes = match written {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &args.out).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            args.out.display()
        )
    })?;
    Ok(format!(
        "backed up the store of {base} to {} ({:.1} MB)",
        args.out.display(),
        bytes as f64 / 1e6
    ))
}

/// Write the body to `path`, fsynced; returns its size.
async fn save(response: &mut reqwest::Response, path: &Path) -> Result<u64, String> {
    use tokio::io::AsyncWriteExt;
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(cannot)?;
    let mut bytes = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the backup stopped arriving: {}", root_cause(&e)))?
    {
        file.write_all(&chunk).await.map_err(cannot)?;
        bytes += chunk.len() as u64;
    }
    file.sync_all().await.map_err(cannot)?;
    Ok(bytes)
}

fn partial_name(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// `http://` + the listen address, an unspecified host (0.0.0.0, ::) read as this machine.
fn local_url(listen: &str) -> String {
    let listen = listen
        .strip_prefix("0.0.0.0:")
        .map(|port| format!("127.0.0.1:{port}"))
        .or_else(|| {
            listen
                .strip_prefix("[::]:")
                .map(|port| format!("[::1]:{port}"))
        })
        .unwrap_or_else(|| listen.to_string());
    format!("http://{listen}")
}
