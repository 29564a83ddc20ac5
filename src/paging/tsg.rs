//! Troubleshooting guides (TSGs) that decide: which TSG an incident follows, whether a
//! Sev 3 pages outside its route's time window, and whether a queued incident waits for its
//! TSG action before it joins a triage queue.

use crate::config::{Catalog, TsgConfig, TsgEscalate};
use crate::incident::TsgAction;

/// The TSG an incident follows, and whose it is (`rule NAME` or `service NAME`).
#[derive(Clone, Debug)]
pub struct Chosen<'a> {
    pub tsg: &'a TsgConfig,
    pub from: String,
}

/// The incident's TSG: the TSG of the rule that opened it wins; else that of the first of
/// `services` (by name) that has one.
pub fn choose<'a>(
    rule: Option<(&str, &'a TsgConfig)>,
    catalog: &'a Catalog,
    services: &[String],
) -> Option<Chosen<'a>> {
    if let Some((name, tsg)) = rule {
        return Some(Chosen {
            tsg,
            from: format!("rule {name}"),
        });
    }
    of(catalog, services).map(|(service, tsg)| Chosen {
        tsg,
        from: format!("service {service}"),
    })
}

/// The TSG of the first of `services` (by name) that has one.
pub fn of<'a>(catalog: &'a Catalog, services: &[String]) -> Option<(&'a str, &'a TsgConfig)> {
    services.iter().find_map(|name| {
        let service = catalog.services.iter().find(|s| &s.name == name)?;
        Some((service.name.as_str(), service.tsg.as_ref()?))
    })
}

/// A Sev 3 whose TSG says `escalate: immediately` pages at once, outside business hours
/// too; whose TSG says so (`rule NAME` or `service NAME`). A rule's TSG decides alone; else
/// any service it hits whose TSG says so.
pub fn pages_at_once(
    rule: Option<(&str, &TsgConfig)>,
    catalog: &Catalog,
    services: &[String],
    severity: u8,
) -> Option<String> {
    if severity != 3 {
        return None;
    }
    if let Some((name, tsg)) = rule {
        return (tsg.escalate == TsgEscalate::Immediately).then(|| format!("rule {name}"));
    }
    services.iter().find_map(|name| {
        let service = catalog.services.iter().find(|s| &s.name == name)?;
        (service.tsg.as_ref()?.escalate == TsgEscalate::Immediately)
            .then(|| format!("service {}", service.name))
    })
}

/// What a route that queues an incident does, given its TSG action ("assigned to the
/// component triage queue if the TSG fails or does not exist").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueGate {
    /// No TSG action, or it failed or timed out: the incident joins its queues.
    Join,
    /// The action has not reported yet: the incident waits, in no queue.
    Wait { webhook: String },
    /// The action succeeded: the incident stays out of the queues.
    Succeeded,
}

pub fn queue_gate(action: Option<&TsgAction>) -> QueueGate {
    match action {
        None => QueueGate::Join,
        Some(a) if a.is_pending() => QueueGate::Wait {
            webhook: a.webhook.clone(),
        },
        Some(a) if a.failed() => QueueGate::Join,
        Some(_) => QueueGate::Succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceDef;

    fn catalog() -> Catalog {
        let service = |name: &str, escalate: Option<TsgEscalate>| ServiceDef {
            depends_on: Default::default(),
            name: name.into(),
            sla: None,
            regions: vec![],
            triage_queue: None,
            tsg: escalate.map(|escalate| TsgConfig {
                url: format!("https://wiki/{name}"),
                escalate,
                action: None,
            }),
        };
        Catalog {
            services: vec![
                service("storage", Some(TsgEscalate::Immediately)),
                service("sqldb", Some(TsgEscalate::BusinessHours)),
                service("billing", None),
            ],
            ..Catalog::default()
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_a_sev3_whose_tsg_says_immediately_pages_at_once() {
        let c = catalog();
        let at_once =
            |services: &[&str], severity| pages_at_once(None, &c, &names(services), severity);
        assert_eq!(at_once(&["storage"], 3).as_deref(), Some("service storage"));
        assert_eq!(at_once(&["storage"], 2), None, "Sev 2 pages anyway");
        assert_eq!(at_once(&["storage"], 4), None, "Sev 4 is queued");
        assert_eq!(at_once(&["sqldb"], 3), None);
        assert_eq!(at_once(&["billing"], 3), None, "no TSG");
        assert_eq!(
            at_once(&["billing", "storage"], 3).as_deref(),
            Some("service storage")
        );
    }

    #[test]
    fn a_rules_tsg_wins_over_its_services() {
        let c = catalog();
        let waits = TsgConfig {
            url: "https://wiki/rule".into(),
            escalate: TsgEscalate::BusinessHours,
            action: None,
        };
        let rule = Some(("DiskFull", &waits));
        assert_eq!(
            pages_at_once(rule, &c, &names(&["storage"]), 3),
            None,
            "the rule's TSG says business hours, the service's immediately"
        );
        let chosen = choose(rule, &c, &names(&["storage"])).unwrap();
        assert_eq!(
            (chosen.tsg.url.as_str(), chosen.from.as_str()),
            ("https://wiki/rule", "rule DiskFull")
        );
        let chosen = choose(None, &c, &names(&["storage"])).unwrap();
        assert_eq!(chosen.from, "service storage");
    }

    #[test]
    fn a_queued_incident_waits_for_its_action_and_joins_only_if_it_fails() {
        use crate::incident::TsgOutcome;
        let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let run = |outcome| TsgAction {
            webhook: "restart".into(),
            url: "https://wiki/storage".into(),
            from: "service storage".into(),
            called_at: at,
            deadline: at,
            outcome,
            note: None,
            reported_by: None,
            reported_at: None,
            waited: false,
        };
        assert_eq!(queue_gate(None), QueueGate::Join, "no TSG action");
        assert_eq!(
            queue_gate(Some(&run(None))),
            QueueGate::Wait {
                webhook: "restart".into()
            }
        );
        assert_eq!(
            queue_gate(Some(&run(Some(TsgOutcome::Succeeded)))),
            QueueGate::Succeeded
        );
        assert_eq!(
            queue_gate(Some(&run(Some(TsgOutcome::Failed)))),
            QueueGate::Join
        );
        assert_eq!(
            queue_gate(Some(&run(Some(TsgOutcome::TimedOut)))),
            QueueGate::Join
        );
    }

    #[test]
    fn the_tsg_is_the_first_service_that_has_one() {
        let c = catalog();
        let (service, tsg) = of(&c, &names(&["billing", "sqldb"])).unwrap();
        assert_eq!((service, tsg.url.as_str()), ("sqldb", "https://wiki/sqldb"));
        assert!(of(&c, &names(&["billing"])).is_none());
    }
}
