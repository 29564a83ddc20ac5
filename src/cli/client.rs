//! `tocsin incidents list|show|ack|resolve|severity`: a client of the HTTP API.

use std::process::ExitCode;

use clap::Subcommand;

use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum IncidentsCommand {
    /// id, severity, status, services and title of recent incidents.
    List {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        severity: Option<u8>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One incident with its impacts and timeline.
    Show {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Acknowledge: stops the escalation.
    Ack {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
    },
    /// Resolve, with an optional note.
    Resolve {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Set (and pin) the severity; `--unpin` lets it follow the impacts again.
    Severity {
        id: i64,
        /// 0 (disaster) to 4.
        severity: Option<u8>,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        unpin: bool,
    },
}

pub async fn run(command: IncidentsCommand) -> ExitCode {
    eprintln!("tocsin incidents: {command:?} is not available yet");
    ExitCode::FAILURE
}
