//! `tocsin check`: every error in the config and rule files, one per line, and warnings about
//! what depends on where the engine runs (an unset `password_env`: check may run where the
//! secrets are not; the engine refuses to start without them).

use std::path::Path;
use std::process::ExitCode;

use crate::output::outln;

pub fn run(config: &Path) -> ExitCode {
    match crate::config::load(config) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!(
                    "{}:{}:{}: warning: {}",
                    w.file.display(),
                    w.line,
                    w.column,
                    w.message
                );
            }
            let files: std::collections::BTreeSet<_> =
                loaded.rules.iter().map(|r| r.file.clone()).collect();
            outln!(
                "{}: OK ({} rules in {} rule files, {} probes, {} routes{})",
                config.display(),
                loaded.rules.len(),
                files.len(),
                loaded.probes.len(),
                loaded.routes.len(),
                match loaded.warnings.len() {
                    0 => String::new(),
                    n => format!("; {n} warning(s)"),
                }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}
