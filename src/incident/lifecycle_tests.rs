use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::config::ImpactKind;
use crate::signal::{Fingerprint, LabelSet, SourceKind};

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_571_200 + minutes * 60, 0).unwrap()
}

fn impact(id: i64, region: &str, customers: &[&str]) -> Impact {
    let labels: BTreeMap<String, String> = [("service", "storage"), ("region", region)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Impact {
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
        summary: format!("disk full {id}").into(),
        started_at: at(0),
        cleared_at: None,
        firing_at_resolve: false,
        annotations: Default::default(),
        cri: None,
        inhibited_by: None,
        sla_measured: None,
    }
}

fn thresholds() -> ClassificationConfig {
    ClassificationConfig::default()
}

fn opened() -> Incident {
    open(1, &impact(1, "east", &["contoso"]), &thresholds(), at(0)).0
}

#[test]
fn opening_classifies_the_first_impact_and_says_why() {
    let mut first = impact(1, "east", &["contoso"]);
    first.sla_breach = true;
    let (incident, entry) = open(1, &first, &thresholds(), at(2));
    assert_eq!(
        (incident.severity, incident.status, incident.opened_at),
        (2, Status::Triggered, at(2))
    );
    assert_eq!(
        entry,
        Entry::Opened {
            rule: "disk".into(),
            severity: 2,
            reason: "SLA breached".into(),
            summary: "disk full 1".into(),
        }
    );
}

#[test]
fn attaching_says_whether_the_row_changed() {
    let mut incident = opened();
    // Same service, region and customer: nothing stored changes.
    assert!(!attach(&mut incident, &impact(2, "east", &["contoso"])));
    assert!(attach(&mut incident, &impact(3, "west", &["contoso"])));
    assert_eq!(incident.impact_ids, [1, 2, 3]);
    let Entry::ImpactAdded { first, impacts, .. } = impact_added(&impact(3, "west", &[])) else {
        panic!("not an impact_added entry");
    };
    assert_eq!((&*first, impacts), ("disk full 3 (storage, west)", vec![3]));
}

#[test]
fn a_merge_closes_the_source_and_the_target_takes_its_impacts() {
    let mut target = opened();
    let mut source = open(5, &impact(4, "west", &["fabrikam"]), &thresholds(), at(0)).0;
    absorb_merged(&mut target, &source);
    let entries = close_merged(&mut source, 1, at(3));
    assert_eq!(target.impact_ids, [1, 4]);
    assert_eq!(target.regions.len(), 2);
    assert_eq!(
        (
            source.status,
            source.resolved_at,
            source.resolved_by.as_deref(),
            source.merged_into
        ),
        (Status::Resolved, Some(at(3)), Some(TOCSIN), Some(1))
    );
    assert_eq!(
        entries,
        [
            Entry::MergedInto { into: 1 },
            Entry::MergedFrom {
                from: 5,
                impacts: vec![4]
            }
        ]
    );
}

#[test]
fn an_impact_clears_once() {
    let mut one = impact(1, "east", &[]);
    let cause = ClearCause::ConditionStopped {
        rule: "disk".into(),
    };
    assert!(clear_impact(&mut one, cause.clone(), at(4)).is_some());
    assert_eq!(one.cleared_at, Some(at(4)));
    assert_eq!(clear_impact(&mut one, cause, at(5)), None);
    assert_eq!(one.cleared_at, Some(at(4)));
}

#[test]
fn reclassifying_only_raises_and_respects_a_pin() {
    // (pinned, impact breaches SLA) -> what happens and the severity after.
    let cases = [
        (false, false, "unchanged", 4),
        (false, true, "raised", 2),
        (true, true, "held", 4),
    ];
    for (pinned, sla, what, severity) in cases {
        let mut incident = opened();
        incident.pinned = pinned;
        let mut graver = impact(2, "east", &["contoso"]);
        graver.sla_breach = sla;
        attach(&mut incident, &graver);
        let outcome = match reclassify(&mut incident, &thresholds(), "disk") {
            Reclassified::Unchanged => "unchanged",
            Reclassified::Raised(entry) => {
                assert_eq!(entry.kind(), "severity_changed");
                "raised"
            }
            Reclassified::HeldByPin(entry) => {
                assert_eq!(entry.kind(), "severity_pinned");
                "held"
            }
        };
        assert_eq!(
            (outcome, incident.severity),
            (what, severity),
            "{pinned} {sla}"
        );
    }
    // A lower computed severity never lowers it.
    let mut incident = opened();
    incident.severity = 1;
    assert_eq!(
        reclassify(&mut incident, &thresholds(), "disk"),
        Reclassified::Unchanged
    );
    assert_eq!(incident.severity, 1);
}

#[test]
fn acknowledging_is_refused_twice_and_after_the_resolve() {
    let mut incident = opened();
    assert_eq!(
        acknowledge(&mut incident, "ann", at(1)),
        Ok(Entry::Acknowledged { by: "ann".into() })
    );
    assert_eq!(
        (incident.status, incident.acknowledged_at),
        (Status::Acknowledged, Some(at(1)))
    );
    let again = acknowledge(&mut incident, "bob", at(2)).unwrap_err();
    assert_eq!(
        again.to_string(),
        "incident 1 is already acknowledged by ann"
    );
    assert!(resolve(&mut incident, "ann", at(3)));
    assert!(!resolve(&mut incident, "bob", at(4)));
    assert_eq!(incident.resolved_by.as_deref(), Some("ann"));
    assert_eq!(
        acknowledge(&mut incident, "bob", at(5)),
        Err(Refusal::Resolved(1))
    );
    assert_eq!(Refusal::NotOpen(9).to_string(), "incident 9 is not open");
}

#[test]
fn a_rise_keeps_the_ack_and_a_lapse_takes_it_back() {
    let mut incident = opened();
    assert_eq!(ack_kept_on_rise(&incident), None);
    acknowledge(&mut incident, "ann", at(1)).unwrap();
    assert_eq!(
        ack_kept_on_rise(&incident),
        Some(Entry::AckKept { by: "ann".into() })
    );
    assert_eq!(
        (incident.status, incident.acknowledged_by.as_deref()),
        (Status::Acknowledged, Some("ann"))
    );
    assert_eq!(
        ack_lapsed(&mut incident),
        Entry::AckLapsed { by: "ann".into() }
    );
    acknowledge(&mut incident, "bob", at(2)).unwrap();
    assert_eq!(
        ack_lapsed(&mut incident),
        Entry::AckLapsed { by: "bob".into() }
    );
    assert_eq!(incident.status, Status::Triggered);
}

#[test]
fn a_person_sets_and_pins_or_unpins_the_severity() {
    let mut incident = opened();
    let change = set_severity(&mut incident, Some(1), "bob", None).unwrap();
    assert!(matches!(change, SeverityChange::Set { from: 4, to: 1, .. }));
    assert_eq!((incident.severity, incident.pinned), (1, true));
    let change = set_severity(&mut incident, None, "bob", Some("wrong".into())).unwrap();
    assert!(matches!(change, SeverityChange::Unpinned(_)));
    assert_eq!((incident.severity, incident.pinned), (1, false));
    resolve(&mut incident, "bob", at(1));
    assert_eq!(
        set_severity(&mut incident, Some(2), "bob", None),
        Err(Refusal::Resolved(1))
    );
}

#[test]
fn auto_resolve_waits_for_the_last_impact_to_clear() {
    let mut incident = opened();
    incident.impact_ids = vec![1, 2, 3];
    let after = Duration::minutes(10);
    let mut impacts = [
        impact(1, "east", &[]),
        impact(2, "east", &[]),
        impact(3, "east", &[]),
    ];
    let find = |impacts: &[Impact; 3], id: i64| impacts.iter().position(|i| i.id == id);
    // (cleared at, per impact) -> decision
    let cases = [
        ([Some(1), None, Some(2)], AutoResolve::Cancel, false),
        ([Some(1), Some(5), Some(2)], AutoResolve::At(at(15)), true),
    ];
    for (cleared, decision, clear) in cases {
        for (impact, at_minute) in impacts.iter_mut().zip(cleared) {
            impact.cleared_at = at_minute.map(at);
        }
        let lookup = |id| find(&impacts, id).map(|i| &impacts[i]);
        assert_eq!(auto_resolve(&incident, lookup, after), decision);
        assert_eq!(all_clear(&incident, lookup), clear);
    }
    // Impacts no longer known leave the timer be.
    assert_eq!(auto_resolve(&incident, |_| None, after), AutoResolve::Leave);
}

#[test]
fn the_response_deadline_runs_while_triggered_and_unbreached() {
    let mut incident = opened();
    assert_eq!(respond_by(&incident, false), None);
    incident.respond_by = Some(at(30));
    assert_eq!(respond_by(&incident, false), Some(at(30)));
    assert_eq!(respond_by(&incident, true), None);
    acknowledge(&mut incident, "ann", at(1)).unwrap();
    assert_eq!(respond_by(&incident, false), None);
}

#[test]
fn only_an_incident_that_resolved_on_its_own_lately_reopens() {
    let within = Duration::minutes(10);
    let mut incident = opened();
    acknowledge(&mut incident, "ann", at(1)).unwrap();
    assert!(!reopenable(&incident, at(2), within), "open");
    resolve(&mut incident, TOCSIN, at(5));
    assert!(reopenable(&incident, at(14), within));
    assert!(!reopenable(&incident, at(15), within), "too long ago");
    let entry = reopen(&mut incident, "disk", "disk full again");
    assert_eq!(
        entry,
        Entry::Reopened {
            rule: "disk".into(),
            summary: "disk full again".into(),
            resolved_at: Some(at(5)),
        }
    );
    assert_eq!(
        (
            incident.status,
            incident.resolved_at,
            incident.acknowledged_by
        ),
        (Status::Triggered, None, None)
    );
    let mut by_person = opened();
    resolve(&mut by_person, "ann", at(5));
    assert!(
        !reopenable(&by_person, at(6), within),
        "resolved by a person"
    );
    let mut merged = opened();
    close_merged(&mut merged, 7, at(5));
    assert!(!reopenable(&merged, at(6), within), "merged");
}

fn declaration(severity: Option<u8>, services: &[&str], regions: &[&str]) -> Declaration {
    Declaration {
        title: "Checkout down".into(),
        severity,
        services: services.iter().map(|s| s.to_string()).collect(),
        regions: regions.iter().map(|r| r.to_string()).collect(),
        customers: Vec::new(),
        description: "customers call in".into(),
        by: "ann".into(),
    }
}

#[test]
fn a_declaration_holds_one_manual_impact_per_service_and_region() {
    let declared = declaration(None, &["checkout", "payments"], &["east", "north"]);
    let customers = |service: Option<&str>, region: Option<&str>| {
        [format!(
            "{}-{}",
            service.unwrap_or("-"),
            region.unwrap_or("-")
        )]
        .into_iter()
        .collect()
    };
    let impacts = declared_impacts(&declared, 7, customers, at(0));
    let pairs: Vec<(i64, Option<&str>, Option<&str>)> = impacts
        .iter()
        .map(|i| (i.id, i.service.as_deref(), i.region.as_deref()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (7, Some("checkout"), Some("east")),
            (8, Some("checkout"), Some("north")),
            (9, Some("payments"), Some("east")),
            (10, Some("payments"), Some("north")),
        ]
    );
    assert!(impacts.iter().all(|i| i.source == SourceKind::Manual
        && &*i.rule == MANUAL
        && i.is_active()
        && &*i.summary == "Checkout down"));
    assert_eq!(
        impacts[0].customers.iter().collect::<Vec<_>>(),
        ["checkout-east"]
    );
    // No region: one impact per service, and given customers are every impact's.
    let mut declared = declaration(None, &["checkout"], &[]);
    declared.customers = vec!["contoso".into()];
    let impacts = declared_impacts(&declared, 1, |_, _| NameSet::new(), at(0));
    assert_eq!(impacts.len(), 1);
    assert_eq!(impacts[0].region, None);
    assert_eq!(impacts[0].customers.iter().collect::<Vec<_>>(), ["contoso"]);
}

#[test]
fn a_declared_severity_is_pinned_else_the_blast_radius_says_it() {
    let thresholds = ClassificationConfig::default();
    let two_customers = |_: Option<&str>, r: Option<&str>| {
        [format!("customer-{}", r.unwrap_or("-"))]
            .into_iter()
            .collect()
    };
    // Two regions, two customers, outages: Sev 1 by the table.
    let broad = declaration(None, &["checkout"], &["east", "north"]);
    let mut impacts = declared_impacts(&broad, 1, two_customers, at(0));
    let (incident, entry) = declare(5, &broad, &mut impacts, &thresholds, at(0));
    assert_eq!(
        (incident.id, incident.severity, incident.pinned),
        (5, 1, false)
    );
    assert_eq!(incident.impact_ids, vec![1, 2]);
    assert!(impacts.iter().all(|i| i.incident_id == 5));
    assert_eq!(&*incident.title, "Checkout down");
    assert_eq!(entry.actor(), "ann");
    assert!(
        entry
            .message()
            .starts_with("declared by ann at Sev 1 (major impact"),
        "{}",
        entry.message()
    );
    // One service in one region: high business impact, Sev 3.
    let narrow = declaration(None, &["checkout"], &["east"]);
    let mut impacts = declared_impacts(&narrow, 1, |_, _| NameSet::new(), at(0));
    assert_eq!(
        declare(6, &narrow, &mut impacts, &thresholds, at(0))
            .0
            .severity,
        3
    );
    // Given: set and pinned, whatever the radius.
    let pinned = declaration(Some(0), &["checkout"], &["east"]);
    let mut impacts = declared_impacts(&pinned, 1, |_, _| NameSet::new(), at(0));
    let (incident, entry) = declare(7, &pinned, &mut impacts, &thresholds, at(0));
    assert_eq!((incident.severity, incident.pinned), (0, true));
    assert!(entry.message().contains("Sev 0 (set by ann)"));
}

#[test]
fn assigning_names_the_assignee_of_an_open_incident_only() {
    let mut incident = opened();
    let entry = assign(&mut incident, "bob", "ann").unwrap();
    assert_eq!(incident.assignee.as_deref(), Some("bob"));
    assert_eq!(entry.message(), "assigned to bob by ann");
    assert!(resolve(&mut incident, "ann", at(1)));
    assert_eq!(
        assign(&mut incident, "carol", "ann"),
        Err(Refusal::Resolved(incident.id))
    );
    assert_eq!(incident.assignee.as_deref(), Some("bob"));
}

#[test]
fn a_dependent_impact_leaves_the_incident_as_it_is() {
    let mut incident = opened();
    let mut web = impact(2, "north", &["fabrikam"]);
    web.inhibited_by = Some(1);
    assert!(!attach(&mut incident, &web));
    assert_eq!(incident.impact_ids, vec![1, 2]);
    assert_eq!(incident.customers.len(), 1);
    assert_eq!(incident.regions.len(), 1);
}
