//! `tocsin check`: every error in the config and rule files, one per line.

use std::path::Path;
use std::process::ExitCode;

use crate::output::outln;

pub fn run(config: &Path) -> ExitCode {
    match crate::config::load(config) {
        Ok(loaded) => {
            let files: std::collections::BTreeSet<_> =
                loaded.rules.iter().map(|r| r.file.clone()).collect();
            outln!(
                "{}: OK ({} rules in {} rule files, {} probes, {} routes)",
                config.display(),
                loaded.rules.len(),
                files.len(),
                loaded.probes.len(),
                loaded.routes.len()
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
