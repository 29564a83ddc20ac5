//! Triage queues: the queue a route names, or with `queue: component` the triage queue of
//! the component (catalog service) the incident hits.

use crate::config::{Catalog, Config};

/// The queue name that stands for the component's own queue.
pub const COMPONENT: &str = "component";

/// The queues an incident joins when its route says `queue`: `component` is the triage
/// queue of each service it hits (the catalog's `triage_queue`, else `<service>-triage`),
/// in the order of `services`, each queue once; none when it names no service. Any other
/// name is itself.
pub fn resolve(queue: &str, services: &[String], catalog: &Catalog) -> Vec<String> {
    if queue != COMPONENT {
        return vec![queue.to_string()];
    }
    let mut queues: Vec<String> = Vec::new();
    for service in services {
        let queue = catalog
            .services
            .iter()
            .find(|s| &s.name == service)
            .map(|s| s.triage_queue())
            .unwrap_or_else(|| format!("{service}-triage"));
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    queues
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
        assert_eq!(of(&["storage"]), ["storage-oncall"]);
        assert_eq!(of(&["sqldb"]), ["sqldb-triage"]);
        assert_eq!(of(&["billing"]), ["billing-triage"], "not in the catalog");
        assert!(of(&[]).is_empty());
        assert_eq!(resolve("ops", &[], &c), ["ops"], "a named queue");
    }

    #[test]
    fn component_is_the_queue_of_each_service_hit() {
        let c = catalog();
        let services: Vec<String> = ["sqldb", "storage", "billing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            resolve(COMPONENT, &services, &c),
            ["sqldb-triage", "storage-oncall", "billing-triage"]
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
