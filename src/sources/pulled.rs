//! One alert as a pulled source lists it: what the Prometheus and Alertmanager decoders
//! return and the pull loop turns into signals.

use std::collections::BTreeMap;

/// One firing alert as a source lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct PulledAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub value: Option<f64>,
    /// The link back to the expression that fired (Alertmanager's `generatorURL`).
    pub generator_url: Option<String>,
}
