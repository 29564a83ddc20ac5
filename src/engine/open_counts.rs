//! Open incidents by severity and by triage queue: what the `tocsin_incidents_open` and
//! `tocsin_triage_queue_length` gauges show.
//!
//! Kept up to date as incidents open, change severity or queue, and close, so no batch walks
//! every open incident to count them (a walk over tens of thousands of incidents after every
//! batch).

use std::collections::BTreeMap;

use crate::incident::Incident;

/// What one incident adds to the counts: nothing once it is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    severity: u8,
    /// Every queue it waits in: it counts in each.
    queues: Vec<String>,
}

impl Counted {
    pub fn of(incident: &Incident) -> Option<Counted> {
        incident.is_open().then(|| Counted {
            severity: incident.severity.min(4),
            queues: incident.queues().cloned().collect(),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenCounts {
    by_severity: [i64; 5],
    /// A queue that emptied stays at 0, so its gauge is set to 0 rather than left as it was.
    by_queue: BTreeMap<String, i64>,
}

impl OpenCounts {
    /// Counted from scratch (after a restore).
    pub fn of<'a>(incidents: impl Iterator<Item = &'a Incident>) -> OpenCounts {
        let mut counts = OpenCounts::default();
        for incident in incidents {
            counts.changed(None, Counted::of(incident));
        }
        counts
    }

    /// An incident went from adding `before` to adding `after` (`None`: not open).
    pub fn changed(&mut self, before: Option<Counted>, after: Option<Counted>) {
        if before == after {
            return;
        }
        if let Some(gone) = before {
            self.by_severity[usize::from(gone.severity)] -= 1;
            for queue in gone.queues {
                *self.by_queue.entry(queue).or_default() -= 1;
            }
        }
        if let Some(came) = after {
            self.by_severity[usize::from(came.severity)] += 1;
            for queue in came.queues {
                *self.by_queue.entry(queue).or_default() += 1;
            }
        }
    }

    pub fn by_severity(&self) -> &[i64; 5] {
        &self.by_severity
    }

    /// Open incidents in `queue` (0 for one never used).
    pub fn in_queue(&self, queue: &str) -> i64 {
        self.by_queue.get(queue).copied().unwrap_or(0)
    }

    /// The same counts without the queues that emptied (to compare with a fresh count).
    pub fn without_empty_queues(&self) -> OpenCounts {
        let mut counts = self.clone();
        counts.by_queue.retain(|_, n| *n != 0);
        counts
    }

    /// Every queue that has held an open incident, with its count now.
    pub fn queues(&self) -> impl Iterator<Item = (&str, i64)> {
        self.by_queue.iter().map(|(q, n)| (q.as_str(), *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(severity: u8, queue: Option<&str>) -> Option<Counted> {
        Some(Counted {
            severity,
            queues: queue.iter().map(|q| q.to_string()).collect(),
        })
    }

    #[test]
    fn counts_follow_opening_changes_and_closing() {
        let mut counts = OpenCounts::default();
        counts.changed(None, counted(2, None));
        counts.changed(None, counted(3, Some("triage")));
        assert_eq!(counts.by_severity(), &[0, 0, 1, 1, 0]);
        assert_eq!(counts.in_queue("triage"), 1);
        // Severity raised, then the queued one leaves its queue and closes.
        counts.changed(counted(2, None), counted(1, None));
        counts.changed(counted(3, Some("triage")), counted(3, None));
        counts.changed(counted(3, None), None);
        assert_eq!(counts.by_severity(), &[0, 1, 0, 0, 0]);
        assert_eq!(
            counts.queues().collect::<Vec<_>>(),
            vec![("triage", 0)],
            "an emptied queue reads 0"
        );
        assert_eq!(counts.in_queue("other"), 0);
    }

    #[test]
    fn an_incident_in_several_queues_counts_in_each() {
        let mut counts = OpenCounts::default();
        let both = Some(Counted {
            severity: 4,
            queues: vec!["storage-triage".into(), "sqldb-triage".into()],
        });
        counts.changed(None, both.clone());
        assert_eq!(counts.in_queue("storage-triage"), 1);
        assert_eq!(counts.in_queue("sqldb-triage"), 1);
        // Taken: out of every queue at once.
        counts.changed(both, counted(4, None));
        assert_eq!(counts.in_queue("storage-triage"), 0);
        assert_eq!(counts.in_queue("sqldb-triage"), 0);
    }
}
