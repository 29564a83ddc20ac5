//! `tocsin incidents list|show|ack|resolve|severity`: a client of the HTTP API. Tables for
//! people, `--output json` for scripts; every failure says what went wrong and exits 1.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum IncidentsCommand {
    /// id, severity, status, services and title of recent incidents, newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// triggered, acknowledged, resolved, or open (not resolved).
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
        #[arg(required_unless_present = "unpin", conflicts_with = "unpin")]
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

/// Why a request failed, in words a person can act on.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing answered (refused, unreachable, timed out).
    Unreachable { url: String, why: String },
    /// The engine answered with an error status.
    Status {
        status: u16,
        message: String,
        had_token: bool,
    },
    /// The engine answered 2xx with something that is not the JSON expected.
    Garbled(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { url, why } => {
                write!(f, "cannot reach the engine at {url}: {why} (is it running? see --url or TOCSIN_URL)")
            }
            ClientError::Status {
                status: 401,
                message,
                had_token,
            } => {
                let hint = if *had_token {
                    "the token was refused; check --token or TOCSIN_TOKEN"
                } else {
                    "this engine requires a token: pass --token or set TOCSIN_TOKEN"
                };
                write!(f, "401 unauthorized: {message} ({hint})")
            }
            ClientError::Status {
                status, message, ..
            } => {
                let reason = reqwest::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_lowercase();
                write!(f, "{status} {reason}: {message}")
            }
            ClientError::Garbled(why) => write!(f, "the engine's answer is not understood: {why}"),
        }
    }
}

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(super) fn new(api: &ApiArgs) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Garbled(e.to_string()))?;
        Ok(Client {
            http,
            base: api.url.trim_end_matches('/').to_string(),
            token: api.token.clone().filter(|t| !t.is_empty()),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            why: root_cause(&e),
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                why: root_cause(&e),
            })?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            return Err(ClientError::Status {
                status: status.as_u16(),
                message,
                had_token: self.token.is_some(),
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Garbled(e.to_string()))
    }

    pub(super) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }
}

/// The innermost cause ("Connection refused (os error 111)"), not reqwest's outer wrapper.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

pub async fn run(command: IncidentsCommand) -> ExitCode {
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

/// Run one command; returns what to print.
async fn execute(command: IncidentsCommand) -> Result<String, ClientError> {
    match command {
        IncidentsCommand::List {
            api,
            status,
            severity,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(s) = severity {
                query.push(("severity", s.to_string()));
            }
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            let list = Client::new(&api)?.get("/api/v1/incidents", &query).await?;
            output(&api, &list, list_table)
        }
        IncidentsCommand::Show { id, api } => {
            let detail = Client::new(&api)?
                .get(&format!("/api/v1/incidents/{id}"), &[])
                .await?;
            output(&api, &detail, show_text)
        }
        IncidentsCommand::Ack { id, api, by } => {
            let incident = Client::new(&api)?
                .post(&format!("/api/v1/incidents/{id}/ack"), json!({ "by": by }))
                .await?;
            output(&api, &incident, |i| action_line("acknowledged", i))
        }
        IncidentsCommand::Resolve { id, api, by, note } => {
            let incident = Client::new(&api)?
                .post(
                    &format!("/api/v1/incidents/{id}/resolve"),
                    json!({ "by": by, "note": note }),
                )
                .await?;
            output(&api, &incident, |i| action_line("resolved", i))
        }
        IncidentsCommand::Severity {
            id,
            severity,
            api,
            by,
            reason,
            unpin,
        } => {
            let severity = if unpin { None } else { severity };
            let incident = Client::new(&api)?
                .post(
                    &format!("/api/v1/incidents/{id}/severity"),
                    json!({ "severity": severity, "by": by, "reason": reason }),
                )
                .await?;
            let what = if unpin {
                "severity unpinned"
            } else {
                "severity set"
            };
            output(&api, &incident, |i| action_line(what, i))
        }
    }
}

pub(super) fn output(
    api: &ApiArgs,
    value: &Value,
    table: impl Fn(&Value) -> String,
) -> Result<String, ClientError> {
    if api.output == "json" {
        let mut text =
            serde_json::to_string_pretty(value).map_err(|e| ClientError::Garbled(e.to_string()))?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(table(value))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell; the last column runs free.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn list_table(list: &Value) -> String {
    let incidents = list.as_array().cloned().unwrap_or_default();
    if incidents.is_empty() {
        return "no incidents\n".to_string();
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            vec![
                text(&i["id"]),
                format!("Sev {}", text(&i["severity"])),
                text(&i["status"]),
                text(&i["services"]),
                text(&i["title"]),
            ]
        })
        .collect();
    table(&["ID", "SEV", "STATUS", "SERVICES", "TITLE"], &rows)
}

fn show_text(i: &Value) -> String {
    let mut out = format!("Incident {}: {}\n", text(&i["id"]), text(&i["title"]));
    let pinned = if i["pinned"] == Value::Bool(true) {
        " (pinned)"
    } else {
        ""
    };
    let fields = [
        ("Severity", format!("Sev {}{pinned}", text(&i["severity"]))),
        ("Status", text(&i["status"])),
        ("Opened", text(&i["opened_at"])),
        (
            "Acknowledged",
            match &i["acknowledged_by"] {
                Value::Null => "-".to_string(),
                by => format!("{} at {}", text(by), text(&i["acknowledged_at"])),
            },
        ),
        ("Resolved", text(&i["resolved_at"])),
        ("Services", text(&i["services"])),
        ("Regions", text(&i["regions"])),
        (
            "Customers",
            format!("{} ({})", text(&i["customers"]), text(&i["customer_count"])),
        ),
        ("Respond by", text(&i["respond_by"])),
        ("URL", text(&i["url"])),
    ];
    for (name, value) in fields {
        out.push_str(&format!("{name:<13}{value}\n"));
    }
    let impacts = i["impacts"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("\nImpacts ({})\n", impacts.len()));
    let rows: Vec<Vec<String>> = impacts
        .iter()
        .map(|m| {
            vec![
                text(&m["id"]),
                text(&m["kind"]),
                text(&m["service"]),
                text(&m["region"]),
                text(&m["started_at"]),
                match (m["cleared_at"].is_null(), m["firing_at_resolve"] == true) {
                    (true, true) => "still firing at resolve".to_string(),
                    _ => text(&m["cleared_at"]),
                },
                text(&m["summary"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ID", "KIND", "SERVICE", "REGION", "STARTED", "CLEARED", "SUMMARY",
        ],
        &rows,
    ));
    let timeline = i["timeline"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("\nTimeline ({})\n", timeline.len()));
    let rows: Vec<Vec<String>> = timeline
        .iter()
        .map(|t| {
            vec![
                text(&t["at"]),
                text(&t["kind"]),
                text(&t["actor"]),
                text(&t["message"]),
            ]
        })
        .collect();
    out.push_str(&table(&["AT", "KIND", "ACTOR", "MESSAGE"], &rows));
    out
}

fn action_line(what: &str, i: &Value) -> String {
    format!(
        "incident {} {what}: Sev {}, {}{}\n",
        text(&i["id"]),
        text(&i["severity"]),
        text(&i["status"]),
        match &i["acknowledged_by"] {
            Value::Null => String::new(),
            by => format!(" (acknowledged by {})", text(by)),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prints_the_five_columns_aligned() {
        let list = json!([
            { "id": 12, "severity": 1, "status": "triggered", "services": ["storage", "sqldb"], "title": "storage down" },
            { "id": 3, "severity": 4, "status": "acknowledged", "services": [], "title": "slow" },
        ]);
        let out = list_table(&list);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ID  SEV    STATUS        SERVICES       TITLE");
        assert_eq!(
            lines[1],
            "12  Sev 1  triggered     storage,sqldb  storage down"
        );
        assert_eq!(lines[2], "3   Sev 4  acknowledged  -              slow");
        assert_eq!(list_table(&json!([])), "no incidents\n");
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = ClientError::Status {
            status: 401,
            message: "missing or invalid bearer token".into(),
            had_token: false,
        };
        assert!(e.to_string().contains("--token"), "{e}");
        let e = ClientError::Status {
            status: 409,
            message: "incident 1 is resolved".into(),
            had_token: true,
        };
        assert_eq!(e.to_string(), "409 conflict: incident 1 is resolved");
        let e = ClientError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            why: "Connection refused (os error 111)".into(),
        };
        assert!(e.to_string().contains("Connection refused"), "{e}");
    }
}
