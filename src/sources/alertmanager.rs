//! Alertmanager's `GET /api/v2/alerts`: the alerts it holds, asked for those that are active,
//! not silenced and not inhibited (the ones it would notify about).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::pulled::PulledAlert;

/// The path and query under the source's URL.
pub const PATH: &str = "/api/v2/alerts?active=true&silenced=false&inhibited=false";

#[derive(Deserialize)]
struct Alert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    status: Status,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    state: String,
}

/// The active alerts of one answer. The query already filters; the state is checked again
/// so an Alertmanager that ignores a filter cannot page for a silenced alert.
pub fn parse(body: &[u8]) -> Result<Vec<PulledAlert>, String> {
    let alerts: Vec<Alert> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(alerts
        .into_iter()
        .filter(|a| a.status.state == "active")
        .map(|a| PulledAlert {
            labels: a.labels,
            annotations: a.annotations,
            value: None,
            generator_url: a.generator_url,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_alerts_are_kept() {
        let body = br#"[
            {"labels":{"alertname":"Down","service":"storage"},"annotations":{"summary":"s"},
             "startsAt":"2026-01-05T09:00:00Z","endsAt":"2026-01-05T09:05:00Z",
             "fingerprint":"abc","receivers":[{"name":"tocsin"}],"updatedAt":"2026-01-05T09:00:00Z",
             "status":{"state":"active","silencedBy":[],"inhibitedBy":[]}},
            {"labels":{"alertname":"Quiet"},"annotations":{},
             "status":{"state":"suppressed","silencedBy":["x"],"inhibitedBy":[]}}]"#;
        let alerts = parse(body).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].labels["alertname"], "Down");
        assert_eq!(alerts[0].annotations["summary"], "s");
    }

    #[test]
    fn another_shape_is_an_error() {
        assert!(parse(br#"{"status":"success"}"#).is_err());
        assert!(parse(br#"[{"annotations":{}}]"#).is_err());
    }
}
