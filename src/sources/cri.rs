//! Customer-reported incidents (`POST /api/v1/cri`): a report is checked field by field, so
//! the answer names every field to fix at once, then becomes a `source="cri"` signal whose
//! incident must get an initial response within `sr_response[sr_severity]`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::config::SrResponseConfig;
use crate::signal::{Contact, CriDetails, Signal};

/// Longest summary, in bytes.
pub const MAX_SUMMARY: usize = 64 * 1024;
/// Longest customer, service, region or contact field, in characters.
const MAX_FIELD: usize = 256;
pub const KINDS: [&str; 7] = [
    "outage",
    "degradation",
    "latency",
    "data_loss",
    "data_corruption",
    "security",
    "other",
];

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CriError {
    /// Not the shape of a report (not JSON, a field of the wrong type): 400.
    #[error("{0}")]
    Body(String),
    /// Well-formed, but these fields need fixing: 422.
    #[error("the report has {} invalid field(s)", .0.len())]
    Fields(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    customer: Option<String>,
    service: Option<String>,
    region: Option<String>,
    sr_severity: Option<String>,
    summary: Option<String>,
    contact: Option<ContactBody>,
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// A report that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerReport {
    pub customer: String,
    pub service: String,
    pub region: String,
    pub sr_severity: String,
    pub summary: String,
    pub contact: Contact,
    pub kind: Option<String>,
}

/// Parse and check a report body.
pub fn parse(body: &[u8]) -> Result<CustomerReport, CriError> {
    use crate::decode::DecodeError;
    let report: ReportBody = crate::decode::from_slice(body, "the report").map_err(|e| {
        CriError::Body(match e {
            DecodeError::Invalid(why) => format!("invalid report: {why}"),
            other => other.to_string(),
        })
    })?;
    let mut bad = BTreeMap::new();
    let customer = required(&mut bad, "customer", report.customer);
    let service = required(&mut bad, "service", report.service);
    let region = required(&mut bad, "region", report.region);
    let summary = match report.summary.map(|s| s.trim().to_string()) {
        Some(s) if s.is_empty() => {
            bad.insert("summary".into(), "must describe the problem".into());
            None
        }
        None => {
            bad.insert("summary".into(), "is required".into());
            None
        }
        Some(s) if s.len() > MAX_SUMMARY => {
            bad.insert(
                "summary".into(),
                format!("is {} bytes, at most {MAX_SUMMARY} allowed", s.len()),
            );
            None
        }
        Some(s) => Some(s),
    };
    let sr_severity = match report.sr_severity.as_deref().map(str::trim) {
        Some(s @ ("A" | "B" | "C")) => Some(s.to_string()),
        Some(other) => {
            bad.insert(
                "sr_severity".into(),
                format!("{other:?} is not an SR severity: expected A, B or C"),
            );
            None
        }
        None => {
            bad.insert("sr_severity".into(), "is required: A, B or C".into());
            None
        }
    };
    let kind = match report.kind.as_deref().map(str::trim) {
        None => None,
        Some(k) if KINDS.contains(&k) => Some(k.to_string()),
        Some(other) => {
            bad.insert(
                "kind".into(),
                format!(
                    "{other:?} is not a kind: expected one of {}",
                    KINDS.join(", ")
                ),
            );
            None
        }
    };
    let contact = contact(&mut bad, report.contact);
    // Every `None` above has its entry in `bad`.
    let (
        Some(customer),
        Some(service),
        Some(region),
        Some(summary),
        Some(sr_severity),
        Some(contact),
    ) = (customer, service, region, summary, sr_severity, contact)
    else {
        return Err(CriError::Fields(bad));
    };
    if !bad.is_empty() {
        return Err(CriError::Fields(bad));
    }
    Ok(CustomerReport {
        customer,
        service,
        region,
        sr_severity,
        summary,
        contact,
        kind,
    })
}

/// The reference asks for "accurate contact information for case owners": a name, and a
/// way to reach them (email or phone).
fn contact(bad: &mut BTreeMap<String, String>, body: Option<ContactBody>) -> Option<Contact> {
    let Some(body) = body else {
        bad.insert(
            "contact".into(),
            "is required: the case owner's name and an email or phone".into(),
        );
        return None;
    };
    let before = bad.len();
    let name = required(bad, "contact.name", body.name);
    let email = optional(bad, "contact.email", body.email);
    let phone = optional(bad, "contact.phone", body.phone);
    if let Some(email) = &email {
        if !looks_like_email(email) {
            bad.insert(
                "contact.email".into(),
                format!("{email:?} is not an email address"),
            );
        }
    }
    if let Some(phone) = &phone {
        if !looks_like_phone(phone) {
            bad.insert(
                "contact.phone".into(),
                format!("{phone:?} is not a phone number: expected digits, spaces, + - ( )"),
            );
        }
    }
    if email.is_none()
        && phone.is_none()
        && !bad.contains_key("contact.email")
        && !bad.contains_key("contact.phone")
    {
        bad.insert(
            "contact.email".into(),
            "an email or a phone number is required to reach the case owner".into(),
        );
    }
    if bad.len() != before {
        return None;
    }
    Some(Contact { name, email, phone })
}

fn required(
    bad: &mut BTreeMap<String, String>,
    field: &str,
    value: Option<String>,
) -> Option<String> {
    match value.map(|v| v.trim().to_string()) {
        None => {
            bad.insert(field.into(), "is required".into());
            None
        }
        Some(v) if v.is_empty() => {
            bad.insert(field.into(), "must not be empty".into());
            None
        }
        Some(v) if v.chars().count() > MAX_FIELD => {
            bad.insert(
                field.into(),
                format!("is longer than {MAX_FIELD} characters"),
            );
            None
        }
        Some(v) => Some(v),
    }
}

/// An empty optional field counts as absent.
fn optional(
    bad: &mut BTreeMap<String, String>,
    field: &str,
    value: Option<String>,
) -> Option<String> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())?;
    if value.chars().count() > MAX_FIELD {
        bad.insert(
            field.into(),
            format!("is longer than {MAX_FIELD} characters"),
        );
        return None;
    }
    Some(value)
}

/// `local@domain.tld`, no spaces: a typo check, not RFC 5322.
fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !text.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
}

fn looks_like_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits >= 5
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
}

impl CustomerReport {
    /// The report as a signal received at `now`, due an initial response by
    /// `now + sr_response[sr_severity]`.
    pub fn into_signal(self, now: DateTime<Utc>, sr_response: &SrResponseConfig) -> Signal {
        let deadline = sr_response
            .deadline(&self.sr_severity)
            .map(|d| d.chrono())
            .unwrap_or_default();
        let mut labels = BTreeMap::from([
            ("customer".to_string(), self.customer),
            ("service".to_string(), self.service),
            ("region".to_string(), self.region),
            ("sr_severity".to_string(), self.sr_severity.clone()),
        ]);
        if let Some(kind) = self.kind {
            labels.insert("kind".into(), kind);
        }
        let details = CriDetails {
            id: uuid::Uuid::new_v4().to_string(),
            sr_severity: self.sr_severity,
            contact: self.contact,
            received_at: now,
            respond_by: now + deadline,
        };
        Signal::customer_report(labels, Some(self.summary), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: serde_json::Value) -> Result<CustomerReport, CriError> {
        parse(body.to_string().as_bytes())
    }

    fn good() -> serde_json::Value {
        json!({
            "customer": "contoso", "service": "storage", "region": "china-east",
            "sr_severity": "A", "summary": "uploads fail",
            "contact": { "name": "Dana", "email": "dana@contoso.com" }
        })
    }

    #[test]
    fn a_good_report_becomes_a_cri_signal_due_by_its_sr_deadline() {
        let report = check(good()).unwrap();
        let now = Utc::now();
        let signal = report.into_signal(now, &SrResponseConfig::default());
        assert_eq!(signal.source, crate::signal::SourceKind::Cri);
        assert_eq!(signal.label("customer"), Some("contoso"));
        assert_eq!(signal.label("sr_severity"), Some("A"));
        assert_eq!(signal.label("kind"), None);
        assert_eq!(&signal.annotations["summary"], "uploads fail");
        let cri = signal.cri.unwrap();
        assert_eq!(cri.respond_by - cri.received_at, chrono::Duration::hours(2));
        assert_eq!(cri.contact.email.as_deref(), Some("dana@contoso.com"));
        let other = check(good())
            .unwrap()
            .into_signal(now, &SrResponseConfig::default());
        assert_ne!(other.cri.unwrap().id, cri.id, "every report has its own id");
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = check(json!({
            "service": "", "region": "china-east", "sr_severity": "D",
            "summary": "x".repeat(MAX_SUMMARY + 1), "kind": "meltdown",
            "contact": { "email": "not-an-address" }
        }))
        .unwrap_err();
        let CriError::Fields(fields) = err else {
            panic!("{err:?}")
        };
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "contact.email",
                "contact.name",
                "customer",
                "kind",
                "service",
                "sr_severity",
                "summary"
            ]
        );
    }

    #[test]
    fn a_contact_needs_a_way_to_reach_them() {
        let mut body = good();
        body["contact"] = json!({ "name": "Dana" });
        let Err(CriError::Fields(fields)) = check(body.clone()) else {
            panic!()
        };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["contact.email"]);
        body["contact"] = json!({ "name": "Dana", "phone": "+86 21 5555 0100" });
        assert!(check(body.clone()).is_ok());
        body["contact"] = json!({ "name": "Dana", "phone": "call me" });
        let Err(CriError::Fields(fields)) = check(body.clone()) else {
            panic!()
        };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["contact.phone"]);
        body.as_object_mut().unwrap().remove("contact");
        let Err(CriError::Fields(fields)) = check(body) else {
            panic!()
        };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["contact"]);
    }

    #[test]
    fn wrong_types_and_non_json_are_body_errors() {
        let mut body = good();
        body["customer"] = json!(42);
        let err = check(body).unwrap_err();
        assert!(
            matches!(&err, CriError::Body(m) if m.contains("customer")),
            "{err:?}"
        );
        assert!(matches!(parse(b"nope"), Err(CriError::Body(_))));
        assert!(matches!(parse(b"\xff"), Err(CriError::Body(_))));
        assert!(matches!(parse(b"[]"), Err(CriError::Body(_))));
    }

    #[test]
    fn emails_and_phones_are_checked_for_typos() {
        assert!(looks_like_email("a.b@example.co.uk"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("a b@example.com"));
        assert!(!looks_like_email("@example.com"));
        assert!(!looks_like_email("a@@example.com"));
        assert!(looks_like_phone("(021) 5555-0100"));
        assert!(!looks_like_phone("12"));
    }
}
