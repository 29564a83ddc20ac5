//! `tocsin queue list|take NAME`: a triage queue through the HTTP API.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{output, Client, ClientError};
use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// The queue's incidents, oldest first.
    List {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take the queue's oldest unassigned incident: it is yours, and leaves every queue.
    Take {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
    },
}

pub async fn run(command: QueueCommand) -> ExitCode {
    match execute(command).await {
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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn line(i: &Value) -> String {
    format!(
        "incident {}: Sev {} {}, opened {}{}: {}\n",
        text(&i["id"]),
        text(&i["severity"]),
        text(&i["status"]),
        text(&i["opened_at"]),
        match &i["assignee"] {
            Value::Null => String::new(),
            who => format!(", assigned to {}", text(who)),
        },
        text(&i["title"]),
    )
}

async fn execute(command: QueueCommand) -> Result<String, ClientError> {
    match command {
        QueueCommand::List { name, api } => {
            let list = Client::new(&api)?
                .get(&format!("/api/v1/queues/{name}"), &[])
                .await?;
            output(&api, &list, |l| {
                l.as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(line)
                    .collect()
            })
        }
        QueueCommand::Take { name, api, by } => {
            let incident = Client::new(&api)?
                .post(&format!("/api/v1/queues/{name}/take"), json!({ "by": by }))
                .await?;
            output(&api, &incident, line)
        }
    }
}
