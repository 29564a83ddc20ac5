//! The typed shape of `config/tocsin.yaml`, as docs/configuration.md describes it. Every
//! struct refuses unknown keys so a typo is an error, not a silently ignored setting.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Deserializer};

use super::cronspec::{CronSpec, Zone};
use super::duration::Duration;
use super::matcher::Matcher;

/// Label maps accept any scalar value (`code: 500`) and keep it as text.
pub fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// A YAML scalar kept as its text.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base of ack links and of `url` in page payloads.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Several engines on PostgreSQL: where the others reach this engine's API. While it
    /// leads, they hand it the inputs they take there (default: `http://` and the listen
    /// address, unless that is 0.0.0.0 or [::]). `none`, or no default: they put their
    /// inputs in the store's inbox.
    #[serde(default)]
    pub advertise_url: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Key that signs ack links; generated under the data folder when absent.
    #[serde(default)]
    pub ack_secret_file: Option<String>,
    /// Key of the audit log's HMAC chain; `audit.key` beside the data (made, 0600) when
    /// absent. Engines sharing a PostgreSQL store need the same key.
    #[serde(default)]
    pub audit_key_file: Option<String>,
    /// How long an ack link stays valid.
    #[serde(default = "default_ack_link_ttl")]
    pub ack_link_ttl: Duration,
    /// Requests per client on the ingest endpoints.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
}

/// A token bucket per client address on the ingest endpoints (`/api/v2/alerts`,
/// `/api/v1/alertmanager`, `/api/v1/cri`, `/api/v1/heartbeats/*`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second each client may make, on average.
    #[serde(default = "default_rate_per_client")]
    pub per_client: f64,
    /// Requests a client may make at once after being quiet.
    #[serde(default = "default_rate_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_client: default_rate_per_client(),
            burst: default_rate_burst(),
        }
    }
}

/// Prometheus sends each alertmanager one request per evaluation interval and group of up
/// to 64 alerts; Alertmanager one per group and `group_interval`. 100 a second per client,
/// 200 at once, is far above either.
fn default_rate_per_client() -> f64 {
    100.0
}

fn default_rate_burst() -> u32 {
    200
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            external_url: None,
            advertise_url: None,
            auth: None,
            ack_secret_file: None,
            audit_key_file: None,
            ack_link_ttl: default_ack_link_ttl(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9470".into()
}

fn default_ack_link_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens_file: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Several engines on PostgreSQL: how long the leader's lease lasts unrenewed (a
    /// takeover happens within this). Renewed every fifth of it.
    #[serde(default = "default_lease")]
    pub lease: Duration,
    /// This engine's name in the lease (default: host name and listen address).
    #[serde(default)]
    pub engine_id: Option<String>,
    /// Resolved incidents (with their timelines and pages) that resolved longer ago than
    /// this are removed in the background.
    #[serde(default = "default_retention")]
    pub retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            lease: default_lease(),
            engine_id: None,
            retention: default_retention(),
        }
    }
}

/// `server.advertise_url` that says where no engine should hand this one inputs.
pub const NO_ADVERTISE_URL: &str = "none";

fn default_retention() -> Duration {
    Duration::from_secs(400 * 24 * 3600)
}

fn default_lease() -> Duration {
    Duration::from_secs(10)
}

fn default_store_url() -> String {
    "sqlite://data/tocsin.db".into()
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default)]
    pub services: Vec<ServiceDef>,
    #[serde(default)]
    pub customers: Vec<CustomerDef>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    pub name: String,
    #[serde(default)]
    pub sla: Option<f64>,
    #[serde(default)]
    pub regions: Vec<String>,
    /// Services this one runs on: an impact here while one of them has an open major
    /// incident in the same region joins that incident instead of paging on its own.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Its component triage queue (`queue: component` routes); `<name>-triage` when unset.
    #[serde(default)]
    pub triage_queue: Option<String>,
    /// Its troubleshooting guide.
    #[serde(default)]
    pub tsg: Option<TsgConfig>,
}

/// A troubleshooting guide: where it is, when a Sev 3 of the service escalates, and the
/// automated mitigation tocsin starts when an incident opens.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsgConfig {
    pub url: String,
    #[serde(default)]
    pub escalate: TsgEscalate,
    #[serde(default)]
    pub action: Option<TsgActionConfig>,
}

/// A TSG's automated mitigation: the webhook (of `notifiers.webhooks`) tocsin calls when an
/// incident opens, and how long it waits for the action's report before counting it failed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsgActionConfig {
    pub webhook: String,
    #[serde(default = "default_tsg_action_timeout")]
    pub timeout: Duration,
}

fn default_tsg_action_timeout() -> Duration {
    Duration::from_secs(900)
}

/// "All escalations occur during business hours (or immediately per TSG)".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsgEscalate {
    /// A Sev 3 waits for its route's time window, as without a TSG.
    #[default]
    BusinessHours,
    /// A Sev 3 pages at once, outside its route's time window too.
    Immediately,
}

impl ServiceDef {
    /// The component triage queue of this service.
    pub fn triage_queue(&self) -> String {
        self.triage_queue
            .clone()
            .unwrap_or_else(|| format!("{}-triage", self.name))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerDef {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub service: String,
    /// Empty means every region of the service.
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Http,
    Tcp,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub name: String,
    pub kind: ProbeKind,
    pub url: String,
    #[serde(default = "default_probe_interval")]
    pub interval: Duration,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
    /// http: request method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default, deserialize_with = "labels")]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// http: status codes counted as success (default any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub tls: Option<ProbeTls>,
    /// tcp: bytes to send after connecting.
    #[serde(default)]
    pub send: Option<String>,
    /// tcp: text the answer must contain.
    #[serde(default)]
    pub expect: Option<String>,
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTls {
    /// Verify the server certificate (default true).
    #[serde(default = "yes")]
    pub verify: bool,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbingConfig {
    /// Probes in flight at once, across all probes.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl Default for ProbingConfig {
    fn default() -> Self {
        ProbingConfig {
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_max_in_flight() -> usize {
    2048
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    #[serde(default)]
    pub prometheus: Vec<PullSource>,
    #[serde(default)]
    pub alertmanager: Vec<PullSource>,
    /// How long a pushed alert without `endsAt` stays firing (as Alertmanager's).
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: Duration,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        SourcesConfig {
            prometheus: vec![],
            alertmanager: vec![],
            resolve_timeout: default_resolve_timeout(),
        }
    }
}

fn default_resolve_timeout() -> Duration {
    Duration::from_secs(300)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSource {
    pub name: String,
    pub url: String,
    #[serde(default = "default_probe_interval")]
    pub interval: Duration,
    #[serde(default = "default_pull_timeout")]
    pub timeout: Duration,
    /// Labels added to every alert pulled from this source.
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
}

fn default_pull_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    pub name: String,
    pub every: Duration,
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationConfig {
    #[serde(default = "default_correlation_by")]
    pub by: Vec<String>,
    #[serde(default = "default_correlation_window")]
    pub window: Duration,
    #[serde(default)]
    pub regional: RegionalConfig,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            by: default_correlation_by(),
            window: default_correlation_window(),
            regional: RegionalConfig::default(),
        }
    }
}

fn default_correlation_by() -> Vec<String> {
    vec!["service".into()]
}

/// Major impacts on `classification.multi_services` services in one region within
/// `window` form one regional incident.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionalConfig {
    #[serde(default = "default_regional_window")]
    pub window: Duration,
}

impl Default for RegionalConfig {
    fn default() -> Self {
        RegionalConfig {
            window: default_regional_window(),
        }
    }
}

fn default_regional_window() -> Duration {
    Duration::from_secs(120)
}

fn default_correlation_window() -> Duration {
    Duration::from_secs(15 * 60)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    #[serde(default = "default_resolve_after")]
    pub resolve_after: Duration,
    /// A new impact that correlates with an incident that resolved on its own less than
    /// this long ago reopens it.
    #[serde(default = "default_reopen_within")]
    pub reopen_within: Duration,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            resolve_after: default_resolve_after(),
            reopen_within: default_reopen_within(),
        }
    }
}

fn default_reopen_within() -> Duration {
    Duration::from_secs(600)
}

fn default_resolve_after() -> Duration {
    Duration::from_secs(300)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    #[serde(default = "two")]
    pub major_customers: usize,
    #[serde(default = "two")]
    pub multi_regions: usize,
    #[serde(default = "two")]
    pub multi_services: usize,
    /// When an impact with `sla_breach: auto` breaches its service's SLA.
    #[serde(default)]
    pub sla: SlaClassification,
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        ClassificationConfig {
            major_customers: 2,
            multi_regions: 2,
            multi_services: 2,
            sla: SlaClassification::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaClassification {
    #[serde(default)]
    pub burn: BurnThresholds,
}

/// Error-budget burn rates over 1 hour (`fast`) and 6 hours (`slow`) that together breach
/// an SLA: the SRE workbook's 14.4 and 6 by default (2% and 5% of a 30-day budget).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnThresholds {
    #[serde(default = "fast_burn")]
    pub fast: f64,
    #[serde(default = "slow_burn")]
    pub slow: f64,
}

impl Default for BurnThresholds {
    fn default() -> Self {
        BurnThresholds {
            fast: fast_burn(),
            slow: slow_burn(),
        }
    }
}

fn fast_burn() -> f64 {
    14.4
}

fn slow_burn() -> f64 {
    6.0
}

fn two() -> usize {
    2
}

/// Initial-response deadlines per SR severity.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrResponseConfig {
    #[serde(rename = "A", default = "two_hours")]
    pub a: Duration,
    #[serde(rename = "B", default = "four_hours")]
    pub b: Duration,
    #[serde(rename = "C", default = "eight_hours")]
    pub c: Duration,
}

impl Default for SrResponseConfig {
    fn default() -> Self {
        SrResponseConfig {
            a: two_hours(),
            b: four_hours(),
            c: eight_hours(),
        }
    }
}

impl SrResponseConfig {
    pub fn deadline(&self, sr_severity: &str) -> Option<Duration> {
        match sr_severity {
            "A" => Some(self.a),
            "B" => Some(self.b),
            "C" => Some(self.c),
            _ => None,
        }
    }
}

/// How often an SR case needs an update once it is responded to (the reference: SR A and B
/// get continuous work; SR C only its initial response).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrEngagementConfig {
    #[serde(rename = "A", default = "one_hour")]
    pub a: Duration,
    #[serde(rename = "B", default = "four_hours")]
    pub b: Duration,
}

impl Default for SrEngagementConfig {
    fn default() -> Self {
        SrEngagementConfig {
            a: one_hour(),
            b: four_hours(),
        }
    }
}

impl SrEngagementConfig {
    /// The update cadence of an SR severity; `None` for SR C (and anything else).
    pub fn cadence(&self, sr_severity: &str) -> Option<Duration> {
        match sr_severity {
            "A" => Some(self.a),
            "B" => Some(self.b),
            _ => None,
        }
    }
}

fn one_hour() -> Duration {
    Duration::from_secs(3600)
}
fn two_hours() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn four_hours() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn eight_hours() -> Duration {
    Duration::from_secs(8 * 3600)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponderConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Name of a webhook in `notifiers.webhooks` that reaches this person.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The zone the times in this person's pages are in (an IANA name); else the zone of a
    /// schedule that pages them, else UTC.
    #[serde(default)]
    pub timezone: Option<Zone>,
    /// How this person is reached for each page, step by step, until the incident is
    /// acknowledged; without it every channel they have is paged at once.
    #[serde(default)]
    pub notify: Option<Vec<NotifyStep>>,
}

impl ResponderConfig {
    /// The channels this person has, as a notify step's `via` names them.
    pub fn channels(&self) -> Vec<String> {
        let email = self.email.as_ref().map(|_| "email".to_string());
        let hook = self.webhook.as_ref().map(|name| format!("webhook:{name}"));
        email.into_iter().chain(hook).collect()
    }
}

/// One step of a responder's notification rules: `via` a channel of theirs (`email`, or
/// `webhook:NAME` for their webhook), `after` that long since the page unless the incident
/// was acknowledged meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyStep {
    pub after: Duration,
    pub via: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    pub timezone: Zone,
    pub handoff: CronSpec,
    pub start: DateTime<FixedOffset>,
    pub participants: Vec<String>,
    #[serde(default)]
    pub overrides: Vec<OverrideConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    pub responder: String,
    /// The API's field names; `from` and `to` are still read.
    #[serde(alias = "from")]
    pub start: DateTime<FixedOffset>,
    #[serde(alias = "to")]
    pub end: DateTime<FixedOffset>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowConfig {
    pub name: String,
    pub timezone: Zone,
    pub start: CronSpec,
    pub duration: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicyConfig {
    pub name: String,
    #[serde(default)]
    pub repeat: u32,
    /// Wait before running the levels again; default: the longest `after` of the levels.
    #[serde(default)]
    pub repeat_after: Option<Duration>,
    #[serde(default)]
    pub ack_timeout: Option<Duration>,
    pub levels: Vec<LevelConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    #[serde(default)]
    pub after: Duration,
    pub notify: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(rename = "match", default)]
    pub matchers: Vec<Matcher>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub active_during: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    #[serde(rename = "match")]
    pub matchers: Vec<Matcher>,
    /// Silenced only inside this time window; without one, always.
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `watchdog:`: an outbound dead-man's switch. While the engine is healthy it sends a request
/// to `url` every `every`; it stops as soon as it is not, so the service behind the URL
/// (healthchecks.io, Dead Man's Snitch, an Alertmanager heartbeat) pages someone.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    pub url: String,
    pub every: Duration,
    /// Sent as `Authorization: Bearer <secret>` when set.
    #[serde(default)]
    pub secret_file: Option<String>,
}
