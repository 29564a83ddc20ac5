//! Which open incidents a new impact belongs to.
//!
//! Two impacts belong together when both are active within the correlation window and they
//! share a value of any label named in `correlation.by` (by default the service). Major
//! impacts (SLA breach or outage) on at least `classification.multi_services` services in
//! one region within `correlation.regional.window` of each other form one regional incident.
//! The relation is transitive: an impact that links two incidents merges them.

use chrono::{DateTime, Duration, Utc};

use super::model::{Impact, Incident};

/// Do two impacts share any of the `by` labels (present and non-empty on both)?
pub fn related(a: &Impact, b: &Impact, by: &[String]) -> bool {
    by.iter()
        .any(|name| match (a.labels.get(name), b.labels.get(name)) {
            (Some(x), Some(y)) => !x.is_empty() && x == y,
            _ => false,
        })
}

/// Is the impact active now, or cleared no longer than `window` ago?
pub fn within_window(impact: &Impact, now: DateTime<Utc>, window: Duration) -> bool {
    match impact.cleared_at {
        None => true,
        Some(cleared) => now - cleared <= window,
    }
}

/// The open incidents the new impact correlates with, oldest first.
pub fn candidates<'a>(
    new: &Impact,
    incidents: impl Iterator<Item = &'a Incident>,
    impact_of: impl Fn(i64) -> Option<&'a Impact>,
    by: &[String],
    window: Duration,
    now: DateTime<Utc>,
) -> Vec<i64> {
    let mut ids: Vec<i64> = incidents
        .filter(|incident| incident.is_open())
        .filter(|incident| {
            incident
                .impact_ids
                .iter()
                .filter_map(|id| impact_of(*id))
                .any(|existing| within_window(existing, now, window) && related(existing, new, by))
        })
        .map(|incident| incident.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// The open incidents a new major impact joins as one regional incident: those holding an
/// active major impact in its region that started no longer than `window` ago, when with
/// the new one they span at least `services` services. Empty otherwise (and for an impact
/// that is not major or has no region or service).
pub fn regional<'a>(
    new: &Impact,
    incidents: impl Iterator<Item = &'a Incident>,
    impact_of: impl Fn(i64) -> Option<&'a Impact>,
    services: usize,
    window: Duration,
    now: DateTime<Utc>,
) -> Vec<i64> {
    let (Some(region), Some(service)) = (new.region.as_deref(), new.service.as_deref()) else {
        return Vec::new();
    };
    if !new.is_major() {
        return Vec::new();
    }
    let open: Vec<&Incident> = incidents.filter(|i| i.is_open()).collect();
    // The services that could join are those of these incidents and the new one's: when
    // they are too few, no impact needs a look (a region holding many incidents, each on a
    // service of its own, under a threshold above their number).
    let listed: usize = open.iter().map(|i| i.services.len()).sum();
    let listed_new = open.iter().any(|i| i.services.iter().any(|s| s == service));
    if listed + usize::from(!listed_new) < services.max(2) {
        return Vec::new();
    }
    let mut seen: Vec<&str> = vec![service];
    let mut ids = Vec::new();
    for incident in open {
        let mut joins = false;
        // Newest first: impact ids rise with time, so the scan stops at the first impact
        // older than the window, and once the incident joins with no service left to count
        // (a storm of alerts on one service costs one look, not one per impact).
        for existing in incident
            .impact_ids
            .iter()
            .rev()
            .filter_map(|id| impact_of(*id))
        {
            if now - existing.started_at > window {
                break;
            }
            let near = existing.is_active()
                && existing.is_major()
                && existing.region.as_deref() == Some(region);
            if let (true, Some(s)) = (near, existing.service.as_deref()) {
                joins = true;
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
            if joins && incident.services.iter().all(|s| seen.contains(&s.as_str())) {
                break;
            }
        }
        if joins {
            ids.push(incident.id);
        }
    }
    if seen.len() < services.max(2) {
        return Vec::new();
    }
    ids.sort_unstable();
    ids
}

/// The open incident a new impact joins as a dependent impact: the oldest holding an active
/// major impact, in the new impact's region, on a service it depends on (`depends_on`).
pub fn dependency<'a>(
    new: &Impact,
    depends_on: &[String],
    incidents: impl Iterator<Item = &'a Incident>,
    impact_of: impl Fn(i64) -> Option<&'a Impact>,
) -> Option<i64> {
    let region = new.region.as_deref()?;
    if depends_on.is_empty() {
        return None;
    }
    incidents
        .filter(|incident| incident.is_open())
        // Its services say at once whether it can hold a dependency.
        .filter(|incident| depends_on.iter().any(|d| incident.services.contains(d)))
        .filter(|incident| {
            incident
                .impact_ids
                .iter()
                .filter_map(|id| impact_of(*id))
                .any(|existing| {
                    existing.is_active()
                        && existing.is_major()
                        && existing.inhibited_by.is_none()
                        && existing.region.as_deref() == Some(region)
                        && existing
                            .service
                            .as_deref()
                            .is_some_and(|s| depends_on.iter().any(|d| d == s))
                })
        })
        .map(|incident| incident.id)
        .min()
}

/// The recently resolved incident a new impact reopens: the latest whose impacts shared a
/// value of a `by` label with it (`labels`: those (label, value) pairs of its impacts).
pub fn reopens<'a>(
    new: &Impact,
    resolved: impl Iterator<Item = (i64, &'a [(String, String)])>,
    by: &[String],
) -> Option<i64> {
    resolved
        .filter(|(_, labels)| {
            labels.iter().any(|(name, value)| {
                by.contains(name)
                    && new
                        .labels
                        .get(name)
                        .is_some_and(|v| !v.is_empty() && v == value)
            })
        })
        .map(|(id, _)| id)
        .max()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::config::ImpactKind;
    use crate::signal::{Fingerprint, LabelSet, SourceKind};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_571_200 + seconds, 0).unwrap()
    }

    fn impact(id: i64, service: &str, region: &str, kind: ImpactKind, started: i64) -> Impact {
        let labels: BTreeMap<String, String> = [("service", service), ("region", region)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Impact {
            id,
            incident_id: id,
            rule: "r".into(),
            fingerprint: Fingerprint(id as u64),
            source: SourceKind::Alert,
            kind,
            sla_breach: false,
            business_impact: None,
            severity_floor: None,
            service: Some(service.into()),
            region: Some(region.into()),
            customers: Default::default(),
            labels: Arc::new(LabelSet::from(labels)),
            annotations: Default::default(),
            summary: "s".into(),
            started_at: at(started),
            cleared_at: None,
            firing_at_resolve: false,
            cri: None,
            inhibited_by: None,
            sla_measured: None,
        }
    }

    fn incident_of(impact: &Impact) -> Incident {
        let thresholds = crate::config::ClassificationConfig::default();
        super::super::lifecycle::open(impact.id, impact, &thresholds, impact.started_at).0
    }

    /// The regional candidates of `new` among incidents each holding one of `existing`.
    fn regional_of(new: &Impact, existing: &[Impact], services: usize) -> Vec<i64> {
        let incidents: Vec<Incident> = existing.iter().map(incident_of).collect();
        regional(
            new,
            incidents.iter(),
            |id| existing.iter().find(|i| i.id == id),
            services,
            Duration::seconds(120),
            new.started_at,
        )
    }

    #[test]
    fn by_service_the_same_service_correlates_across_regions_and_others_do_not() {
        let by = vec!["service".to_string()];
        let east = impact(1, "storage", "east", ImpactKind::Outage, 0);
        let north = impact(2, "storage", "north", ImpactKind::Outage, 10);
        let sqldb = impact(3, "sqldb", "east", ImpactKind::Latency, 10);
        assert!(related(&east, &north, &by));
        assert!(!related(&east, &sqldb, &by));
    }

    #[test]
    fn major_impacts_on_two_services_in_one_region_within_the_window_are_one_incident() {
        let storage = impact(1, "storage", "east", ImpactKind::Outage, 0);
        let sqldb = impact(2, "sqldb", "east", ImpactKind::Outage, 30);
        assert_eq!(
            regional_of(&sqldb, std::slice::from_ref(&storage), 2),
            vec![1]
        );
        // Too few services for the threshold, another region, too late, or not major.
        assert_eq!(
            regional_of(&sqldb, std::slice::from_ref(&storage), 3),
            Vec::<i64>::new()
        );
        let north = impact(3, "sqldb", "north", ImpactKind::Outage, 30);
        assert_eq!(
            regional_of(&north, std::slice::from_ref(&storage), 2),
            Vec::<i64>::new()
        );
        let late = impact(4, "sqldb", "east", ImpactKind::Outage, 121);
        assert_eq!(
            regional_of(&late, std::slice::from_ref(&storage), 2),
            Vec::<i64>::new()
        );
        let slow = impact(5, "sqldb", "east", ImpactKind::Latency, 30);
        assert_eq!(
            regional_of(&slow, std::slice::from_ref(&storage), 2),
            Vec::<i64>::new()
        );
        let mut cleared = storage.clone();
        cleared.cleared_at = Some(at(10));
        assert_eq!(regional_of(&sqldb, &[cleared], 2), Vec::<i64>::new());
    }

    #[test]
    fn a_new_impact_reopens_the_latest_resolved_incident_it_correlates_with() {
        let by = vec!["service".to_string()];
        let pair = |s: &str| vec![("service".to_string(), s.to_string())];
        let (storage, sqldb, later) = (pair("storage"), pair("sqldb"), pair("storage"));
        let resolved = [(1, &storage[..]), (2, &sqldb[..]), (3, &later[..])];
        let new = impact(9, "storage", "east", ImpactKind::Outage, 0);
        assert_eq!(reopens(&new, resolved.iter().copied(), &by), Some(3));
        let other = impact(9, "queue", "east", ImpactKind::Outage, 0);
        assert_eq!(reopens(&other, resolved.iter().copied(), &by), None);
    }

    #[test]
    fn an_impact_joins_the_open_major_incident_of_a_service_it_depends_on_in_its_region() {
        let deps = vec!["sqldb".to_string()];
        let db = impact(1, "sqldb", "east", ImpactKind::Outage, 0);
        let web = impact(2, "web", "east", ImpactKind::Outage, 30);
        let of = |list: &[Impact], new: &Impact, deps: &[String]| {
            let incidents: Vec<Incident> = list.iter().map(incident_of).collect();
            dependency(new, deps, incidents.iter(), |id| {
                list.iter().find(|i| i.id == id)
            })
        };
        assert_eq!(of(std::slice::from_ref(&db), &web, &deps), Some(1));
        // Not a dependency, another region, or the database only slow: on its own.
        assert_eq!(of(std::slice::from_ref(&db), &web, &[]), None);
        let north = impact(3, "web", "north", ImpactKind::Outage, 30);
        assert_eq!(of(std::slice::from_ref(&db), &north, &deps), None);
        let slow = impact(1, "sqldb", "east", ImpactKind::Latency, 0);
        assert_eq!(of(&[slow], &web, &deps), None);
    }

    #[test]
    fn a_third_service_counts_the_others_together() {
        let a = impact(1, "a", "east", ImpactKind::Outage, 0);
        let b = impact(2, "b", "east", ImpactKind::Outage, 10);
        let c = impact(3, "c", "east", ImpactKind::Outage, 20);
        assert_eq!(
            regional_of(&c, std::slice::from_ref(&a), 3),
            Vec::<i64>::new()
        );
        assert_eq!(regional_of(&c, &[a, b], 3), vec![1, 2]);
    }

    /// The threshold counts the new impact's service once, whether or not an incident
    /// already holds it: three incidents and a fourth service make four, a fourth impact on
    /// one of their services makes three.
    #[test]
    fn the_threshold_counts_each_service_once() {
        let a = impact(1, "a", "east", ImpactKind::Outage, 0);
        let b = impact(2, "b", "east", ImpactKind::Outage, 10);
        let c = impact(3, "c", "east", ImpactKind::Outage, 20);
        let d = impact(4, "d", "east", ImpactKind::Outage, 30);
        let again = impact(5, "a", "east", ImpactKind::Outage, 30);
        let three = [a, b, c];
        assert_eq!(regional_of(&d, &three, 4), vec![1, 2, 3]);
        assert_eq!(regional_of(&d, &three, 5), Vec::<i64>::new());
        assert_eq!(regional_of(&again, &three, 3), vec![1, 2, 3]);
        assert_eq!(regional_of(&again, &three, 4), Vec::<i64>::new());
    }
}
