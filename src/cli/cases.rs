//! `tocsin cases open|list|show|take|respond|update|exit|resolve|escalate`: support cases
//! through the HTTP API, as `tocsin incidents` works incidents.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{output, Client, ClientError};
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
        #[arg(long, env = "USER")]
        by: String,
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
        #[arg(long, env = "USER")]
        by: String,
    },
    /// Acknowledge the case's page: its escalation to the policy's next level stops.
    Ack {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
    },
    /// The first response (meets the initial-response deadline).
    Respond {
        id: i64,
        text: String,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
    },
    /// A later update; --notify-customer emails it to the customer's case owner.
    Update {
        id: i64,
        text: String,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long)]
        notify_customer: bool,
    },
    /// The customer asked to stop continuous work (SR B).
    Exit {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Close the case.
    Resolve {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Hand the case to engineering as a CRI.
    Escalate {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, env = "USER")]
        by: String,
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
    let (api, path, body, what) = match command {
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
                "sr_severity": sr_severity, "summary": summary, "by": by,
                "contact": { "name": contact_name, "email": contact_email, "phone": contact_phone },
            });
            (api, "/api/v1/cases".to_string(), body, "opened")
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
            json!({ "by": by }),
            "taken",
        ),
        CasesCommand::Ack { id, api, by } => (
            api,
            format!("/api/v1/cases/{id}/ack"),
            json!({ "by": by }),
            "acknowledged",
        ),
        CasesCommand::Respond { id, text, api, by } => (
            api,
            format!("/api/v1/cases/{id}/respond"),
            json!({ "by": by, "text": text }),
            "responded to",
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
            json!({ "by": by, "text": text, "notify_customer": notify_customer }),
            "updated",
        ),
        CasesCommand::Exit { id, api, by, note } => (
            api,
            format!("/api/v1/cases/{id}/customer-exit"),
            json!({ "by": by, "note": note }),
            "exited by the customer",
        ),
        CasesCommand::Resolve { id, api, by, note } => (
            api,
            format!("/api/v1/cases/{id}/resolve"),
            json!({ "by": by, "note": note }),
            "resolved",
        ),
        CasesCommand::Escalate { id, api, by, kind } => (
            api,
            format!("/api/v1/cases/{id}/escalate"),
            json!({ "by": by, "kind": kind }),
            "escalated",
        ),
    };
    let case = Client::new(&api)?.post(&path, body).await?;
    output(&api, &case, |c| action_line(what, c))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
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
        text(&c["respond_by"]),
    )
}

fn list_table(list: &Value) -> String {
    let mut out = format!(
        "{:<6} {:<3} {:<9} {:<16} {:<14} {:<14} {:<12} {}\n",
        "ID", "SR", "STATUS", "CUSTOMER", "SERVICE", "REGION", "OWNER", "RESPOND BY"
    );
    for c in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push_str(&format!(
            "{:<6} {:<3} {:<9} {:<16} {:<14} {:<14} {:<12} {}\n",
            text(&c["id"]),
            text(&c["sr_severity"]),
            text(&c["status"]),
            text(&c["customer"]),
            text(&c["service"]),
            text(&c["region"]),
            text(&c["owner"]),
            text(&c["respond_by"]),
        ));
    }
    out
}

fn show_text(c: &Value) -> String {
    let mut out = action_line("", c).replacen("case", "Case", 1);
    out.push_str(&format!("Summary: {}\n", text(&c["summary"])));
    if let Some(incident) = c.get("incident").filter(|i| !i.is_null()) {
        out.push_str(&format!(
            "Incident {}: Sev {}, {}\n",
            text(&incident["id"]),
            text(&incident["severity"]),
            text(&incident["status"])
        ));
    }
    out.push_str("Timeline:\n");
    for e in c["timeline"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "  {} {:<20} {:<10} {}\n",
            text(&e["at"]),
            text(&e["kind"]),
            text(&e["actor"]),
            text(&e["message"])
        ));
    }
    out
}
