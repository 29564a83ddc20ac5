//! Who is hurt: customers from the `customer` label or from catalog subscriptions.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;

/// The service catalog, indexed for lookups.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// service -> its regions
    service_regions: BTreeMap<String, BTreeSet<String>>,
    /// (customer, service, regions; empty = all regions of the service)
    subscriptions: Vec<(String, String, BTreeSet<String>)>,
    /// service -> the services it depends on (`depends_on`)
    depends_on: BTreeMap<String, Vec<String>>,
    /// service -> its `sla` (percent)
    slas: BTreeMap<String, f64>,
}

impl Catalog {
    pub fn new(config: &Config) -> Self {
        let service_regions = config
            .catalog
            .services
            .iter()
            .map(|s| (s.name.clone(), s.regions.iter().cloned().collect()))
            .collect();
        let subscriptions = config
            .catalog
            .customers
            .iter()
            .flat_map(|c| {
                c.subscriptions.iter().map(|s| {
                    (
                        c.id.clone(),
                        s.service.clone(),
                        s.regions.iter().cloned().collect(),
                    )
                })
            })
            .collect();
        let depends_on = config
            .catalog
            .services
            .iter()
            .filter(|s| !s.depends_on.is_empty())
            .map(|s| (s.name.clone(), s.depends_on.clone()))
            .collect();
        let slas = config
            .catalog
            .services
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.sla?)))
            .collect();
        Catalog {
            service_regions,
            subscriptions,
            depends_on,
            slas,
        }
    }

    /// The service's `sla` in percent (99.9), when the catalog gives one.
    pub fn sla(&self, service: &str) -> Option<f64> {
        self.slas.get(service).copied()
    }

    /// The services `service` depends on.
    pub fn depends_on(&self, service: &str) -> &[String] {
        self.depends_on
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Customers of an impact: its `customer` label (comma-separated allowed), else every
    /// customer subscribed to its service in its region (all regions when it has none).
    pub fn customers(
        &self,
        customer_label: Option<&str>,
        service: Option<&str>,
        region: Option<&str>,
    ) -> BTreeSet<String> {
        if let Some(label) = customer_label.filter(|l| !l.trim().is_empty()) {
            return label
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
        }
        let Some(service) = service else {
            return BTreeSet::new();
        };
        self.subscriptions
            .iter()
            .filter(|(_, s, _)| s == service)
            .filter(|(_, _, regions)| match region {
                None => true,
                // An empty subscription covers every region the service runs in.
                Some(r) => regions.is_empty() || regions.contains(r),
            })
            .map(|(c, _, _)| c.clone())
            .collect()
    }

    pub fn knows_service(&self, service: &str) -> bool {
        self.service_regions.contains_key(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn customers_from_label_or_subscriptions() {
        let config = crate::config::load_str(
            Path::new("t.yaml"),
            "\
catalog:
  services: [ { name: storage, regions: [east, north] } ]
  customers:
    - { id: contoso, subscriptions: [ { service: storage, regions: [east] } ] }
    - { id: fabrikam, subscriptions: [ { service: storage } ] }
",
        )
        .unwrap();
        let catalog = Catalog::new(&config);
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            catalog.customers(None, Some("storage"), Some("east")),
            set(&["contoso", "fabrikam"])
        );
        assert_eq!(
            catalog.customers(None, Some("storage"), Some("north")),
            set(&["fabrikam"])
        );
        assert_eq!(
            catalog.customers(None, Some("storage"), None),
            set(&["contoso", "fabrikam"])
        );
        assert_eq!(
            catalog.customers(Some("acme"), Some("storage"), None),
            set(&["acme"])
        );
        assert_eq!(catalog.customers(None, Some("other"), None), set(&[]));
    }
}
