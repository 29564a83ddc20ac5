//! Prometheus's `GET /api/v1/alerts`: the alerts its rules hold, firing or pending.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::pulled::PulledAlert;

/// The path under the source's URL.
pub const PATH: &str = "/api/v1/alerts";

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    state: String,
    /// The value of the rule's expression, as Prometheus prints a float ("1e+00").
    #[serde(default)]
    value: Option<String>,
}

/// The firing alerts of one answer; pending ones are not alerts yet.
pub fn parse(body: &[u8]) -> Result<Vec<PulledAlert>, String> {
    let response: Response = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if response.status != "success" {
        return Err(format!(
            "status {:?}: {}",
            response.status,
            response.error.unwrap_or_default()
        ));
    }
    let data = response
        .data
        .ok_or_else(|| "no \"data\" in a successful answer".to_string())?;
    Ok(data
        .alerts
        .into_iter()
        .filter(|a| a.state == "firing")
        .map(|a| PulledAlert {
            value: a.value.as_deref().and_then(|v| v.parse::<f64>().ok()),
            labels: a.labels,
            annotations: a.annotations,
            // Prometheus's alert list carries no link back to its expression.
            generator_url: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firing_alerts_are_kept_and_pending_ones_dropped() {
        let body = br#"{"status":"success","data":{"alerts":[
            {"labels":{"alertname":"Up","service":"storage"},"annotations":{"summary":"s"},
             "state":"firing","activeAt":"2026-01-05T09:00:00Z","value":"1e+00"},
            {"labels":{"alertname":"Slow"},"annotations":{},"state":"pending","value":"3"},
            {"labels":{"alertname":"NaN"},"state":"firing","value":"NaN-ish"}]}}"#;
        let alerts = parse(body).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].labels["service"], "storage");
        assert_eq!(alerts[0].annotations["summary"], "s");
        assert_eq!(alerts[0].value, Some(1.0));
        assert_eq!(alerts[1].labels["alertname"], "NaN");
        assert_eq!(alerts[1].value, None);
    }

    #[test]
    fn an_error_answer_or_another_shape_is_an_error() {
        let err = parse(br#"{"status":"error","errorType":"x","error":"boom"}"#).unwrap_err();
        assert!(err.contains("boom"), "{err}");
        assert!(parse(b"[]").is_err());
        assert!(parse(b"<html>").is_err());
    }
}
