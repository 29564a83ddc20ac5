//! `tocsin report sr [--from --to]`: the support report (`GET /api/v1/reports/sr`) as
//! tables for people, or its JSON.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::client::{output, table, text, Client, ClientError};
use super::ApiArgs;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// SR deadlines and cadence, incident MTTA/MTTR and the pager load over a range
    /// (default: the last 7 days).
    Sr {
        /// Start of the range: RFC 3339, or a date (midnight UTC).
        #[arg(long)]
        from: Option<String>,
        /// End of the range (default: now).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn run(command: ReportCommand) -> ExitCode {
    let ReportCommand::Sr { from, to, api } = command;
    match sr(from, to, &api).await {
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

async fn sr(
    from: Option<String>,
    to: Option<String>,
    api: &ApiArgs,
) -> Result<String, ClientError> {
    let mut query = Vec::new();
    if let Some(from) = from {
        query.push(("from", from));
    }
    if let Some(to) = to {
        query.push(("to", to));
    }
    let report = Client::new(api)?.get("/api/v1/reports/sr", &query).await?;
    output(api, &report, tables)
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(row)
        .collect()
}

/// Seconds as minutes with one decimal; `-` for none.
fn minutes(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_string(), |s| format!("{:.1}m", s / 60.0))
}

fn share(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_string(), |s| format!("{:.0}%", s * 100.0))
}

fn tables(r: &Value) -> String {
    let mut out = format!("from {} to {}\n\n", text(&r["from"]), text(&r["to"]));
    out.push_str(&table(
        &[
            "SR",
            "OPENED",
            "DUE",
            "IN TIME",
            "SHARE",
            "FIRST RESP MEDIAN",
            "P90",
            "GAPS",
            "MISSED",
        ],
        &rows(&r["sr"], |l| {
            vec![
                text(&l["sr_severity"]),
                text(&l["cases_opened"]),
                text(&l["cases_due"]),
                text(&l["responded_within_deadline"]),
                share(&l["share_within_deadline"]),
                minutes(&l["first_response_seconds"]["median"]),
                minutes(&l["first_response_seconds"]["p90"]),
                text(&l["engagement_gaps"]),
                text(&l["engagement_missed"]),
            ]
        }),
    ));
    out.push('\n');
    out.push_str(&table(
        &["SEV", "INCIDENTS", "ACKED", "MTTA", "RESOLVED", "MTTR"],
        &rows(&r["lsi"], |l| {
            vec![
                text(&l["severity"]),
                text(&l["incidents"]),
                text(&l["acknowledged"]),
                minutes(&l["mtta_seconds"]),
                text(&l["resolved"]),
                minutes(&l["mttr_seconds"]),
            ]
        }),
    ));
    let pager = &r["pager"];
    out.push_str(&format!(
        "\npages: {}, at night: {} (night: {})\n\n",
        text(&pager["pages"]),
        text(&pager["pages_at_night"]),
        text(&pager["night"])
    ));
    for (title, key) in [("RULE", "by_rule"), ("RESPONDER", "by_responder")] {
        out.push_str(&table(
            &[title, "PAGES", "AT NIGHT"],
            &rows(&pager[key], |l| {
                vec![
                    text(&l["name"]),
                    text(&l["pages"]),
                    text(&l["pages_at_night"]),
                ]
            }),
        ));
        out.push('\n');
    }
    out
}
