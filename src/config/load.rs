//! Reading the config file and its rule files into a [`Config`], collecting every error.

use std::path::{Path as FsPath, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::files::check_files;
use super::locate::Path;
use super::report::{clean_message, FileReport};
use super::rule_file::{RuleConfig, RuleGroupConfig};
use super::validate::validate;
use super::{Config, ConfigError, ConfigErrors, LoadedRule};

/// The top-level keys; the last (`version`) is not offered in "expected one of".
const TOP_LEVEL: [&str; 23] = [
    "server",
    "store",
    "rule_files",
    "catalog",
    "probes",
    "probing",
    "sources",
    "heartbeats",
    "correlation",
    "incidents",
    "classification",
    "sr_response",
    "sr_engagement",
    "case_routes",
    "responders",
    "schedules",
    "time_windows",
    "escalation_policies",
    "routes",
    "silences",
    "notifiers",
    "watchdog",
    "version",
];

/// Load and validate the config at `path` and every rule file it names.
pub fn load(path: &FsPath) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the config file: {e}"),
        }])
    })?;
    load_str(path, &text)
}

/// Load a config from text as if it were the file `path` (rule files are read from disk).
pub fn load_str(path: &FsPath, text: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut report = FileReport::new(path.to_path_buf(), text.to_string());
    let mut config = Config {
        path: path.to_path_buf(),
        ..Config::default()
    };
    if let Some(root) = parse_yaml(&mut report) {
        read_sections(&mut report, &root, &mut config);
    }
    let mut rule_reports = Vec::new();
    config.rules = read_rule_files(&config, &mut report, &mut rule_reports);
    // Validate what did parse too, so one run reports every error it can.
    validate(&config, &mut report, &mut rule_reports);
    check_files(&config, &mut report);
    let mut warnings = Vec::new();
    report.finish(&mut errors, &mut warnings);
    for r in rule_reports {
        r.finish(&mut errors, &mut warnings);
    }
    config.warnings = warnings;
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Deepest flow nesting (`[` and `{`) a file may have; the YAML parser refuses more than
/// 128 levels of any nesting anyway.
const MAX_FLOW_DEPTH: usize = 128;

/// Where (line, column) brackets first nest deeper than [`MAX_FLOW_DEPTH`], outside quoted
/// scalars and comments. The YAML parser rescans its whole stack of open brackets for every
/// token, so refusing deep nesting takes it quadratic time (seconds for 20,000 nested `[`);
/// this finds them at once.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
            if quote.is_none() {
                previous = c;
                continue;
            }
        }
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
                column += 1;
            }
            Some(q) if c == q => {
                // '' inside a single-quoted scalar is an escaped quote.
                if q == '\'' && chars.peek() == Some(&'\'') {
                    chars.next();
                    column += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if comment => {}
            None => match c {
                '#' if previous.is_whitespace() => comment = true,
                // A quote opens a quoted scalar only where a scalar may start.
                '"' | '\'' if previous.is_whitespace() || "[{,:-".contains(previous) => {
                    quote = Some(c)
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = c;
    }
    None
}

/// Parse and validate one rule file's text as if it were the file `path`, in a config that
/// has nothing else: what `tocsin check` reports about that file alone (no I/O; for the
/// fuzzer and tools).
pub fn load_rules_str(path: &FsPath, text: &str) -> Result<Vec<LoadedRule>, ConfigErrors> {
    let mut report = FileReport::new(path.to_path_buf(), text.to_string());
    let rules = read_rule_file(&mut report);
    let config = Config {
        path: path.with_file_name("config.yaml"),
        rules,
        ..Config::default()
    };
    let mut config_report = FileReport::new(config.path.clone(), String::new());
    let mut rule_reports = vec![report];
    validate(&config, &mut config_report, &mut rule_reports);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    config_report.finish(&mut errors, &mut warnings);
    for r in rule_reports {
        r.finish(&mut errors, &mut warnings);
    }
    if errors.is_empty() {
        Ok(config.rules)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parse the file's YAML into a tree; a syntax error is reported where the parser found it.
fn parse_yaml(report: &mut FileReport) -> Option<Value> {
    if report.text.trim().is_empty() {
        return Some(Value::Mapping(Default::default()));
    }
    if let Some((line, column)) = too_deep(&report.text) {
        report.positioned.push(ConfigError {
            file: report.file.clone(),
            line,
            column,
            message: format!(
                "invalid YAML: brackets nested more than {MAX_FLOW_DEPTH} deep; no config needs \
                 that"
            ),
        });
        return None;
    }
    match serde_yaml::from_str::<Value>(&report.text) {
        Ok(mut v) => {
            if let Err(e) = v.apply_merge() {
                report.at(Path::root(), format!("bad YAML merge key: {e}"));
                return None;
            }
            Some(v)
        }
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            report.positioned.push(ConfigError {
                file: report.file.clone(),
                line,
                column,
                message: format!("invalid YAML: {}", clean_message(&e.to_string())),
            });
            None
        }
    }
}

fn read_sections(report: &mut FileReport, root: &Value, config: &mut Config) {
    let Some(map) = root.as_mapping() else {
        report.at(
            Path::root(),
            "the config file must be a mapping of sections (server:, store:, …)",
        );
        return;
    };
    for key in map.keys() {
        let name = key.as_str().unwrap_or_default();
        if !TOP_LEVEL.contains(&name) {
            report.at_key(
                Path::root().key(name),
                format!(
                    "unknown field \"{name}\", expected one of {}",
                    TOP_LEVEL[..TOP_LEVEL.len() - 1].join(", ")
                ),
            );
        }
    }
    let root_path = Path::root();
    macro_rules! section {
        ($field:ident) => {
            if let Some(v) = map.get(stringify!($field)) {
                if !v.is_null() {
                    match report.parse(&root_path.key(stringify!($field)), v) {
                        Some(parsed) => config.$field = parsed,
                        // The whole section is unknown: references into it are not checked.
                        None => {
                            report
                                .broken
                                .entry(stringify!($field).to_string())
                                .or_default()
                                .insert("*".into());
                        }
                    }
                }
            }
        };
    }
    macro_rules! list {
        ($field:ident) => {
            if let Some(v) = map.get(stringify!($field)) {
                config.$field = parse_list(report, &root_path.key(stringify!($field)), v);
            }
        };
    }
    section!(server);
    section!(store);
    section!(rule_files);
    section!(catalog);
    section!(probing);
    section!(sources);
    section!(correlation);
    section!(incidents);
    section!(classification);
    section!(sr_response);
    section!(sr_engagement);
    section!(notifiers);
    section!(watchdog);
    list!(probes);
    list!(heartbeats);
    list!(responders);
    list!(schedules);
    list!(time_windows);
    list!(escalation_policies);
    list!(routes);
    list!(case_routes);
    list!(silences);
}

/// Parse each item of a list on its own, so every bad item is reported.
fn parse_list<T: DeserializeOwned>(report: &mut FileReport, path: &Path, value: &Value) -> Vec<T> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => {
            let mut parsed = Vec::new();
            let mut indices = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match report.parse(&path.index(i), item) {
                    Some(value) => {
                        parsed.push(value);
                        indices.push(i);
                    }
                    None => {
                        let name = ["name", "id"]
                            .iter()
                            .find_map(|k| item.get(k).and_then(Value::as_str));
                        if let Some(name) = name {
                            report
                                .broken
                                .entry(path.to_string())
                                .or_default()
                                .insert(name.to_string());
                        }
                    }
                }
            }
            report.indices.insert(path.to_string(), indices);
            parsed
        }
        _ => {
            report.at(path.clone(), "expected a list");
            Vec::new()
        }
    }
}

fn read_rule_files(
    config: &Config,
    report: &mut FileReport,
    rule_reports: &mut Vec<FileReport>,
) -> Vec<LoadedRule> {
    let mut rules = Vec::new();
    for (i, pattern) in config.rule_files.iter().enumerate() {
        let full = config.resolve_path(pattern);
        let paths = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths,
            Err(e) => {
                report.at(
                    Path::root().key("rule_files").index(i),
                    format!("invalid glob pattern {pattern:?}: {e}"),
                );
                continue;
            }
        };
        let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        files.sort();
        if files.is_empty() {
            // A pattern that matches nothing loads no rules: nothing it was meant to catch
            // would ever open an incident.
            let message = if pattern.contains(['*', '?', '[']) {
                format!(
                    "no file matches the rule_files pattern {pattern:?} ({}); add a rule \
                     file there or fix the pattern (relative to the config's folder)",
                    full.display()
                )
            } else {
                format!(
                    "rule file {} does not exist; fix the path (relative to the config's \
                     folder) or create the file",
                    full.display()
                )
            };
            report.at(Path::root().key("rule_files").index(i), message);
        }
        for file in files {
            if rule_reports.iter().any(|r| r.file == file) {
                continue;
            }
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    report.at(
                        Path::root().key("rule_files").index(i),
                        format!("cannot read rule file {}: {e}", file.display()),
                    );
                    continue;
                }
            };
            let mut file_report = FileReport::new(file.clone(), text);
            rules.extend(read_rule_file(&mut file_report));
            rule_reports.push(file_report);
        }
    }
    rules
}

/// Parse one rule file's text; errors go to its report.
pub(super) fn read_rule_file(report: &mut FileReport) -> Vec<LoadedRule> {
    let Some(root) = parse_yaml(report) else {
        return Vec::new();
    };
    let Some(map) = root.as_mapping() else {
        report.at(
            Path::root(),
            "a rule file must be a mapping with a `groups:` list",
        );
        return Vec::new();
    };
    for key in map.keys() {
        let name = key.as_str().unwrap_or_default();
        if name != "groups" {
            report.at_key(
                Path::root().key(name),
                format!("unknown field \"{name}\", expected groups"),
            );
        }
    }
    let Some(groups) = map.get("groups") else {
        return Vec::new();
    };
    let groups_path = Path::root().key("groups");
    let mut rules = Vec::new();
    let Some(items) = groups.as_sequence() else {
        if !groups.is_null() {
            report.at(groups_path, "expected a list of rule groups");
        }
        return rules;
    };
    for (g, item) in items.iter().enumerate() {
        let group_path = groups_path.index(g);
        let Some(group) = report.parse::<RuleGroupConfig>(&group_path, item) else {
            continue;
        };
        for (r, raw) in group.rules.iter().enumerate() {
            if let Some(rule) = report.parse::<RuleConfig>(&group_path.key("rules").index(r), raw) {
                rules.push(LoadedRule {
                    file: report.file.clone(),
                    group: group.name.clone(),
                    index: (g, r),
                    rule,
                });
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        match load_str(FsPath::new("t.yaml"), text) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn empty_config_is_valid() {
        assert!(errors_of("").is_empty());
    }

    #[test]
    fn a_dependency_must_be_another_catalog_service() {
        let errs = errors_of(
            "catalog:\n  services:\n    - { name: db }\n    - { name: web, depends_on: [db, dbb, web] }\n",
        );
        assert_eq!(
            errs,
            vec![
                "t.yaml:4:37: unknown service \"dbb\": not in catalog.services",
                "t.yaml:4:42: service \"web\" cannot depend on itself",
            ]
        );
        assert!(errors_of(
            "catalog:\n  services: [ { name: db }, { name: web, depends_on: [db] } ]\n"
        )
        .is_empty());
    }

    #[test]
    fn advertise_url_is_an_http_url_or_none() {
        let errs = errors_of("server:\n  advertise_url: tocsin-a:9470\n");
        assert_eq!(
            errs,
            vec![
                "t.yaml:2:18: invalid advertise_url \"tocsin-a:9470\": expected an http(s) URL, or none"
            ]
        );
        for good in ["http://tocsin-a.internal:9470", "none"] {
            assert!(errors_of(&format!("server: {{ advertise_url: \"{good}\" }}\n")).is_empty());
        }
        let at = |listen: &str, advertise: Option<&str>| {
            let mut config = Config::default();
            config.server.advertise_url = advertise.map(str::to_string);
            config.advertise_url(listen.parse().unwrap())
        };
        assert_eq!(
            at("127.0.0.1:9470", None).as_deref(),
            Some("http://127.0.0.1:9470")
        );
        assert_eq!(at("0.0.0.0:9470", None), None);
        assert_eq!(at("[::]:9470", None), None);
        assert_eq!(
            at("0.0.0.0:9470", Some("http://a:9470/")).as_deref(),
            Some("http://a:9470")
        );
        assert_eq!(at("127.0.0.1:9470", Some("none")), None);
    }

    #[test]
    fn unknown_top_level_and_nested_fields_are_positioned() {
        let errs = errors_of("servr: {}\nserver:\n  listn: x\n");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("t.yaml:1:1: unknown field \"servr\""),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("t.yaml:3:3: unknown field \"listn\""),
            "{errs:?}"
        );
    }

    #[test]
    fn deep_flow_nesting_is_refused_at_once_where_it_happens() {
        let deep = format!(
            "catalog:\n  services: {}{}\n",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let errs = errors_of(&deep);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("t.yaml:2:141: invalid YAML: brackets nested more than 128"),
            "{errs:?}"
        );
        // Brackets in quoted scalars and comments are text.
        let quoted = format!(
            "server: {{ external_url: \"{}\" }}  # {}\nstore: {{ url: 'it''s {}' }}\n",
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500)
        );
        let errs = errors_of(&quoted);
        assert!(errs.iter().all(|e| !e.contains("nested")), "{errs:?}");
        // As deep as allowed is left to the parser.
        let ok = format!("rule_files: {}\"a\"{}\n", "[".repeat(10), "]".repeat(10));
        assert!(errors_of(&ok).iter().all(|e| !e.contains("nested")));
    }

    #[test]
    fn a_rule_file_alone_loads_or_reports_positions() {
        let path = FsPath::new("/x/rules/r.yaml");
        let good =
            "groups:\n  - name: g\n    rules:\n      - { name: A, impact: { kind: outage } }\n";
        assert_eq!(load_rules_str(path, good).unwrap().len(), 1);
        let bad = "groups:\n  - name: g\n    rules:\n      - { name: A, fro: 1m }\n";
        let errs = load_rules_str(path, bad).unwrap_err().to_string();
        assert!(
            errs.starts_with("/x/rules/r.yaml:4:20: unknown field \"fro\""),
            "{errs}"
        );
    }

    #[test]
    fn every_bad_item_is_reported() {
        let text = "\
probes:
  - { name: a, kind: http, url: 'http://127.0.0.1:1', interval: 5x }
  - { name: b, kind: smtp, url: 'x' }
";
        let errs = errors_of(text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("t.yaml:2:65: invalid duration \"5x\""),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("t.yaml:3:22: unknown variant \"smtp\""),
            "{errs:?}"
        );
    }
}
