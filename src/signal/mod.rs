//! Signals: single observations from a source, keyed by a fingerprint of source and labels.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a signal comes from; matchable as the pseudo-label `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Probe,
    Alert,
    Cri,
    Heartbeat,
    /// The engine about itself, e.g. a source it cannot reach.
    Tocsin,
    /// A person: the impacts of an incident declared by hand (never a signal's source).
    Manual,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Probe => "probe",
            SourceKind::Alert => "alert",
            SourceKind::Cri => "cri",
            SourceKind::Heartbeat => "heartbeat",
            SourceKind::Tocsin => "tocsin",
            SourceKind::Manual => "manual",
        }
    }

    pub const ALL: [SourceKind; 6] = [
        SourceKind::Probe,
        SourceKind::Alert,
        SourceKind::Cri,
        SourceKind::Heartbeat,
        SourceKind::Tocsin,
        SourceKind::Manual,
    ];
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert-like signal says something is wrong right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalState {
    Firing,
    Resolved,
}

/// What a probe measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub success: bool,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub latency_ms: f64,
    /// The body, parsed when it is JSON, else a string.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub cert_expiry_days: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Details only a customer-reported incident carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriDetails {
    pub id: String,
    pub sr_severity: String,
    pub contact: Contact,
    pub received_at: DateTime<Utc>,
    pub respond_by: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// A set of labels or annotations. Shared, not copied: the signal, its rule state, its
/// lease, the impact and the incident it opened each hold the same set, which is what lets
/// 100,000 open incidents fit in memory. Change one with `Arc::make_mut`.
pub type Labels = Arc<LabelSet>;

mod labels;
pub mod rfc3339;

/// For `skip_serializing_if`: an empty set is left out of a stored row.
pub fn no_labels(labels: &Labels) -> bool {
    labels.is_empty()
}
pub use labels::{LabelIter, LabelSet};

/// One observation.
///
/// Stored (with its rule states, and in the inbox) without the fields it lacks: most signals
/// have no value, probe result or report, and each new alert's rule state wrote
/// `"value":null,"probe":null,"cri":null`, bytes SQLite copies, logs and fsyncs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub source: SourceKind,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub state: SignalState,
    // Boxed: most signals carry neither, and each open incident keeps its signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Box<ProbeResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri: Option<Box<CriDetails>>,
    /// A pushed alert stays firing until then unless refreshed (its lease).
    #[serde(
        default,
        serialize_with = "rfc3339::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub observed_at: DateTime<Utc>,
}

/// The annotation an alert's `generatorURL` is kept under. Not a label name, so no
/// annotation of a source's own can take its place.
pub const GENERATOR_URL: &str = "generatorURL";

/// Longest link kept from a source.
const MAX_LINK: usize = 4096;

/// An `http://` or `https://` URL: a link a page may show as one.
pub fn is_web_link(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://"))
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A stable key of (source, sorted labels), as Alertmanager fingerprints alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Fingerprint)
    }
}

impl Signal {
    pub fn new(source: SourceKind, labels: impl Into<LabelSet>, at: DateTime<Utc>) -> Self {
        Signal {
            source,
            labels: Arc::new(labels.into()),
            annotations: Labels::default(),
            value: None,
            state: SignalState::Firing,
            probe: None,
            cri: None,
            expires_at: None,
            observed_at: at,
        }
    }

    /// Source plus sorted labels; a CRI is also keyed by its own id, so two reports from the
    /// same customer stay two signals.
    pub fn fingerprint(&self) -> Fingerprint {
        // FNV-1a: stable across processes and versions, unlike std's SipHash with random keys.
        let mut hasher = Fnv1a::default();
        self.source.as_str().hash(&mut hasher);
        for (k, v) in self.labels.iter() {
            k.hash(&mut hasher);
            v.hash(&mut hasher);
        }
        if let Some(cri) = &self.cri {
            cri.id.hash(&mut hasher);
        }
        Fingerprint(hasher.finish())
    }

    /// A customer-reported incident as a signal: labels `customer`, `service`, `region`,
    /// `sr_severity` and `kind`, firing from `received_at`.
    pub fn customer_report(
        labels: BTreeMap<String, String>,
        summary: Option<String>,
        cri: CriDetails,
    ) -> Self {
        let mut signal = Signal::new(SourceKind::Cri, labels, cri.received_at);
        if let Some(summary) = summary {
            Arc::make_mut(&mut signal.annotations).insert("summary".into(), summary);
        }
        signal.cri = Some(Box::new(cri));
        signal
    }

    /// Keep an alert's `generatorURL` among its annotations, under [`GENERATOR_URL`], when
    /// it is an http(s) link (anything else could not be followed, or would run script in
    /// a page's HTML).
    pub fn set_generator_url(&mut self, url: Option<&str>) {
        if let Some(url) = url.filter(|u| is_web_link(u) && u.len() <= MAX_LINK) {
            Arc::make_mut(&mut self.annotations).insert(GENERATOR_URL.into(), url.to_string());
        }
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }

    /// Labels plus the `source` pseudo-label, for matchers.
    pub fn lookup(&self, name: &str) -> Option<&str> {
        if name == "source" {
            Some(self.source.as_str())
        } else {
            self.label(name)
        }
    }

    /// Is `other` the same observation again, in everything a rule's matchers and `when`
    /// read (not when it was made, nor its lease)?
    pub fn same_observation(&self, other: &Signal) -> bool {
        self.source == other.source
            && self.state == other.state
            && self.value == other.value
            && self.labels == other.labels
            && self.annotations == other.annotations
            && self.probe == other.probe
            && self.cri == other.cri
    }

    pub fn is_firing(&self) -> bool {
        self.state == SignalState::Firing
    }
}

#[derive(Default)]
struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf29ce484222325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        self.0 = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_label_order_and_annotations() {
        let at = Utc::now();
        let mut a = Signal::new(
            SourceKind::Alert,
            BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            at,
        );
        let b = Signal::new(
            SourceKind::Alert,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            at,
        );
        Arc::make_mut(&mut a.annotations).insert("summary".into(), "x".into());
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = Signal::new(SourceKind::Probe, b.labels.as_ref().clone(), at);
        assert_ne!(c.fingerprint(), b.fingerprint());
        // Stable value across runs and builds.
        assert_eq!(b.fingerprint(), b.fingerprint());
    }
}
