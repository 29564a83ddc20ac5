//! `tocsin oncall [--at T]`: who is on call in every schedule, as the engine answers
//! (overrides made at run time included); `tocsin oncall override|overrides|
//! remove-override` change and list those overrides.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{output, table, text, when, who, Client, ClientError};
use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum OncallCommand {
    /// Put RESPONDER on call in SCHEDULE from --start to --end.
    Override {
        schedule: String,
        responder: String,
        /// RFC 3339, e.g. 2026-03-08T09:00:00-05:00.
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The overrides of SCHEDULE made at run time.
    Overrides {
        schedule: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The calendar feed URL of a schedule or a responder (signed when auth is on, for
    /// calendar apps, which cannot send a token).
    FeedLink {
        /// A schedule's name or a responder's id.
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete an override made at run time.
    RemoveOverride {
        schedule: String,
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn run(command: Option<OncallCommand>, at: Option<String>, api: ApiArgs) -> ExitCode {
    let result = match command {
        None => on_call_now(at, &api).await,
        Some(command) => execute(command).await,
    };
    match result {
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

async fn on_call_now(at: Option<String>, api: &ApiArgs) -> Result<String, ClientError> {
    let query: Vec<(&str, String)> = at.into_iter().map(|t| ("at", t)).collect();
    let list = Client::new(api)?.get("/api/v1/oncall", &query).await?;
    output(api, &list, oncall_table)
}

async fn execute(command: OncallCommand) -> Result<String, ClientError> {
    match command {
        OncallCommand::Override {
            schedule,
            responder,
            start,
            end,
            by,
            api,
        } => {
            let by = who(by, &api).await?;
            let body =
                json!({ "responder": responder, "start": start, "end": end, "created_by": by });
            let made = Client::new(&api)?
                .post(&format!("/api/v1/schedules/{schedule}/overrides"), body)
                .await?;
            output(&api, &made, |o| {
                format!(
                    "override {}: {} is on call in {} from {} to {}\n",
                    text(&o["id"]),
                    text(&o["responder"]),
                    text(&o["schedule"]),
                    when(&o["start"]),
                    when(&o["end"])
                )
            })
        }
        OncallCommand::Overrides { schedule, api } => {
            let list = Client::new(&api)?
                .get(&format!("/api/v1/schedules/{schedule}/overrides"), &[])
                .await?;
            output(&api, &list, overrides_table)
        }
        OncallCommand::FeedLink { name, api } => {
            let client = Client::new(&api)?;
            let link = match client
                .get(&format!("/api/v1/schedules/{name}/feed-link"), &[])
                .await
            {
                Err(ClientError::Status { status: 404, .. }) => client
                    .get(&format!("/api/v1/responders/{name}/feed-link"), &[])
                    .await
                    .map_err(|e| match e {
                        ClientError::Status {
                            status: 404,
                            had_token,
                            ..
                        } => ClientError::Status {
                            status: 404,
                            message: format!("{name:?} is neither a schedule nor a responder"),
                            had_token,
                        },
                        e => e,
                    })?,
                other => other?,
            };
            output(&api, &link, |l| format!("{}\n", text(&l["url"])))
        }
        OncallCommand::RemoveOverride { schedule, id, api } => {
            let gone = Client::new(&api)?
                .delete(&format!("/api/v1/schedules/{schedule}/overrides/{id}"))
                .await?;
            output(&api, &gone, |o| {
                format!("override {} removed\n", text(&o["id"]))
            })
        }
    }
}

/// `tocsin test-page RESPONDER`: one line per channel; exits 1 when a delivery failed.
pub async fn test_page(responder: &str, api: &ApiArgs) -> ExitCode {
    let report = match Client::new(api) {
        Ok(client) => {
            client
                .post(&format!("/api/v1/responders/{responder}/test"), json!({}))
                .await
        }
        Err(e) => Err(e),
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tocsin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let all_ok = report["deliveries"]
        .as_array()
        .is_some_and(|d| d.iter().all(|d| d["ok"] == true));
    match output(api, &report, test_report) {
        Ok(out) => crate::output::write(&out),
        Err(e) => {
            eprintln!("tocsin: {e}");
            return ExitCode::FAILURE;
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn test_report(report: &Value) -> String {
    let mut out = String::new();
    for d in report["deliveries"].as_array().cloned().unwrap_or_default() {
        let what = if d["ok"] == true {
            "delivered".to_string()
        } else {
            format!("failed: {}", text(&d["error"]))
        };
        out.push_str(&format!(
            "{} {}: {what}\n",
            text(&d["channel"]),
            text(&d["address"])
        ));
    }
    out
}

fn oncall_table(list: &Value) -> String {
    let schedules = list.as_array().cloned().unwrap_or_default();
    if schedules.is_empty() {
        return "no schedules\n".to_string();
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|e| {
            vec![
                text(&e["schedule"]),
                match &e["responder"] {
                    Value::Null => "(nobody)".to_string(),
                    r => text(r),
                },
                when(&e["since"]),
                when(&e["until"]),
            ]
        })
        .collect();
    table(&["SCHEDULE", "RESPONDER", "SINCE", "UNTIL"], &rows)
}

fn overrides_table(list: &Value) -> String {
    let overrides = list.as_array().cloned().unwrap_or_default();
    if overrides.is_empty() {
        return "no overrides\n".to_string();
    }
    let rows: Vec<Vec<String>> = overrides
        .iter()
        .map(|o| {
            vec![
                text(&o["id"]),
                text(&o["responder"]),
                when(&o["start"]),
                when(&o["end"]),
                text(&o["created_by"]),
            ]
        })
        .collect();
    table(&["ID", "RESPONDER", "START", "END", "BY"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_call_names_each_schedule_and_says_nobody() {
        let out = oncall_table(&json!([
            { "schedule": "primary", "responder": "alice", "since": "2026-01-05T09:00:00Z", "until": null },
            { "schedule": "db", "responder": null, "since": null, "until": null },
        ]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "SCHEDULE  RESPONDER  SINCE                    UNTIL"
        );
        assert_eq!(lines[1], "primary   alice      2026-01-05 09:00:00 UTC  -");
        assert_eq!(lines[2], "db        (nobody)   -                        -");
    }
}
