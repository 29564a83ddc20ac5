//! Sev 0–4 from the blast radius, as the LSI table defines it (docs/rules.md, "How an
//! incident is classified").
//!
//! Over the incident's impacts: C = affected customers, R = regions, S = services.
//! 0: a data loss, data corruption or security impact with |C| ≥ major_customers.
//! 1: |C| ≥ major_customers and (|R| ≥ multi_regions or |S| ≥ multi_services) and some impact
//!    is major (SLA breach or outage).
//! 2: some impact breaches SLA, or is of a Sev 0 kind with fewer customers.
//! 3: some impact has high business impact.
//! 4: everything else.
//! An impact's `severity` floor makes the incident at least that severe.

use std::collections::BTreeSet;

use super::blast::Blast;
use super::model::Impact;
use crate::config::ClassificationConfig;

/// Severity of a set of impacts (0 is worst) and a one-line reason.
pub fn classify<'a>(
    impacts: impl IntoIterator<Item = &'a Impact>,
    thresholds: &ClassificationConfig,
) -> (u8, String) {
    let mut customers = BTreeSet::new();
    let mut regions = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut blast = Blast::default();
    for impact in impacts {
        customers.extend(impact.customers.iter());
        regions.extend(impact.region.iter());
        services.extend(impact.service.iter());
        blast = blast.join(impact.blast());
    }
    blast.severity((customers.len(), regions.len(), services.len()), thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BusinessImpact, ImpactKind};
    use crate::signal::{Fingerprint, SourceKind};

    fn impact(
        kind: ImpactKind,
        sla: bool,
        high: bool,
        service: &str,
        region: &str,
        customers: &[&str],
    ) -> Impact {
        Impact {
            id: 1,
            incident_id: 1,
            rule: "r".into(),
            fingerprint: Fingerprint(1),
            source: SourceKind::Alert,
            kind,
            sla_breach: sla,
            business_impact: high.then_some(BusinessImpact::High),
            severity_floor: None,
            service: Some(service.into()),
            region: Some(region.into()),
            customers: customers.iter().map(|c| c.to_string()).collect(),
            labels: Default::default(),
            summary: "".into(),
            started_at: chrono::Utc::now(),
            cleared_at: None,
            firing_at_resolve: false,
            annotations: Default::default(),
            cri: None,
            inhibited_by: None,
            sla_measured: None,
        }
    }

    fn sev(impacts: &[Impact]) -> u8 {
        classify(impacts.iter(), &ClassificationConfig::default()).0
    }

    #[test]
    fn the_lsi_table() {
        use ImpactKind::*;
        assert_eq!(
            sev(&[impact(DataLoss, false, false, "s", "r", &["a", "b"])]),
            0
        );
        assert_eq!(sev(&[impact(DataLoss, false, false, "s", "r", &["a"])]), 2);
        assert_eq!(
            sev(&[
                impact(Outage, true, false, "s", "r1", &["a"]),
                impact(Outage, true, false, "s", "r2", &["b"])
            ]),
            1
        );
        assert_eq!(
            sev(&[impact(Outage, true, false, "s", "r1", &["a", "b"])]),
            2
        );
        assert_eq!(
            sev(&[impact(Degradation, false, true, "s", "r1", &["a", "b"])]),
            3
        );
        assert_eq!(
            sev(&[impact(Degradation, false, false, "s", "r1", &["a"])]),
            4
        );
        // Spread without a major impact is not Sev 1.
        assert_eq!(
            sev(&[
                impact(Latency, false, true, "s", "r1", &["a"]),
                impact(Latency, false, true, "s2", "r2", &["b"])
            ]),
            3
        );
    }

    #[test]
    fn floor_raises() {
        let mut i = impact(ImpactKind::Other, false, false, "s", "r", &[]);
        i.severity_floor = Some(1);
        assert_eq!(sev(&[i]), 1);
    }
}
