//! `tocsin silence add|list|expire`: run-time silences through the HTTP API.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{output, table, text, when, who, Client, ClientError};
use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum SilenceCommand {
    /// Hold the pages of incidents whose every impact matches, for a while.
    Add {
        /// Alertmanager matchers, e.g. 'service="storage"' 'region=~"china-.*"'.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h (or --ends-at).
        #[arg(long, required_unless_present = "ends_at", conflicts_with = "ends_at")]
        duration: Option<String>,
        /// RFC 3339 end time.
        #[arg(long)]
        ends_at: Option<String>,
        /// RFC 3339 start time (default now): a maintenance window ahead.
        #[arg(long)]
        starts_at: Option<String>,
        /// Why.
        #[arg(long, required = true)]
        comment: String,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
        /// Make nothing; list the open incidents it would hold.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Every silence with its state (active, pending, expired).
    List {
        /// Only active, pending or expired ones.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// End a silence now.
    Expire {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn run(command: SilenceCommand) -> ExitCode {
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

async fn execute(command: SilenceCommand) -> Result<String, ClientError> {
    match command {
        SilenceCommand::Add {
            matchers,
            duration,
            ends_at,
            starts_at,
            comment,
            by,
            dry_run,
            api,
        } => {
            let by = who(by, &api).await?;
            let mut body = json!({ "matchers": matchers, "created_by": by, "comment": comment });
            for (key, value) in [
                ("duration", duration),
                ("ends_at", ends_at),
                ("starts_at", starts_at),
            ] {
                if let Some(v) = value {
                    body[key] = Value::String(v);
                }
            }
            let path = if dry_run {
                "/api/v1/silences?dry_run=true"
            } else {
                "/api/v1/silences"
            };
            let answer = Client::new(&api)?.post(path, body).await?;
            if dry_run {
                output(&api, &answer, would_hold_line)
            } else {
                output(&api, &answer, |s| {
                    format!(
                        "silence {} made ({}): {} until {}\n",
                        text(&s["id"]),
                        text(&s["state"]),
                        matchers_text(s),
                        when(&s["ends_at"])
                    )
                })
            }
        }
        SilenceCommand::List { state, api } => {
            let query: Vec<(&str, String)> = state.into_iter().map(|s| ("state", s)).collect();
            let list = Client::new(&api)?.get("/api/v1/silences", &query).await?;
            output(&api, &list, list_table)
        }
        SilenceCommand::Expire { id, api } => {
            let silence = Client::new(&api)?
                .delete(&format!("/api/v1/silences/{id}"))
                .await?;
            output(&api, &silence, |s| {
                format!(
                    "silence {} expired at {}\n",
                    text(&s["id"]),
                    when(&s["ends_at"])
                )
            })
        }
    }
}

fn matchers_text(s: &Value) -> String {
    s["matchers"]
        .as_array()
        .map(|m| m.iter().map(text).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn would_hold_line(answer: &Value) -> String {
    let ids: Vec<String> = answer["incidents"]
        .as_array()
        .map(|ids| ids.iter().map(text).collect())
        .unwrap_or_default();
    let held = crate::words::count(ids.len(), "open incident", "open incidents");
    match ids.len() {
        0 => format!("it would hold {held}\n"),
        _ => format!("it would hold {held}: {}\n", ids.join(", ")),
    }
}

fn list_table(list: &Value) -> String {
    let silences = list.as_array().cloned().unwrap_or_default();
    if silences.is_empty() {
        return "no silences\n".to_string();
    }
    let rows: Vec<Vec<String>> = silences
        .iter()
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["state"]),
                when(&s["starts_at"]),
                when(&s["ends_at"]),
                text(&s["created_by"]),
                matchers_text(s),
                text(&s["comment"]),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "STARTS", "ENDS", "BY", "MATCHERS", "COMMENT"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_says_how_many_it_would_hold() {
        assert_eq!(
            would_hold_line(&json!({ "incidents": [] })),
            "it would hold no open incidents\n"
        );
        assert_eq!(
            would_hold_line(&json!({ "incidents": [4] })),
            "it would hold 1 open incident: 4\n"
        );
        assert_eq!(
            would_hold_line(&json!({ "incidents": [4, 9] })),
            "it would hold 2 open incidents: 4, 9\n"
        );
    }
}
