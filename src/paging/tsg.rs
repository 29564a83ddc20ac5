//! Troubleshooting guides (TSGs) that decide: the guide of the services an incident hits,
//! and whether a Sev 3 pages outside its route's time window.

use crate::config::{Catalog, TsgConfig, TsgEscalate};

/// The TSG of the first of `services` (by name) that has one.
pub fn of<'a>(catalog: &'a Catalog, services: &[String]) -> Option<(&'a str, &'a TsgConfig)> {
    services.iter().find_map(|name| {
        let service = catalog.services.iter().find(|s| &s.name == name)?;
        Some((service.name.as_str(), service.tsg.as_ref()?))
    })
}

/// A Sev 3 whose TSG says `escalate: immediately` pages at once, outside business hours
/// too; the service whose TSG says so.
pub fn pages_at_once<'a>(
    catalog: &'a Catalog,
    services: &[String],
    severity: u8,
) -> Option<&'a str> {
    if severity != 3 {
        return None;
    }
    services.iter().find_map(|name| {
        let service = catalog.services.iter().find(|s| &s.name == name)?;
        (service.tsg.as_ref()?.escalate == TsgEscalate::Immediately)
            .then_some(service.name.as_str())
    })
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
        assert_eq!(pages_at_once(&c, &names(&["storage"]), 3), Some("storage"));
        assert_eq!(
            pages_at_once(&c, &names(&["storage"]), 2),
            None,
            "Sev 2 pages anyway"
        );
        assert_eq!(
            pages_at_once(&c, &names(&["storage"]), 4),
            None,
            "Sev 4 is queued"
        );
        assert_eq!(pages_at_once(&c, &names(&["sqldb"]), 3), None);
        assert_eq!(pages_at_once(&c, &names(&["billing"]), 3), None, "no TSG");
        assert_eq!(
            pages_at_once(&c, &names(&["billing", "storage"]), 3),
            Some("storage")
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
