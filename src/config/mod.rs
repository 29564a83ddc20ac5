//! Configuration: `config/tocsin.yaml` and the rule files it names, parsed into typed structs
//! and validated as a whole. Loading reports every error it can find, each with the file,
//! line and column it comes from.

pub mod cronspec;
pub mod duration;
mod files;
mod load;
pub mod locate;
pub mod matcher;
pub mod notifier_types;
mod report;
pub mod rule_file;
pub mod secrets;
pub mod types;
mod validate;
mod validate_paging;
pub mod when_check;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};

pub use cronspec::{CronSpec, Zone};
pub use duration::Duration;
pub use load::{load, load_rules_str, load_str};

/// Load a config for the engine to run: what `check` only warns about, because it depends on
/// where tocsin runs (an unset `password_env`), is an error here. The engine refuses to
/// start (or to reload) rather than fail at its first page.
pub fn load_to_run(path: &FsPath) -> Result<Config, ConfigErrors> {
    let config = load(path)?;
    if config.warnings.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(config.warnings))
    }
}
pub use matcher::Matcher;
pub use notifier_types::*;
pub use rule_file::{
    BusinessImpact, CelExpr, ImpactConfig, ImpactKind, RuleConfig, Severity, SlaBreach,
};
pub use types::*;

/// One problem in a config or rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Remove `.` and `..` components lexically.
fn normalize(path: &FsPath) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// All the errors of one load, printable one per line.
#[derive(Clone, Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A rule with the file and group it came from.
#[derive(Clone, Debug)]
pub struct LoadedRule {
    pub file: PathBuf,
    pub group: String,
    /// Where the rule sits in its file: (group index, rule index).
    pub index: (usize, usize),
    pub rule: RuleConfig,
}

/// A whole, validated configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The config file; relative paths inside it are relative to its folder.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub rule_files: Vec<String>,
    pub catalog: Catalog,
    pub probes: Vec<ProbeConfig>,
    pub probing: ProbingConfig,
    pub sources: SourcesConfig,
    pub heartbeats: Vec<HeartbeatConfig>,
    pub correlation: CorrelationConfig,
    pub incidents: IncidentsConfig,
    pub classification: ClassificationConfig,
    pub sr_response: SrResponseConfig,
    /// How often an SR A / B case needs an update once responded to.
    pub sr_engagement: SrEngagementConfig,
    pub responders: Vec<ResponderConfig>,
    pub schedules: Vec<ScheduleConfig>,
    pub time_windows: Vec<TimeWindowConfig>,
    pub escalation_policies: Vec<EscalationPolicyConfig>,
    pub routes: Vec<RouteConfig>,
    /// Routes of support cases, over `sr_severity`, `customer`, `service` and `region`.
    pub case_routes: Vec<RouteConfig>,
    pub silences: Vec<SilenceConfig>,
    pub notifiers: NotifiersConfig,
    pub watchdog: Option<WatchdogConfig>,
    pub rules: Vec<LoadedRule>,
    /// What depends on where tocsin runs (an unset `password_env`): `check` warns, the
    /// engine refuses to start ([`load_to_run`]).
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// The folder relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(FsPath::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Resolve a path written in the config relative to its folder, as an absolute path
    /// without `.` or `..` (URLs built from it must not be re-normalized differently).
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = FsPath::new(path);
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir().join(p)
        };
        normalize(&std::path::absolute(&joined).unwrap_or(joined))
    }

    /// The folder of the SQLite file, or the config's `data/` folder for other stores.
    pub fn data_dir(&self) -> PathBuf {
        let url = self.store_url();
        match url
            .strip_prefix("sqlite://")
            .map(|rest| rest.split('?').next().unwrap_or(rest))
        {
            Some(path) if path != ":memory:" => FsPath::new(path)
                .parent()
                .map(FsPath::to_path_buf)
                .unwrap_or_else(|| self.resolve_path("data")),
            _ => self.resolve_path("data"),
        }
    }

    /// The store URL with a relative SQLite path resolved against the config folder.
    pub fn store_url(&self) -> String {
        let url = &self.store.url;
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path != ":memory:" && !FsPath::new(path).is_absolute() {
                let full = self.resolve_path(path);
                return match query {
                    Some(q) => format!("sqlite://{}?{q}", full.display()),
                    None => format!("sqlite://{}", full.display()),
                };
            }
        }
        url.clone()
    }

    pub fn external_url(&self) -> String {
        self.server
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// Where the other engines on the store reach this one's API (`server.advertise_url`),
    /// when it listens at `addr`: none for a wildcard address unless the config says, or
    /// when it says `none`.
    pub fn advertise_url(&self, addr: std::net::SocketAddr) -> Option<String> {
        match self.server.advertise_url.as_deref() {
            Some(NO_ADVERTISE_URL) => None,
            Some(url) => Some(url.trim_end_matches('/').to_string()),
            None if addr.ip().is_unspecified() => None,
            None => Some(format!("http://{addr}")),
        }
    }

    pub fn responder(&self, id: &str) -> Option<&ResponderConfig> {
        self.responders.iter().find(|r| r.id == id)
    }

    pub fn webhook(&self, name: &str) -> Option<&WebhookConfig> {
        self.notifiers.webhooks.iter().find(|w| w.name == name)
    }

    pub fn policy(&self, name: &str) -> Option<&EscalationPolicyConfig> {
        self.escalation_policies.iter().find(|p| p.name == name)
    }

    pub fn schedule(&self, name: &str) -> Option<&ScheduleConfig> {
        self.schedules.iter().find(|s| s.name == name)
    }

    pub fn window(&self, name: &str) -> Option<&TimeWindowConfig> {
        self.time_windows.iter().find(|w| w.name == name)
    }

    /// The services each customer subscribes to, by region (empty set = every region).
    pub fn subscriptions(&self) -> BTreeMap<&str, Vec<(&str, &[String])>> {
        let mut out: BTreeMap<&str, Vec<(&str, &[String])>> = BTreeMap::new();
        for c in &self.catalog.customers {
            for s in &c.subscriptions {
                out.entry(c.id.as_str())
                    .or_default()
                    .push((s.service.as_str(), s.regions.as_slice()));
            }
        }
        out
    }
}
