//! Triage queues: the queue a route names, or with `queue: component` the triage queue of
//! the component (catalog service) the incident hits.

use crate::config::{Catalog, Config};

/// The queue name that stands for the component's own queue.
pub const COMPONENT: &str = "component";

/// The queue an incident joins when its route says `queue`: `component` is the triage
/// queue of its first service in the catalog (by name), else `<service>-triage`; `None`
/// when it names no service. Any other name is itself.
pub fn resolve(queue: &str, services: &[String], catalog: &Catalog) -> Option<String> {
    if queue != COMPONENT {
        return Some(queue.to_string());
    }
    let service = services.first()?;
    Some(
        catalog
            .services
            .iter()
            .find(|s| &s.name == service)
            .map(|s| s.triage_queue())
            .unwrap_or_else(|| format!("{service}-triage")),
    )
}

/// Every queue the config can fill, in route order then catalog order, without repeats: the
/// queues routes name, and each catalog service's when a route says `queue: component`.
pub fn configured(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    for queue in config.routes.iter().filter_map(|r| r.queue.as_ref()) {
        if queue == COMPONENT {
            for service in &config.catalog.services {
                push(service.triage_queue());
            }
        } else {
            push(queue.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceDef;

    fn catalog() -> Catalog {
        let service = |name: &str, queue: Option<&str>| ServiceDef {
            depends_on: Default::default(),
            name: name.into(),
            sla: None,
            regions: vec![],
            triage_queue: queue.map(str::to_string),
            tsg: None,
        };
        Catalog {
            services: vec![
                service("storage", Some("storage-oncall")),
                service("sqldb", None),
            ],
            ..Catalog::default()
        }
    }

    #[test]
    fn component_is_the_services_own_queue() {
        let c = catalog();
        let of = |services: &[&str]| {
            let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
            resolve(COMPONENT, &services, &c)
        };
        assert_eq!(of(&["storage"]).as_deref(), Some("storage-oncall"));
        assert_eq!(of(&["sqldb"]).as_deref(), Some("sqldb-triage"));
        assert_eq!(
            of(&["billing"]).as_deref(),
            Some("billing-triage"),
            "not in the catalog"
        );
        assert_eq!(of(&[]), None);
        assert_eq!(
            resolve("ops", &[], &c).as_deref(),
            Some("ops"),
            "a named queue"
        );
    }

    #[test]
    fn component_routes_configure_every_services_queue() {
        let mut config = Config {
            catalog: catalog(),
            ..Config::default()
        };
        let route = |queue: &str| crate::config::RouteConfig {
            matchers: vec![],
            policy: None,
            queue: Some(queue.into()),
            active_during: vec![],
        };
        config.routes = vec![route("ops"), route(COMPONENT), route("ops")];
        assert_eq!(
            configured(&config),
            ["ops", "storage-oncall", "sqldb-triage"]
        );
    }
}
