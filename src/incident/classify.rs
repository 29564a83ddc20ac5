//! Sev 0–4 from the blast radius, as DESIGN.md and the LSI table define it.
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

use super::model::Impact;
use crate::config::{BusinessImpact, ClassificationConfig};

/// What an incident's impacts say besides the names they hit: the kinds and flags the Sev
/// table reads. Adding an impact only ever adds to it, so an incident keeps it up to date
/// as impacts join (see `Incident::blast`) instead of walking them all again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blast {
    /// Some impact is a data loss, data corruption or security impact.
    pub disaster_kind: bool,
    /// Some impact breaches SLA or is an outage.
    pub major: bool,
    pub sla_breach: bool,
    pub high_business_impact: bool,
    /// The gravest severity floor a rule set.
    pub floor: Option<u8>,
}

impl Blast {
    pub fn of(impact: &Impact) -> Blast {
        Blast {
            disaster_kind: impact.kind.is_disaster_kind(),
            major: impact.is_major(),
            sla_breach: impact.sla_breach,
            high_business_impact: impact.business_impact == Some(BusinessImpact::High),
            floor: impact.severity_floor,
        }
    }

    /// Both together.
    pub fn join(self, other: Blast) -> Blast {
        Blast {
            disaster_kind: self.disaster_kind || other.disaster_kind,
            major: self.major || other.major,
            sla_breach: self.sla_breach || other.sla_breach,
            high_business_impact: self.high_business_impact || other.high_business_impact,
            floor: match (self.floor, other.floor) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Severity (0 is worst) and a one-line reason, for impacts that hit `c` customers, `r`
    /// regions and `s` services between them.
    pub fn severity(
        &self,
        (c, r, s): (usize, usize, usize),
        thresholds: &ClassificationConfig,
    ) -> (u8, String) {
        let many_customers = c >= thresholds.major_customers;
        let spread = r >= thresholds.multi_regions || s >= thresholds.multi_services;
        let (computed, reason) = if self.disaster_kind && many_customers {
            (
                0,
                format!("data loss, corruption or security impact on {c} customers"),
            )
        } else if many_customers && spread && self.major {
            (
                1,
                format!("major impact on {c} customers across {r} regions and {s} services"),
            )
        } else if self.sla_breach || self.disaster_kind {
            (
                2,
                if self.sla_breach {
                    "SLA breached".to_string()
                } else {
                    format!("data loss, corruption or security impact on {c} customer(s)")
                },
            )
        } else if self.high_business_impact {
            (3, "high business impact, SLA not breached".to_string())
        } else {
            (4, "no SLA or high business impact".to_string())
        };
        match self.floor {
            Some(f) if f < computed => (f, format!("severity floor {f} set by a rule")),
            _ => (computed, reason),
        }
    }
}

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
        blast = blast.join(Blast::of(impact));
    }
    blast.severity((customers.len(), regions.len(), services.len()), thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImpactKind;
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
            cri: None,
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
