//! `tocsin check`: every error in the config and rule files, one per line, and warnings about
//! what depends on where the engine runs (an unset `password_env`: check may run where the
//! secrets are not; the engine refuses to start without them); with `--store`, whether the
//! config's store needs migrating.

use std::path::Path;
use std::process::ExitCode;

use crate::output::outln;
use crate::paging::notify::templates::{sample_payload, Templates};
use crate::paging::PageEvent;
use crate::store::{schema_status, SchemaStatus};
use crate::words::count;

pub async fn run(config: &Path, store: bool) -> ExitCode {
    let loaded = match crate::config::load(config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{}", count(errors.0.len(), "error", "errors"));
            return ExitCode::FAILURE;
        }
    };
    for w in &loaded.warnings {
        eprintln!(
            "{}:{}:{}: warning: {}",
            w.file.display(),
            w.line,
            w.column,
            w.message
        );
    }
    // Every notifier template, compiled and rendered against a sample page of each event.
    let (templates, mut template_errors) = Templates::compile(&loaded);
    for event in [
        PageEvent::Triggered,
        PageEvent::SeverityRaised,
        PageEvent::Resolved,
    ] {
        for error in templates.check(&sample_payload(&loaded, event, "alice")) {
            if !template_errors.contains(&error) {
                template_errors.push(error);
            }
        }
    }
    if !template_errors.is_empty() {
        for e in &template_errors {
            eprintln!("{e}");
        }
        eprintln!("{}", count(template_errors.len(), "error", "errors"));
        return ExitCode::FAILURE;
    }
    let files: std::collections::BTreeSet<_> =
        loaded.rules.iter().map(|r| r.file.clone()).collect();
    outln!(
        "{}: OK ({} in {}, {}, {}{})",
        config.display(),
        count(loaded.rules.len(), "rule", "rules"),
        count(files.len(), "rule file", "rule files"),
        count(loaded.probes.len(), "probe", "probes"),
        count(loaded.routes.len(), "route", "routes"),
        match loaded.warnings.len() {
            0 => String::new(),
            n => format!("; {}", count(n, "warning", "warnings")),
        }
    );
    if !store {
        return ExitCode::SUCCESS;
    }
    let url = loaded.store_url();
    match schema_status(&url).await {
        Ok(status) => {
            let (line, fine) = describe(&status);
            if fine {
                outln!("{line}");
                ExitCode::SUCCESS
            } else {
                eprintln!("{line}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!(
                "cannot read the store at {}: {e}",
                crate::store::redact(&url)
            );
            ExitCode::FAILURE
        }
    }
}

/// What to tell the user, and whether this binary can start on the store.
fn describe(s: &SchemaStatus) -> (String, bool) {
    let url = &s.url;
    let Some(at) = s.at else {
        return (
            format!(
                "no store at {url} yet: this tocsin creates it at schema version {} when it starts",
                s.needs
            ),
            true,
        );
    };
    if !s.unknown.is_empty() {
        return (
            format!(
                "store at {url} is at schema version {at}; this tocsin knows versions up to {}: \
                 the store was written by a newer tocsin (migrations {} unknown here); run that \
                 version or a later one",
                s.needs,
                list(&s.unknown)
            ),
            false,
        );
    }
    if !s.modified.is_empty() {
        return (
            format!(
                "store at {url} is at schema version {at}, but migrations {} were applied with \
                 other contents than this tocsin's: it would refuse to start on it",
                list(&s.modified)
            ),
            false,
        );
    }
    if !s.failed.is_empty() {
        return (
            format!(
                "store at {url}: migrations {} began and did not finish; restore the store from \
                 a backup",
                list(&s.failed)
            ),
            false,
        );
    }
    if s.pending.is_empty() {
        return (
            format!("store at {url} is at schema version {at}: up to date"),
            true,
        );
    }
    let names: Vec<String> = s
        .pending
        .iter()
        .map(|m| format!("{:04} {}", m.version, m.description))
        .collect();
    (
        format!(
            "store at {url} is at schema version {at}; this tocsin needs {}: {} pending (it \
             migrates at start): {}",
            s.needs,
            count(s.pending.len(), "migration", "migrations"),
            names.join(", ")
        ),
        true,
    )
}

fn list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
