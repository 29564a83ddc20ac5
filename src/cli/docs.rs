//! `tocsin completions SHELL` and `tocsin man DIR`: shell completions and man pages made
//! from the command line's own definitions, so they cannot drift from it (the Debian
//! package ships both).

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;

pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "tocsin", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// `tocsin.1` and a page for each command (`tocsin-run.1`, …) into `dir`.
pub fn man(dir: &Path) -> ExitCode {
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "tocsin man: cannot write the pages into {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
