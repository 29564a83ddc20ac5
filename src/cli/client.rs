//! `tocsin incidents list|show|ack|resolve|severity|declare|escalate|add-responder|assign`:
//! a client of the HTTP API. Tables for
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
        /// The page after the one whose last line said `--cursor N`.
        #[arg(long)]
        cursor: Option<String>,
        /// Text in the title, labels or notes.
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        /// Opened at or after this RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Opened before this RFC 3339 time.
        #[arg(long)]
        to: Option<String>,
    },
    /// Declare an incident nobody's monitor saw: routed and paged like any other.
    Declare {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        title: String,
        /// A service it hits (repeat for several).
        #[arg(long = "service")]
        services: Vec<String>,
        /// A region it hits (repeat for several).
        #[arg(long = "region")]
        regions: Vec<String>,
        /// A customer it hits (repeat; default: those the catalog places there).
        #[arg(long = "customer")]
        customers: Vec<String>,
        /// 0 (disaster) to 4, pinned; default: from the blast radius.
        #[arg(long)]
        severity: Option<u8>,
        #[arg(long, default_value = "")]
        description: String,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Page the next level of the escalation now.
    Escalate {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Add a responder: paged now, and told of every update after.
    AddResponder {
        id: i64,
        responder: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Make a responder the assignee, and page them.
    Assign {
        id: i64,
        responder: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
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
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Resolve, with an optional note.
    Resolve {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
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
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
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
    /// No `--by`, no name for the token and no `$USER`: nobody to act as.
    NoName,
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
            ClientError::NoName => write!(
                f,
                "who is acting? say who you are with --by NAME or set $USER"
            ),
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

    pub(super) async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}

/// Who acts: `--by`, else the signed-in name (the name of the token in use, as
/// `GET /api/v1/whoami` answers), else `$USER`; [`ClientError::NoName`] when none is there,
/// before anything is sent to act.
pub(super) async fn who(by: Option<String>, api: &ApiArgs) -> Result<String, ClientError> {
    if let Some(by) = by.filter(|b| !b.trim().is_empty()) {
        return Ok(by);
    }
    // Without a token there is no signed-in name to ask for.
    if api.token.as_deref().is_some_and(|t| !t.is_empty()) {
        match Client::new(api)?.get("/api/v1/whoami", &[]).await {
            Ok(me) => {
                if let Some(name) = me["name"].as_str().filter(|n| !n.is_empty()) {
                    return Ok(name.to_string());
                }
            }
            // An engine without the endpoint, or a token that may not read: no name known.
            Err(ClientError::Status {
                status: 403 | 404, ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    match std::env::var("USER") {
        Ok(user) if !user.trim().is_empty() => Ok(user),
        _ => Err(ClientError::NoName),
    }
}

/// The innermost cause ("Connection refused (os error 111)"), not reqwest's outer wrapper.
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
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
            cursor,
            q,
            service,
            region,
            customer,
            from,
            to,
        } => {
            let query: Vec<(&str, String)> = [
                ("status", status),
                ("severity", severity.map(|s| s.to_string())),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
                ("q", q),
                ("service", service),
                ("region", region),
                ("customer", customer),
                ("from", from),
                ("to", to),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
            let list = Client::new(&api)?.get("/api/v1/incidents", &query).await?;
            output(&api, &list, list_table)
        }
        IncidentsCommand::Declare {
            api,
            title,
            services,
            regions,
            customers,
            severity,
            description,
            by,
        } => {
            let by = who(by, &api).await?;
            let body = json!({
                "title": title, "severity": severity, "services": services,
                "regions": regions, "customers": customers, "description": description, "by": by,
            });
            let incident = Client::new(&api)?.post("/api/v1/incidents", body).await?;
            output(&api, &incident, |i| action_line("declared", i))
        }
        IncidentsCommand::Escalate { id, api, by } => {
            let by = who(by, &api).await?;
            let incident = Client::new(&api)?
                .post(
                    &format!("/api/v1/incidents/{id}/escalate"),
                    json!({ "by": by }),
                )
                .await?;
            output(&api, &incident, |i| action_line("escalated", i))
        }
        IncidentsCommand::AddResponder {
            id,
            responder,
            api,
            by,
        } => {
            let by = who(by, &api).await?;
            let body = json!({ "responder": responder, "by": by });
            let incident = Client::new(&api)?
                .post(&format!("/api/v1/incidents/{id}/responders"), body)
                .await?;
            output(&api, &incident, |i| {
                action_line(&format!("responder {responder} added"), i)
            })
        }
        IncidentsCommand::Assign {
            id,
            responder,
            api,
            by,
        } => {
            let by = who(by, &api).await?;
            let body = json!({ "responder": responder, "by": by });
            let incident = Client::new(&api)?
                .post(&format!("/api/v1/incidents/{id}/assign"), body)
                .await?;
            output(&api, &incident, |i| {
                action_line(&format!("assigned to {responder}"), i)
            })
        }
        IncidentsCommand::Show { id, api } => {
            let detail = Client::new(&api)?
                .get(&format!("/api/v1/incidents/{id}"), &[])
                .await?;
            output(&api, &detail, show_text)
        }
        IncidentsCommand::Ack { id, api, by } => {
            let by = who(by, &api).await?;
            let incident = Client::new(&api)?
                .post(&format!("/api/v1/incidents/{id}/ack"), json!({ "by": by }))
                .await?;
            output(&api, &incident, |i| action_line("acknowledged", i))
        }
        IncidentsCommand::Resolve { id, api, by, note } => {
            let by = who(by, &api).await?;
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
            let by = who(by, &api).await?;
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

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub(super) use crate::output::table;

/// A time from the API in the zone the command shows ("2026-01-05 04:00:00 EST"), or "-".
pub(super) fn when(v: &Value) -> String {
    match v {
        Value::String(t) => crate::output::times().show_text(t),
        other => text(other),
    }
}

fn list_table(list: &Value) -> String {
    let incidents = list["incidents"].as_array().cloned().unwrap_or_default();
    if incidents.is_empty() {
        return "no incidents\n".to_string();
    }
    let more = match list["next"].as_str() {
        Some(next) => format!("more: --cursor {next}\n"),
        None => String::new(),
    };
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            vec![
                text(&i["id"]),
                format!("Sev {}", text(&i["severity"])),
                text(&i["status"]),
                when(&i["opened_at"]),
                text(&i["services"]),
                text(&i["title"]),
            ]
        })
        .collect();
    table(
        &["ID", "SEV", "STATUS", "OPENED", "SERVICES", "TITLE"],
        &rows,
    ) + &more
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
        ("Opened", when(&i["opened_at"])),
        (
            "Acknowledged",
            match &i["acknowledged_by"] {
                Value::Null => "-".to_string(),
                by => format!("{} at {}", text(by), when(&i["acknowledged_at"])),
            },
        ),
        ("Resolved", when(&i["resolved_at"])),
        ("Services", text(&i["services"])),
        ("Regions", text(&i["regions"])),
        (
            "Customers",
            format!("{} ({})", text(&i["customers"]), text(&i["customer_count"])),
        ),
        ("Respond by", when(&i["respond_by"])),
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
                when(&m["started_at"]),
                match (m["cleared_at"].is_null(), m["firing_at_resolve"] == true) {
                    (true, true) => "still firing at resolve".to_string(),
                    _ => when(&m["cleared_at"]),
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
                when(&t["at"]),
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
    fn list_prints_the_columns_aligned_with_times_to_the_second() {
        let list = json!({ "incidents": [
            { "id": 12, "severity": 1, "status": "triggered", "opened_at": "2026-01-05T09:00:00.123Z", "services": ["storage", "sqldb"], "title": "storage down" },
            { "id": 3, "severity": 4, "status": "acknowledged", "opened_at": "2026-01-04T23:59:59Z", "services": [], "title": "slow" },
        ], "next": "3" });
        let out = list_table(&list);
        let lines: Vec<&str> = out.lines().collect();
        // Unit tests show times in UTC (see `output::times`).
        assert_eq!(
            lines[0],
            "ID  SEV    STATUS        OPENED                   SERVICES       TITLE"
        );
        assert_eq!(
            lines[1],
            "12  Sev 1  triggered     2026-01-05 09:00:00 UTC  storage,sqldb  storage down"
        );
        assert_eq!(
            lines[2],
            "3   Sev 4  acknowledged  2026-01-04 23:59:59 UTC  -              slow"
        );
        assert_eq!(lines[3], "more: --cursor 3");
        let empty = json!({ "incidents": [], "next": null });
        assert_eq!(list_table(&empty), "no incidents\n");
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
