//! The incident page's timeline and severity heading: one row per page with its delivery
//! state, and the words for a severity taken from the reason the incident recorded.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::render::time;
use super::view::person;
use crate::engine::Setup;
use crate::incident::TimelineEntry;
use crate::store::{OutboxEntry, OutboxStatus};

/// One line of the incident's history as the page shows it.
#[derive(Serialize, Debug)]
pub struct TimelineRow {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub message: String,
    /// For a page: `queued`, `sent`, `failing` or `dead`.
    pub delivery: Option<&'static str>,
    /// For a page: what the delivery state says (when sent, the attempts, the next try).
    pub delivery_detail: Option<String>,
    /// For a page that failed at least once: the last error.
    pub error: Option<String>,
    #[serde(skip)]
    sort_at: DateTime<Utc>,
}

/// A page's delivery state in the dashboard's words: `queued` (not tried yet), `sent`,
/// `failing` (tried, failed, to be retried) or `dead` (given up).
pub fn delivery_state(entry: &OutboxEntry) -> &'static str {
    match entry.status {
        OutboxStatus::Delivered => "sent",
        OutboxStatus::Pending if entry.attempts == 0 => "queued",
        OutboxStatus::Pending => "failing",
        OutboxStatus::Failed => "dead",
    }
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn page_row(setup: &Setup, entry: &OutboxEntry) -> TimelineRow {
    let page = &entry.page;
    let delivery = delivery_state(entry);
    let detail = match delivery {
        "sent" => entry.delivered_at.map(|at| format!("at {}", time(at))),
        "queued" => None,
        "failing" => Some(format!(
            "{} failed; next try at {}",
            plural(entry.attempts, "attempt"),
            time(entry.next_attempt_at)
        )),
        _ => Some(format!(
            "given up after {}",
            plural(entry.attempts, "attempt")
        )),
    };
    let level = match (&page.payload.escalation.policy, page.level) {
        (Some(policy), Some(level)) => format!(" (level {level} of {policy})"),
        _ => String::new(),
    };
    TimelineRow {
        at: time(page.created_at),
        kind: "page".to_string(),
        actor: "tocsin".to_string(),
        message: format!(
            "{} page to {} by {}{level}",
            page.event,
            person(setup, &page.recipient.id),
            page.recipient.channel.as_str()
        ),
        delivery: Some(delivery),
        delivery_detail: detail,
        error: match entry.status {
            OutboxStatus::Delivered => None,
            _ => entry.last_error.clone(),
        },
        sort_at: page.created_at,
    }
}

/// Does a page row tell what stored entry `e` tells? A `paged` entry names the pages made at
/// its time for its event (times compared to the millisecond, as the store keeps them); a
/// delivery's entries (`delivery_attempt`, `delivered`, `delivery_failed`) name their page by
/// its delivery id, and the page's row shows its state and last error.
fn told_by_pages(e: &TimelineEntry, pages: &[OutboxEntry]) -> bool {
    let delivery = e.data.get("delivery_id").and_then(|v| v.as_str());
    if matches!(
        e.kind.as_str(),
        "delivery_attempt" | "delivered" | "delivery_failed"
    ) && delivery.is_some_and(|id| pages.iter().any(|p| p.page.delivery_id == id))
    {
        return true;
    }
    match e.kind.as_str() {
        "paged" => {
            let event = e.data.get("event").and_then(|v| v.as_str());
            pages.iter().any(|p| {
                p.page.created_at.timestamp_millis() == e.at.timestamp_millis()
                    && Some(p.page.event.as_str()) == event
            })
        }
        "delivery_failed" => {
            let recipient = e
                .data
                .get("recipient")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            pages.iter().any(|p| {
                p.status == OutboxStatus::Failed
                    && recipient.starts_with(&format!("{} (", p.page.recipient.id))
            })
        }
        _ => false,
    }
}

/// The stored timeline with one row per page (per delivery) in place of the entries that
/// only said who was paged, so each page appears once, with how it fared: impacts,
/// severity changes, pages, acks, notes.
pub fn timeline(
    setup: &Setup,
    entries: &[TimelineEntry],
    pages: &[OutboxEntry],
) -> Vec<TimelineRow> {
    let mut rows: Vec<TimelineRow> = entries
        .iter()
        .filter(|e| !told_by_pages(e, pages))
        .map(|e| TimelineRow {
            at: time(e.at),
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            message: e.message.clone(),
            delivery: None,
            delivery_detail: None,
            error: None,
            sort_at: e.at,
        })
        .collect();
    rows.extend(pages.iter().map(|p| page_row(setup, p)));
    // Stable: at equal times (to the millisecond, as stored) the stored entries (routed,
    // opened) come before their pages.
    rows.sort_by_key(|r| r.sort_at.timestamp_millis());
    rows
}

/// The text of the parenthesised group that begins at `open` (a `(`), nested groups and
/// all: "SLA breached" of "(SLA breached): …".
fn group(text: &str, open: usize) -> Option<&str> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The severity an entry set and why, from its message (see `incident::timeline`).
fn set_by(entry: &TimelineEntry) -> Option<(u8, String)> {
    let m = entry.message.as_str();
    match entry.kind.as_str() {
        // "opened at Sev 2 (SLA breached): …", "declared by bob at Sev 1 (…): …"
        "opened" => {
            let at = m
                .find(" at Sev ")
                .map(|i| i + " at Sev ".len())
                .or_else(|| {
                    m.starts_with("opened at Sev ")
                        .then_some("opened at Sev ".len())
                })?;
            let severity = m[at..].chars().next()?.to_digit(10)? as u8;
            let open = at + 2;
            (m[open..].starts_with('(')).then_some(())?;
            Some((severity, group(m, open)?.to_string()))
        }
        // "severity raised from Sev 2 to Sev 1 (…)"
        // "severity set from Sev 2 to Sev 1 and pinned by bob: reason"
        "severity_changed" => {
            let to = m.find(" to Sev ")? + " to Sev ".len();
            let severity = m[to..].chars().next()?.to_digit(10)? as u8;
            let rest = &m[to + 1..];
            if let Some(by) = rest.strip_prefix(" and pinned by ") {
                return Some((severity, format!("set by {by}")));
            }
            let open = to + 2;
            (m[open..].starts_with('(')).then_some(())?;
            Some((severity, group(m, open)?.to_string()))
        }
        _ => None,
    }
}

/// Why the incident is at `severity`, in the words its timeline recorded when it got there
/// ("severity floor 1 set by a rule", "set by bob: one region"); `None` when the timeline
/// does not say (the heading then claims nothing).
pub fn severity_reason(entries: &[TimelineEntry], severity: u8) -> Option<String> {
    let (set, reason) = entries.iter().rev().find_map(set_by)?;
    (set == severity).then_some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::incident::timeline::Entry;
    use crate::paging::{Channel, Page, PageEvent, PagePayload, Recipient};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::seconds(s)
    }

    fn row(entry: Entry, s: i64) -> TimelineEntry {
        TimelineEntry {
            incident_id: 1,
            at: at(s),
            kind: entry.kind().to_string(),
            actor: entry.actor().to_string(),
            message: entry.message(),
            data: entry.data(),
        }
    }

    fn page(id: i64, who: &str, status: OutboxStatus, attempts: u32) -> OutboxEntry {
        let incident = crate::incident::Incident::opened_by(
            1,
            &crate::incident::Impact {
                id: 1,
                incident_id: 1,
                rule: "r".into(),
                fingerprint: crate::signal::Fingerprint(1),
                source: crate::signal::SourceKind::Alert,
                kind: crate::config::ImpactKind::Outage,
                sla_breach: true,
                business_impact: None,
                severity_floor: None,
                service: None,
                region: None,
                customers: Default::default(),
                labels: Default::default(),
                summary: "s".into(),
                started_at: at(0),
                cleared_at: None,
                firing_at_resolve: false,
                annotations: Default::default(),
                cri: None,
                inhibited_by: None,
                sla_measured: None,
            },
            2,
            at(0),
        );
        OutboxEntry {
            page: Page {
                id,
                delivery_id: format!("d{id}"),
                incident_id: 1,
                case_id: None,
                event: PageEvent::Triggered,
                recipient: Recipient {
                    id: who.into(),
                    channel: Channel::Email,
                    address: format!("{who}@example.com"),
                },
                level: Some(0),
                payload: PagePayload {
                    version: "1".into(),
                    event: PageEvent::Triggered,
                    incident: crate::incident::IncidentView::new(&incident, ""),
                    escalation: crate::paging::page::EscalationRef {
                        policy: Some("default".into()),
                        level: Some(0),
                    },
                    recipient: who.into(),
                    ack_url: None,
                    context: None,
                    case: None,
                    tsg_action: None,
                },
                created_at: at(1),
            },
            status,
            attempts,
            next_attempt_at: at(30),
            delivered_at: (status == OutboxStatus::Delivered).then(|| at(2)),
            last_error: (attempts > 0).then(|| "connection refused".to_string()),
        }
    }

    #[test]
    fn each_page_is_one_row_with_its_delivery_state() {
        let setup = crate::engine::Setup::new(Config::default(), None);
        let entries = vec![
            row(
                Entry::Opened {
                    rule: "r".into(),
                    severity: 2,
                    reason: "SLA breached".into(),
                    summary: "s".into(),
                },
                0,
            ),
            row(
                Entry::PagedLevel {
                    event: "triggered",
                    level: 0,
                    policy: "default".into(),
                    reached: vec!["alice (email)".into(), "bob (email)".into()],
                },
                1,
            ),
            row(
                Entry::DeliveryFailed {
                    recipient: "bob (email bob@example.com)".into(),
                    level: Some(0),
                    reason: "connection refused".into(),
                },
                40,
            ),
        ];
        let pages = [
            page(1, "alice", OutboxStatus::Delivered, 1),
            page(2, "bob", OutboxStatus::Failed, 5),
            page(3, "carol", OutboxStatus::Pending, 2),
            page(4, "dave", OutboxStatus::Pending, 0),
        ];
        let rows = timeline(&setup, &entries, &pages);
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["opened", "page", "page", "page", "page"],
            "{rows:?}"
        );
        let states: Vec<_> = rows[1..].iter().map(|r| r.delivery.unwrap()).collect();
        assert_eq!(states, ["sent", "dead", "failing", "queued"]);
        assert_eq!(
            rows[1].message,
            "triggered page to alice by email (level 0 of default)"
        );
        assert_eq!(rows[1].error, None);
        assert_eq!(rows[2].error.as_deref(), Some("connection refused"));
        assert_eq!(
            rows[2].delivery_detail.as_deref(),
            Some("given up after 5 attempts")
        );
        assert!(rows[3]
            .delivery_detail
            .as_deref()
            .unwrap()
            .starts_with("2 attempts failed; next try at"));

        // Without its pages (pruned), the stored entries tell what they can.
        let rows = timeline(&setup, &entries, &[]);
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn the_heading_gives_the_recorded_reason_and_never_another() {
        let opened = |severity, reason: &str| {
            row(
                Entry::Opened {
                    rule: "r".into(),
                    severity,
                    reason: reason.into(),
                    summary: "disk (sdb) failing".into(),
                },
                0,
            )
        };
        // A rule's floor: the words say so, not "multi-region".
        let floor = [opened(1, "severity floor 1 set by a rule")];
        assert_eq!(
            severity_reason(&floor, 1).as_deref(),
            Some("severity floor 1 set by a rule")
        );
        // Nested parentheses in the reason and the summary.
        let nested = [opened(
            2,
            "data loss, corruption or security impact on 1 customer(s)",
        )];
        assert_eq!(
            severity_reason(&nested, 2).as_deref(),
            Some("data loss, corruption or security impact on 1 customer(s)")
        );
        // Raised by the blast radius, then set by a person: the latest wins.
        let mut raised = vec![
            opened(2, "SLA breached"),
            row(
                Entry::SeverityRaised {
                    cause: "r".into(),
                    from: 2,
                    to: 1,
                    reason: "major impact on 2 customers across 2 regions and 1 services".into(),
                },
                5,
            ),
        ];
        assert_eq!(
            severity_reason(&raised, 1).as_deref(),
            Some("major impact on 2 customers across 2 regions and 1 services")
        );
        raised.push(row(
            Entry::SeveritySet {
                by: "bob".into(),
                from: 1,
                to: 3,
                reason: Some("one region, contained".into()),
            },
            9,
        ));
        assert_eq!(
            severity_reason(&raised, 3).as_deref(),
            Some("set by bob: one region, contained")
        );
        // Declared by hand.
        let declared = [row(
            Entry::Declared {
                by: "erin".into(),
                severity: 2,
                reason: "SLA breached".into(),
                title: "t".into(),
                description: String::new(),
            },
            0,
        )];
        assert_eq!(
            severity_reason(&declared, 2).as_deref(),
            Some("SLA breached")
        );
        // A severity the timeline does not explain claims nothing.
        assert_eq!(severity_reason(&floor, 0), None);
        assert_eq!(severity_reason(&[], 2), None);
    }
}
