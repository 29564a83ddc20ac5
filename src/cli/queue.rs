//! `tocsin queue list|take NAME`: a triage queue through the HTTP API.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{output, table, text, when, who, Client, ClientError};
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
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
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

fn line(i: &Value) -> String {
    format!(
        "incident {}: Sev {} {}, opened {}{}: {}\n",
        text(&i["id"]),
        text(&i["severity"]),
        text(&i["status"]),
        when(&i["opened_at"]),
        match &i["assignee"] {
            Value::Null => String::new(),
            who => format!(", assigned to {}", text(who)),
        },
        text(&i["title"]),
    )
}

fn list_table(name: &str, list: &Value) -> String {
    let incidents = list.as_array().cloned().unwrap_or_default();
    if incidents.is_empty() {
        return format!("no incidents in queue {name}\n");
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            vec![
                text(&i["id"]),
                format!("Sev {}", text(&i["severity"])),
                text(&i["status"]),
                when(&i["opened_at"]),
                text(&i["assignee"]),
                text(&i["title"]),
            ]
        })
        .collect();
    table(
        &["ID", "SEV", "STATUS", "OPENED", "ASSIGNEE", "TITLE"],
        &rows,
    )
}

async fn execute(command: QueueCommand) -> Result<String, ClientError> {
    match command {
        QueueCommand::List { name, api } => {
            let list = Client::new(&api)?
                .get(&format!("/api/v1/queues/{name}"), &[])
                .await?;
            output(&api, &list, |l| list_table(&name, l))
        }
        QueueCommand::Take { name, api, by } => {
            let by = who(by, &api).await?;
            let incident = Client::new(&api)?
                .post(&format!("/api/v1/queues/{name}/take"), json!({ "by": by }))
                .await?;
            output(&api, &incident, line)
        }
    }
}
