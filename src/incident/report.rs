//! The support report (`GET /api/v1/reports/sr`, `tocsin report sr`): over a time range,
//! how support met its SR deadlines and cadence, how fast incidents were acknowledged and
//! resolved, and how often people were paged, at night too.
//!
//! Pure: the API reads the cases, incidents and pages of the range from the store, boils
//! each down to the facts here, and [`build`] counts them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::case::{Case, CaseEntry};
use super::Incident;

/// Night, for the pager load: from 22:00 to 07:00 on the responder's clock.
pub const NIGHT: (u32, u32) = (22, 7);

/// Is `hour` (0-23, on the responder's clock) at night?
pub fn is_night_hour(hour: u32) -> bool {
    hour >= NIGHT.0 || hour < NIGHT.1
}

/// What the report needs of a case opened in the range.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseFacts {
    pub sr_severity: String,
    pub opened_at: DateTime<Utc>,
    pub respond_by: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    /// When the deadline was met: the first response, or an ack of the case's incident.
    pub deadline_met_at: Option<DateTime<Utc>>,
    /// Update intervals that passed without an update (`engagement_due`).
    pub engagement_gaps: u32,
    /// Of those, the ones that went on for a second interval (`engagement_missed`).
    pub engagement_missed: u32,
}

impl CaseFacts {
    pub fn of(case: &Case, timeline: &[CaseEntry]) -> CaseFacts {
        let count = |kind: &str| timeline.iter().filter(|e| e.kind == kind).count() as u32;
        CaseFacts {
            sr_severity: case.sr_severity.clone(),
            opened_at: case.opened_at,
            respond_by: case.respond_by,
            responded_at: case.responded_at,
            deadline_met_at: case.deadline_met_at,
            engagement_gaps: count("engagement_due"),
            engagement_missed: count("engagement_missed"),
        }
    }
}

/// What the report needs of an incident opened in the range.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentFacts {
    pub severity: u8,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl IncidentFacts {
    pub fn of(incident: &Incident) -> IncidentFacts {
        IncidentFacts {
            severity: incident.severity,
            opened_at: incident.opened_at,
            acknowledged_at: incident.acknowledged_at,
            resolved_at: incident.resolved_at,
        }
    }
}

/// A page sent in the range: the rule behind it, who it reached, and whether that was at
/// night on their clock.
#[derive(Clone, Debug, PartialEq)]
pub struct PageFacts {
    pub rule: String,
    pub responder: String,
    pub at_night: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SrReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub sr: Vec<SrLine>,
    pub lsi: Vec<LsiLine>,
    pub pager: PagerLoad,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SrLine {
    pub sr_severity: String,
    pub cases_opened: usize,
    /// Cases whose deadline has passed or was met: those that could be late.
    pub cases_due: usize,
    pub responded_within_deadline: usize,
    /// `responded_within_deadline / cases_due`; none without a case due.
    pub share_within_deadline: Option<f64>,
    pub first_response_seconds: Spread,
    pub engagement_gaps: u32,
    pub engagement_missed: u32,
}

/// Median and 90th percentile (linear between the closest ranks), of `count` values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LsiLine {
    pub severity: u8,
    pub incidents: usize,
    pub acknowledged: usize,
    /// Mean time from opening to acknowledgement, of those acknowledged.
    pub mtta_seconds: Option<f64>,
    pub resolved: usize,
    /// Mean time from opening to resolution, of those resolved.
    pub mttr_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PagerLoad {
    pub pages: usize,
    pub pages_at_night: usize,
    /// "22:00-07:00 on each responder's clock".
    pub night: String,
    pub by_rule: Vec<PagerLine>,
    pub by_responder: Vec<PagerLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PagerLine {
    pub name: String,
    pub pages: usize,
    pub pages_at_night: usize,
}

/// The `p` quantile (0..=1) of `sorted`, linear between the closest ranks.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    Spread {
        count: values.len(),
        median: quantile(&values, 0.5),
        p90: quantile(&values, 0.9),
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// Count the facts of the range `from..to`, as of `now`. SR A, B and C are always listed,
/// and LSI Sev 0 to 4.
pub fn build(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    cases: &[CaseFacts],
    incidents: &[IncidentFacts],
    pages: &[PageFacts],
) -> SrReport {
    let mut severities: Vec<String> = ["A", "B", "C"].map(String::from).to_vec();
    for case in cases {
        if !severities.contains(&case.sr_severity) {
            severities.push(case.sr_severity.clone());
        }
    }
    let sr = severities
        .into_iter()
        .map(|sr_severity| {
            let of: Vec<&CaseFacts> = cases
                .iter()
                .filter(|c| c.sr_severity == sr_severity)
                .collect();
            let due = of
                .iter()
                .filter(|c| c.deadline_met_at.is_some() || c.respond_by <= now)
                .count();
            let within = of
                .iter()
                .filter(|c| c.deadline_met_at.is_some_and(|at| at <= c.respond_by))
                .count();
            SrLine {
                cases_opened: of.len(),
                cases_due: due,
                responded_within_deadline: within,
                share_within_deadline: (due > 0).then(|| within as f64 / due as f64),
                first_response_seconds: spread(
                    of.iter()
                        .filter_map(|c| c.responded_at.map(|at| seconds(c.opened_at, at)))
                        .collect(),
                ),
                engagement_gaps: of.iter().map(|c| c.engagement_gaps).sum(),
                engagement_missed: of.iter().map(|c| c.engagement_missed).sum(),
                sr_severity,
            }
        })
        .collect();
    let lsi = (0..=4u8)
        .map(|severity| {
            let of: Vec<&IncidentFacts> = incidents
                .iter()
                .filter(|i| i.severity == severity)
                .collect();
            let acks: Vec<f64> = of
                .iter()
                .filter_map(|i| i.acknowledged_at.map(|at| seconds(i.opened_at, at)))
                .collect();
            let resolves: Vec<f64> = of
                .iter()
                .filter_map(|i| i.resolved_at.map(|at| seconds(i.opened_at, at)))
                .collect();
            LsiLine {
                severity,
                incidents: of.len(),
                acknowledged: acks.len(),
                mtta_seconds: mean(&acks),
                resolved: resolves.len(),
                mttr_seconds: mean(&resolves),
            }
        })
        .collect();
    let tally = |key: fn(&PageFacts) -> &str| {
        let mut lines: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for page in pages {
            let line = lines.entry(key(page)).or_default();
            line.0 += 1;
            line.1 += usize::from(page.at_night);
        }
        let mut lines: Vec<PagerLine> = lines
            .into_iter()
            .map(|(name, (pages, night))| PagerLine {
                name: name.to_string(),
                pages,
                pages_at_night: night,
            })
            .collect();
        lines.sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.name.cmp(&b.name)));
        lines
    };
    let pager = PagerLoad {
        pages: pages.len(),
        pages_at_night: pages.iter().filter(|p| p.at_night).count(),
        night: format!(
            "{:02}:00-{:02}:00 on each responder's clock",
            NIGHT.0, NIGHT.1
        ),
        by_rule: tally(|p| &p.rule),
        by_responder: tally(|p| &p.responder),
    };
    SrReport {
        from,
        to,
        sr,
        lsi,
        pager,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_420_400, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[10.0, 20.0], 0.5), Some(15.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9), Some(4.6));
    }

    #[test]
    fn night_is_from_ten_to_seven() {
        let night: Vec<u32> = (0..24).filter(|h| is_night_hour(*h)).collect();
        assert_eq!(night, [0, 1, 2, 3, 4, 5, 6, 22, 23]);
    }

    #[test]
    fn a_case_not_yet_due_does_not_count_against_the_share() {
        let case = |met: Option<i64>, respond_by: i64| CaseFacts {
            sr_severity: "A".into(),
            opened_at: t(0),
            respond_by: t(respond_by),
            responded_at: met.map(t),
            deadline_met_at: met.map(t),
            engagement_gaps: 1,
            engagement_missed: 0,
        };
        let cases = [
            case(Some(30), 120),
            case(Some(150), 120),
            case(None, 120),
            case(None, 600),
        ];
        let report = build(t(0), t(1000), t(300), &cases, &[], &[]);
        let a = &report.sr[0];
        assert_eq!((a.cases_opened, a.cases_due), (4, 3));
        assert_eq!(a.responded_within_deadline, 1);
        assert_eq!(a.share_within_deadline, Some(1.0 / 3.0));
        assert_eq!(a.first_response_seconds.median, Some(5400.0));
        assert_eq!(a.engagement_gaps, 4);
        assert_eq!(report.sr[1].share_within_deadline, None);
    }
}
