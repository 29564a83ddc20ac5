//! `tocsin audit verify`: walk the audit log's HMAC chain with the audit key and say whether
//! it holds (exit 0, with the count) or which entry first breaks it (exit 1). Exit 2 when
//! the check cannot be made (no config, key or store).

use std::path::Path;
use std::process::ExitCode;

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
            return cannot(format!("{} error(s) in the config", errors.0.len()));
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
            let entries = if count == 1 { "entry" } else { "entries" };
            outln!("audit log intact: {count} {entries}, every MAC holds");
            ExitCode::SUCCESS
        }
        Ok(AuditCheck::Broken { id, why }) => {
            eprintln!("audit log broken at entry {id}: {why}");
            ExitCode::FAILURE
        }
        Err(e) => cannot(format!("cannot read the audit log: {e}")),
    }
}
