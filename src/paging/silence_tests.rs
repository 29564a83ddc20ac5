use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::config::ImpactKind;
use crate::signal::{Fingerprint, LabelSet, SourceKind};

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_571_200 + minutes * 60, 0).unwrap()
}

fn impact(id: i64, alertname: &str, region: &str, customers: &[&str]) -> Impact {
    let labels: BTreeMap<String, String> = [("alertname", alertname), ("env", "prod")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Impact {
        inhibited_by: None,
        sla_measured: None,
        id,
        incident_id: 1,
        rule: "disk".into(),
        fingerprint: Fingerprint(id as u64),
        source: SourceKind::Alert,
        kind: ImpactKind::Degradation,
        sla_breach: false,
        business_impact: None,
        severity_floor: None,
        service: Some("storage".into()),
        region: Some(region.into()),
        customers: customers.iter().map(|c| c.to_string()).collect(),
        labels: Arc::new(LabelSet::from(labels)),
        annotations: Default::default(),
        summary: format!("disk full {id}").into(),
        started_at: at(0),
        cleared_at: None,
        firing_at_resolve: false,
        cri: None,
    }
}

fn incident(first: &Impact) -> Incident {
    Incident::opened_by(1, first, 2, at(0))
}

fn silence(id: &str, matchers: &[&str], from: i64, to: i64) -> Silence {
    Silence {
        id: id.into(),
        matchers: matchers.iter().map(|m| m.parse().unwrap()).collect(),
        starts_at: at(from),
        ends_at: at(to),
        created_by: "alice".into(),
        comment: "disk swap".into(),
        updated_at: at(0),
    }
}

#[test]
fn each_impact_is_seen_with_severity_service_region_and_customer() {
    let one = impact(1, "DiskFull", "east", &["acme", "contoso"]);
    let targets = targets(&incident(&one), [&one]);
    assert_eq!(targets.len(), 2, "one label set per customer");
    assert_eq!(targets[0]["customer"], "acme");
    assert_eq!(targets[1]["customer"], "contoso");
    for t in &targets {
        assert_eq!(t["severity"], "2");
        assert_eq!(t["service"], "storage");
        assert_eq!(t["region"], "east");
        assert_eq!(t["alertname"], "DiskFull");
    }
}

#[test]
fn a_silence_holds_only_while_every_impact_matches() {
    let first = impact(1, "DiskFull", "east", &[]);
    let second = impact(2, "DiskFull", "west", &[]);
    let third = impact(3, "NodeDown", "east", &[]);
    let inc = incident(&first);
    let s = [silence("s1", &["alertname=\"DiskFull\""], 0, 60)];
    assert_eq!(
        holding(&s, &targets(&inc, [&first, &second]), at(5)).map(|s| s.id.as_str()),
        Some("s1")
    );
    // A new impact the silence does not match: the incident pages.
    assert!(holding(&s, &targets(&inc, [&first, &second, &third]), at(5)).is_none());
    let east = [silence("s2", &["region=~\"ea.*\""], 0, 60)];
    assert!(holding(&east, &targets(&inc, [&first, &third]), at(5)).is_some());
    assert!(holding(&east, &targets(&inc, [&first, &second]), at(5)).is_none());
}

#[test]
fn a_silence_holds_from_its_start_to_its_end_and_the_longest_wins() {
    let one = impact(1, "DiskFull", "east", &["acme"]);
    let t = targets(&incident(&one), [&one]);
    let window = silence("later", &["customer=\"acme\""], 30, 90);
    let now_ = silence(
        "now",
        &["service=\"storage\"", "severity=~\"[0-2]\""],
        0,
        60,
    );
    let both = [window.clone(), now_.clone()];
    assert_eq!(window.state(at(10)), SilenceState::Pending);
    assert!(holding(std::slice::from_ref(&window), &t, at(29)).is_none());
    assert_eq!(holding(&both, &t, at(10)).unwrap().id, "now");
    assert_eq!(holding(&both, &t, at(40)).unwrap().id, "later");
    assert!(holding(&both, &t, at(90)).is_none());
    assert_eq!(window.state(at(90)), SilenceState::Expired);
}

#[test]
fn expiring_ends_it_now_and_a_pending_one_never_starts() {
    let mut s = silence("w", &["service=\"storage\""], 30, 90);
    s.expire(at(10));
    assert_eq!(s.state(at(10)), SilenceState::Expired);
    assert_eq!((s.starts_at, s.ends_at), (at(10), at(10)));
}

#[test]
fn bad_silences_are_refused_saying_why() {
    let m = |t: &str| vec![t.parse::<Matcher>().unwrap()];
    let now = at(0);
    let hour = Duration::hours(1);
    assert!(check(&m("service=\"storage\""), now, now + hour, now).is_ok());
    let e = check(&[], now, now + hour, now).unwrap_err();
    assert!(e.contains("at least one matcher"), "{e}");
    let e = check(&m("service=~\".*\""), now, now + hour, now).unwrap_err();
    assert!(e.contains("every incident"), "{e}");
    let e = check(&m("service=\"storage\""), now, now - hour, now).unwrap_err();
    assert!(e.contains("must be after"), "{e}");
    let e = check(&m("service=\"storage\""), now - hour * 3, now - hour, now).unwrap_err();
    assert!(e.contains("in the past"), "{e}");
}
