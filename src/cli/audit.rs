//! `tocsin audit list`: the audit log through the API, as a table or `--output json`.
//!
//! `tocsin audit verify`: walk the audit log's HMAC chain with the audit key and say whether
//! it holds (exit 0, with the count) or which entry first breaks it (exit 1). Exit 2 when
//! the check cannot be made (no config, key or store).

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use super::client::{output, table, text, when, Client};
use super::ApiArgs;
use crate::config::secrets::read_secret;
use crate::output::outln;
use crate::store::{AuditCheck, Store};

pub async fn verify(config: &Path) -> ExitCode {
    let cannot = |why: String| {
        eprintln!("tocsin audit verify: {why}");
        ExitCode::from(2)
    };
    let loaded = match crate::config::load(config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return cannot(format!(
                "{} in the config",
                crate::words::count(errors.0.len(), "error", "errors")
            ));
        }
    };
    // The key is read, never made: a missing key is a finding, not something to create.
    let key_path = match &loaded.server.audit_key_file {
        Some(file) => loaded.resolve_path(file),
        None => loaded.data_dir().join("audit.key"),
    };
    let key = match read_secret(&key_path) {
        Ok(key) => key,
        Err(e) => return cannot(e.to_string()),
    };
    let url = loaded.store_url();
    // Read-only: it may run beside the engine.
    let store = match Store::open_read_only(&url).await {
        Ok(store) => store,
        Err(e) => return cannot(format!("cannot open the store: {e}")),
    };
    let checked = store.verify_audit(&key).await;
    store.close().await;
    match checked {
        Ok(AuditCheck::Intact(count)) => {
            let entries = crate::words::count(count as usize, "entry", "entries");
            outln!("audit log intact: {entries}, every MAC holds");
            ExitCode::SUCCESS
        }
        Ok(AuditCheck::Broken { id, why }) => {
            eprintln!("audit log broken at entry {id}: {why}");
            ExitCode::FAILURE
        }
        Err(e) => cannot(format!("cannot read the audit log: {e}")),
    }
}

pub async fn list(limit: Option<u32>, cursor: Option<String>, api: &ApiArgs) -> ExitCode {
    let query: Vec<(&str, String)> = [("limit", limit.map(|l| l.to_string())), ("cursor", cursor)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let listed = match Client::new(api) {
        Ok(client) => client.get("/api/v1/audit", &query).await,
        Err(e) => Err(e),
    };
    match listed.and_then(|page| output(api, &page, list_table)) {
        Ok(out) => {
            crate::output::write(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list_table(page: &Value) -> String {
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return "no audit entries\n".to_string();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                text(&e["id"]),
                when(&e["at"]),
                text(&e["actor"]),
                text(&e["action"]),
                text(&e["target"]),
                text(&e["address"]),
                match e["detail"].as_str() {
                    Some("") | None => "-".to_string(),
                    Some(detail) => detail.to_string(),
                },
            ]
        })
        .collect();
    let more = match page["next"].as_str() {
        Some(next) => format!("more: --cursor {next}\n"),
        None => String::new(),
    };
    table(
        &["ID", "AT", "BY", "ACTION", "TARGET", "FROM", "DETAIL"],
        &rows,
    ) + &more
}
