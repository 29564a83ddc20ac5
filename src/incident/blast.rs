//! What an incident's impacts say for the Sev table, besides the names they hit.

use crate::config::ClassificationConfig;
use crate::words::count;

/// What an incident's impacts say besides the names they hit: the kinds and flags the Sev
/// table reads. Adding an impact only ever adds to it, so an incident keeps it up to date
/// as impacts join (see `Incident::blast` and `Impact::blast`) instead of walking them
/// all again.
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
                format!(
                    "data loss, corruption or security impact on {}",
                    count(c, "customer", "customers")
                ),
            )
        } else if many_customers && spread && self.major {
            (
                1,
                format!(
                    "major impact on {} across {} and {}",
                    count(c, "customer", "customers"),
                    count(r, "region", "regions"),
                    count(s, "service", "services")
                ),
            )
        } else if self.sla_breach || self.disaster_kind {
            (
                2,
                if self.sla_breach {
                    "SLA breached".to_string()
                } else {
                    format!(
                        "data loss, corruption or security impact on {}",
                        count(c, "customer", "customers")
                    )
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
