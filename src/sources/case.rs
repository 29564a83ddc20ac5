//! Support's case bodies (`POST /api/v1/cases`): a customer report (checked as a CRI's,
//! so both name every field to fix at once) plus who opens it.

use std::collections::BTreeMap;

use super::cri::{self, CriError};
use crate::incident::case::OpenCase;

/// Longest `by`, in characters.
const MAX_BY: usize = 256;

/// Parse and check a case body: the report's fields and `by`.
pub fn parse(body: &[u8]) -> Result<OpenCase, CriError> {
    use crate::decode::DecodeError;
    let mut value: serde_json::Value =
        crate::decode::from_slice(body, "the case").map_err(|e| {
            CriError::Body(match e {
                DecodeError::Invalid(why) => format!("invalid case: {why}"),
                other => other.to_string(),
            })
        })?;
    let Some(object) = value.as_object_mut() else {
        return Err(CriError::Body(
            "invalid case: expected a JSON object".into(),
        ));
    };
    if object.contains_key("kind") {
        return Err(CriError::Body(
            "invalid case: unknown field `kind` (a case's kind is given when it is escalated)"
                .into(),
        ));
    }
    let by = match object.remove("by") {
        None | Some(serde_json::Value::Null) => Err("is required: who opens the case".to_string()),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
            Err("must not be empty".to_string())
        }
        Some(serde_json::Value::String(s)) if s.chars().count() > MAX_BY => {
            Err(format!("is longer than {MAX_BY} characters"))
        }
        Some(serde_json::Value::String(s)) => Ok(s.trim().to_string()),
        Some(_) => return Err(CriError::Body("invalid case: `by` must be a string".into())),
    };
    let report = cri::parse(value.to_string().as_bytes()).map_err(|e| match e {
        CriError::Body(m) => CriError::Body(m.replace("invalid report", "invalid case")),
        fields => fields,
    });
    match (report, by) {
        (Ok(report), Ok(by)) => Ok(OpenCase {
            customer: report.customer,
            service: report.service,
            region: report.region,
            sr_severity: report.sr_severity,
            summary: report.summary,
            contact: report.contact,
            by,
        }),
        (Err(CriError::Fields(mut fields)), Err(why)) => {
            fields.insert("by".into(), why);
            Err(CriError::Fields(fields))
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(why)) => Err(CriError::Fields(BTreeMap::from([("by".into(), why)]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> serde_json::Value {
        json!({
            "customer": "contoso", "service": "storage", "region": "china-east",
            "sr_severity": "B", "summary": "uploads fail",
            "contact": { "name": "Dana", "email": "dana@contoso.com" }, "by": "sam"
        })
    }

    #[test]
    fn a_good_case_names_its_opener() {
        let case = parse(good().to_string().as_bytes()).unwrap();
        assert_eq!(case.by, "sam");
        assert_eq!(case.sr_severity, "B");
        assert_eq!(case.contact.email.as_deref(), Some("dana@contoso.com"));
    }

    #[test]
    fn a_missing_opener_is_named_with_the_other_fields() {
        let mut body = good();
        body.as_object_mut().unwrap().remove("by");
        body["sr_severity"] = json!("Z");
        let Err(CriError::Fields(fields)) = parse(body.to_string().as_bytes()) else {
            panic!()
        };
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["by", "sr_severity"]);
        let mut body = good();
        body["by"] = json!(7);
        assert!(matches!(
            parse(body.to_string().as_bytes()),
            Err(CriError::Body(m)) if m.contains("`by`")
        ));
        assert!(matches!(parse(b"[1]"), Err(CriError::Body(_))));
    }
}
