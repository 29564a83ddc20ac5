//! `tocsin cases open|list|show|take|respond|update|exit|resolve|escalate`: support cases
//! through the HTTP API, as `tocsin incidents` works incidents.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{output, table, text, when, who, Client, ClientError};
use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum CasesCommand {
    /// Open a case for a customer's service request.
    Open {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        customer: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        region: String,
        /// A, B or C.
        #[arg(long)]
        sr_severity: String,
        #[arg(long)]
        summary: String,
        /// The customer's case owner.
        #[arg(long)]
        contact_name: String,
        #[arg(long)]
        contact_email: Option<String>,
        #[arg(long)]
        contact_phone: Option<String>,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Recent cases, newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// open, or all.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        customer: Option<String>,
    },
    /// One case with its timeline.
    Show {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take the case: you own it.
    Take {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Acknowledge the case's page: its escalation to the policy's next level stops.
    Ack {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// The first response (meets the initial-response deadline).
    Respond {
        id: i64,
        text: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// A later update; --notify-customer emails it to the customer's case owner.
    Update {
        id: i64,
        text: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        notify_customer: bool,
    },
    /// The customer asked to stop continuous work (SR B).
    Exit {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Close the case.
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
    /// Hand the case to engineering as a CRI.
    Escalate {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        /// Who acts (default: the token's name, else $USER).
        #[arg(long)]
        by: Option<String>,
        /// outage, degradation, latency, data_loss, data_corruption, security or other.
        #[arg(long)]
        kind: Option<String>,
    },
}

pub async fn run(command: CasesCommand) -> ExitCode {
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

async fn execute(command: CasesCommand) -> Result<String, ClientError> {
    let (api, path, mut body, what, by) = match command {
        CasesCommand::Open {
            api,
            customer,
            service,
            region,
            sr_severity,
            summary,
            contact_name,
            contact_email,
            contact_phone,
            by,
        } => {
            let body = json!({
                "customer": customer, "service": service, "region": region,
                "sr_severity": sr_severity, "summary": summary,
                "contact": { "name": contact_name, "email": contact_email, "phone": contact_phone },
            });
            (api, "/api/v1/cases".to_string(), body, "opened", by)
        }
        CasesCommand::List {
            api,
            status,
            customer,
        } => {
            let mut query = Vec::new();
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(c) = customer {
                query.push(("customer", c));
            }
            let list = Client::new(&api)?.get("/api/v1/cases", &query).await?;
            return output(&api, &list, list_table);
        }
        CasesCommand::Show { id, api } => {
            let case = Client::new(&api)?
                .get(&format!("/api/v1/cases/{id}"), &[])
                .await?;
            return output(&api, &case, show_text);
        }
        CasesCommand::Take { id, api, by } => (
            api,
            format!("/api/v1/cases/{id}/take"),
            json!({}),
            "taken",
            by,
        ),
        CasesCommand::Ack { id, api, by } => (
            api,
            format!("/api/v1/cases/{id}/ack"),
            json!({}),
            "acknowledged",
            by,
        ),
        CasesCommand::Respond { id, text, api, by } => (
            api,
            format!("/api/v1/cases/{id}/respond"),
            json!({ "text": text }),
            "responded to",
            by,
        ),
        CasesCommand::Update {
            id,
            text,
            api,
            by,
            notify_customer,
        } => (
            api,
            format!("/api/v1/cases/{id}/updates"),
            json!({ "text": text, "notify_customer": notify_customer }),
            "updated",
            by,
        ),
        CasesCommand::Exit { id, api, by, note } => (
            api,
            format!("/api/v1/cases/{id}/customer-exit"),
            json!({ "note": note }),
            "exited by the customer",
            by,
        ),
        CasesCommand::Resolve { id, api, by, note } => (
            api,
            format!("/api/v1/cases/{id}/resolve"),
            json!({ "note": note }),
            "resolved",
            by,
        ),
        CasesCommand::Escalate { id, api, by, kind } => (
            api,
            format!("/api/v1/cases/{id}/escalate"),
            json!({ "kind": kind }),
            "escalated",
            by,
        ),
    };
    body["by"] = Value::String(who(by, &api).await?);
    let case = Client::new(&api)?.post(&path, body).await?;
    output(&api, &case, |c| action_line(what, c))
}

fn action_line(what: &str, c: &Value) -> String {
    let incident = match &c["incident_id"] {
        Value::Null => String::new(),
        id => format!(", incident {}", text(id)),
    };
    format!(
        "case {} {what}: SR {} {}, owner {}, respond by {}{incident}\n",
        text(&c["id"]),
        text(&c["sr_severity"]),
        text(&c["status"]),
        text(&c["owner"]),
        when(&c["respond_by"]),
    )
}

fn list_table(list: &Value) -> String {
    let cases = list.as_array().cloned().unwrap_or_default();
    if cases.is_empty() {
        return "no cases\n".to_string();
    }
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|c| {
            vec![
                text(&c["id"]),
                text(&c["sr_severity"]),
                text(&c["status"]),
                text(&c["customer"]),
                text(&c["service"]),
                text(&c["region"]),
                text(&c["owner"]),
                when(&c["respond_by"]),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "SR",
            "STATUS",
            "CUSTOMER",
            "SERVICE",
            "REGION",
            "OWNER",
            "RESPOND BY",
        ],
        &rows,
    )
}

fn show_text(c: &Value) -> String {
    let mut out = action_line("", c)
        .replacen("case", "Case", 1)
        .replacen(" :", ":", 1);
    out.push_str(&format!("Summary: {}\n", text(&c["summary"])));
    if let Some(incident) = c.get("incident").filter(|i| !i.is_null()) {
        out.push_str(&format!(
            "Incident {}: Sev {}, {}\n",
            text(&incident["id"]),
            text(&incident["severity"]),
            text(&incident["status"])
        ));
    }
    let timeline = c["timeline"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("\nTimeline ({})\n", timeline.len()));
    let rows: Vec<Vec<String>> = timeline
        .iter()
        .map(|e| {
            vec![
                when(&e["at"]),
                text(&e["kind"]),
                text(&e["actor"]),
                text(&e["message"]),
            ]
        })
        .collect();
    out.push_str(&table(&["AT", "KIND", "ACTOR", "MESSAGE"], &rows));
    out
}
