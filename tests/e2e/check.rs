//! `tocsin check` on broken config and rule files: every error printed as
//! `file:line:column: message`, exit status 1. Each case is what an SRE might really write.

use std::path::Path;
use std::process::Command;

/// Write the files, run `tocsin check`, return (exit code, stdout, stderr lines).
fn check(config: &str, rules: &[(&str, &str)]) -> (i32, String, Vec<String>, tempfile::TempDir) {
    check_with(config, rules, &[])
}

/// As [`check`], with more files (`path` relative to the config's folder; a path ending in
/// `/` is a folder).
fn check_with(
    config: &str,
    rules: &[(&str, &str)],
    files: &[(&str, &str)],
) -> (i32, String, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("tocsin.yaml"), config).unwrap();
    for (name, body) in rules {
        std::fs::write(dir.path().join("rules").join(name), body).unwrap();
    }
    for (path, body) in files {
        let path = dir.path().join(path);
        if path.to_string_lossy().ends_with('/') {
            std::fs::create_dir_all(&path).unwrap();
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let output = tocsin(&["check", "--config"], dir.path());
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into(),
        lines(&output.stderr, dir.path()),
        dir,
    )
}

/// The unset variable of the `password_env` cases: no test sets it.
const UNSET_VARIABLE: &str = "TOCSIN_CHECK_TEST_UNSET_PASSWORD";

/// `tocsin ARGS DIR/tocsin.yaml`, without [`UNSET_VARIABLE`] in its environment.
fn tocsin(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .arg(dir.join("tocsin.yaml"))
        .env_remove(UNSET_VARIABLE)
        .output()
        .expect("run tocsin")
}

/// Output lines, with paths relative to the test's folder.
fn lines(output: &[u8], dir: &Path) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .map(|l| l.replace(&format!("{}/", dir.display()), ""))
        .collect()
}

/// `tocsin run` on the folder `check` just saw: it refuses to start, with the same errors.
fn assert_run_refuses(dir: &Path, expected: &[&str]) {
    let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("tocsin.yaml"))
        .env_remove(UNSET_VARIABLE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tocsin run");
    let (done, wait) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let output = match wait.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("tocsin run started on a config check refuses");
        }
    };
    let stderr = lines(&output.stderr, dir).join("\n");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for line in expected {
        assert!(
            stderr.contains(line),
            "run does not say {line:?}:\n{stderr}"
        );
    }
}

/// Each error with the line it points at and a caret under its column, for failures.
fn annotated(dir: &Path, errors: &[&String]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(e);
        out.push('\n');
        let mut parts = e.splitn(4, ':');
        let (Some(file), Some(line), Some(col)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(col)) = (line.parse::<usize>(), col.parse::<usize>()) else {
            continue;
        };
        if let Some(text) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.lines().nth(line - 1).map(str::to_string))
        {
            out.push_str(&format!(
                "    {text}\n    {}^\n",
                " ".repeat(col.saturating_sub(1))
            ));
        }
    }
    out
}

/// Assert that the errors are exactly `expected` (paths relative to the temp folder), and
/// that `tocsin run` refuses the same config with the same errors.
fn assert_errors(config: &str, rules: &[(&str, &str)], expected: &[&str]) {
    assert_errors_with(config, rules, &[], expected)
}

/// As [`assert_errors`], with more files (see [`check_with`]).
fn assert_errors_with(
    config: &str,
    rules: &[(&str, &str)],
    files: &[(&str, &str)],
    expected: &[&str],
) {
    let (code, _, stderr, dir) = check_with(config, rules, files);
    let errors: Vec<&String> = stderr
        .iter()
        .filter(|l| !crate::support::is_error_count(l))
        .collect();
    let shown = annotated(dir.path(), &errors);
    assert_eq!(code, 1, "exit status; errors:\n{shown}");
    assert_eq!(errors.len(), expected.len(), "errors:\n{shown}");
    for (got, want) in errors.iter().zip(expected) {
        assert_eq!(got.as_str(), *want, "errors:\n{shown}");
    }
    assert_run_refuses(dir.path(), expected);
}

const RULES_GLOB: &str = "rule_files: [ \"rules/*.yaml\" ]\n";

#[test]
fn valid_files_pass() {
    let (code, stdout, stderr, _dir) = check(
        RULES_GLOB,
        &[("ok.yaml", "groups:\n  - name: g\n    rules:\n      - { name: A, match: ['source=\"alert\"'], impact: { kind: outage } }\n")],
    );
    assert_eq!(code, 0, "{stderr:?}");
    assert!(stdout.contains("OK (1 rule in 1 rule file,"), "{stdout}");
    let shipped = tocsin(
        &["check", "--config"],
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
    );
    assert!(
        shipped.status.success(),
        "{}",
        String::from_utf8_lossy(&shipped.stderr)
    );
}

#[test]
fn invalid_yaml_syntax() {
    assert_errors(
        "server:\n  listen: [127.0.0.1\n",
        &[],
        &["tocsin.yaml:3:1: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 2 column 11"],
    );
}

#[test]
fn unknown_fields_in_config_and_rules() {
    assert_errors(
        &format!("{RULES_GLOB}severs: {{}}\nserver:\n  listn: 127.0.0.1:1\n"),
        &[("r.yaml", "groups:\n  - name: g\n    rules:\n      - name: A\n        fro: 5m\n        impact: { kind: outage }\n")],
        &[
            "tocsin.yaml:2:1: unknown field \"severs\", expected one of server, store, rule_files, catalog, probes, probing, sources, heartbeats, correlation, incidents, classification, sr_response, sr_engagement, case_routes, responders, schedules, time_windows, escalation_policies, routes, silences, notifiers, watchdog",
            "tocsin.yaml:4:3: unknown field \"listn\", expected one of \"listen\", \"external_url\", \"advertise_url\", \"auth\", \"ack_secret_file\", \"audit_key_file\", \"ack_link_ttl\", \"rate_limit\"",
            "rules/r.yaml:5:9: unknown field \"fro\", expected one of \"name\", \"match\", \"when\", \"for\", \"failures\", \"clear_for\", \"successes\", \"impact\", \"labels\", \"summary\", \"annotations\", \"correlation\", \"availability\", \"tsg\"",
        ],
    );
}

#[test]
fn bad_durations() {
    assert_errors(
        "incidents: { resolve_after: 5 }\ncorrelation: { window: 1h5x }\n",
        &[],
        &[
            "tocsin.yaml:1:29: invalid duration 5: a duration needs a unit, e.g. 5s or 5m",
            "tocsin.yaml:2:24: invalid duration \"1h5x\": expected numbers with units ms, s, m, h, d, w or y, largest first, e.g. 30s, 5m, 1h30m",
        ],
    );
}

#[test]
fn bad_matchers_and_regexes() {
    assert_errors(
        &format!("{RULES_GLOB}escalation_policies: [ {{ name: p, levels: [ {{ notify: [ 'webhook:x' ] }} ] }} ]\nnotifiers: {{ webhooks: [ {{ name: x, url: 'http://127.0.0.1:1/' }} ] }}\nroutes:\n  - {{ match: [ 'severity=~\"(0|1\"' ], policy: p }}\n"),
        &[("r.yaml", "groups:\n  - name: g\n    rules:\n      - { name: A, match: [ 'service=storage\"' ], impact: {} }\n")],
        &[
            "tocsin.yaml:5:16: invalid matcher \"severity=~\\\"(0|1\\\"\": bad regular expression: error: unclosed group",
            "rules/r.yaml:4:29: invalid matcher \"service=storage\\\"\": the value must be quoted; expected name, one of = != =~ !~, and a quoted value, e.g. service=\"storage\" or region=~\"china-.*\"",
        ],
    );
}

#[test]
fn bad_cel() {
    assert_errors(
        RULES_GLOB,
        &[(
            "r.yaml",
            "groups:\n  - name: g\n    rules:\n      - name: A\n        when: \"probe.success &&\"\n        impact: {}\n      - name: B\n        when: \"prob.latency_ms > 1\"\n        impact: {}\n",
        )],
        &[
            "rules/r.yaml:5:15: invalid CEL in when \"probe.success &&\": ERROR: <input>:1:17: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
            "rules/r.yaml:8:15: invalid CEL in when \"prob.latency_ms > 1\": unknown variable \"prob\" (did you mean probe?), expected one of labels, annotations, value, source, probe",
        ],
    );
}

#[test]
fn bad_cron_and_time_zone() {
    assert_errors(
        "time_windows:\n  - { name: a, timezone: Asia/Shanghia, start: '0 0 9 * * Mon', duration: 9h }\n  - { name: b, timezone: UTC, start: '0 9 * * 1-5', duration: 9h }\n  - { name: c, timezone: UTC, start: '0 0 25 * * *', duration: 1h }\n",
        &[],
        &[
            "tocsin.yaml:2:26: unknown time zone \"Asia/Shanghia\": expected an IANA name such as Asia/Shanghai or UTC",
            "tocsin.yaml:3:38: invalid cron expression \"0 9 * * 1-5\": it has 5 fields, but tocsin's cron has seconds first: \"sec min hour day-of-month month day-of-week\", e.g. \"0 0 9 * * Mon\"",
            "tocsin.yaml:4:38: invalid cron expression \"0 0 25 * * *\": Hours must be less than 23. ('25' specified.)",
        ],
    );
}

#[test]
fn unknown_references() {
    let config = "\
notifiers:
  email: { from: tocsin@example.com, file: { dir: out } }
  webhooks: [ { name: chatops, url: 'http://127.0.0.1:1/hook' } ]
responders:
  - { id: alice, email: alice@example.com, webhook: chatop }
schedules:
  - { name: primary, timezone: UTC, handoff: '0 0 9 * * Mon', start: 2026-01-05T09:00:00Z, participants: [alice, carol] }
time_windows: [ { name: business-hours, timezone: UTC, start: '0 0 9 * * Mon-Fri', duration: 9h } ]
escalation_policies:
  - name: storage
    levels:
      - { after: 0s, notify: [ 'schedule:primry', 'responder:bob', 'webhook:pager', 'team:sre' ] }
routes:
  - { match: [ 'severity=\"1\"' ], policy: storag }
  - { match: [ 'severity=\"3\"' ], policy: storage, active_during: [ busines-hours ] }
silences: [ { match: [ 'service=\"batch\"' ], window: maintenance } ]
";
    assert_errors(
        config,
        &[],
        &[
            "tocsin.yaml:5:53: unknown webhook \"chatop\": not defined in notifiers.webhooks",
            "tocsin.yaml:7:114: unknown responder \"carol\": not defined in responders",
            "tocsin.yaml:12:32: unknown schedule \"primry\": not defined in schedules",
            "tocsin.yaml:12:51: unknown responder \"bob\": not defined in responders",
            "tocsin.yaml:12:68: unknown webhook \"pager\": not defined in notifiers.webhooks",
            "tocsin.yaml:12:85: invalid target \"team:sre\": expected responder:ID, schedule:NAME or webhook:NAME",
            "tocsin.yaml:14:42: unknown escalation policy \"storag\": not defined in escalation_policies",
            "tocsin.yaml:15:68: unknown time window \"busines-hours\": not defined in time_windows",
            "tocsin.yaml:16:53: unknown time window \"maintenance\": not defined in time_windows",
        ],
    );
}

#[test]
fn duplicate_names() {
    let rule = |name: &str| {
        format!("groups:\n  - name: g\n    rules:\n      - {{ name: {name}, impact: {{}} }}\n")
    };
    assert_errors(
        &format!("{RULES_GLOB}probes:\n  - {{ name: web, kind: tcp, url: 'tcp://127.0.0.1:1' }}\n  - {{ name: web, kind: tcp, url: 'tcp://127.0.0.1:2' }}\n"),
        &[("a.yaml", &rule("Down")), ("b.yaml", &rule("Down"))],
        &[
            "tocsin.yaml:4:13: duplicate probe \"web\" (first defined at line 3, column 13)",
            "rules/b.yaml:4:17: duplicate rule name \"Down\" (first defined at rules/a.yaml:4:17)",
        ],
    );
}

#[test]
fn timeouts_not_shorter_than_intervals() {
    assert_errors(
        "probes:\n  - { name: web, kind: http, url: 'http://127.0.0.1:1/', interval: 10s, timeout: 10s }\nsources:\n  prometheus: [ { name: prom, url: 'http://127.0.0.1:9090', interval: 15s, timeout: 1m } ]\n",
        &[],
        &[
            "tocsin.yaml:2:82: timeout 10s must be shorter than the interval 10s of probe \"web\"",
            "tocsin.yaml:4:85: timeout 1m must be shorter than the interval 15s of source \"prom\"",
        ],
    );
}

#[test]
fn wrong_types_and_values() {
    assert_errors(
        "probes:\n  - { name: web, kind: smtp, url: 'x' }\nclassification: { major_customers: many }\nescalation_policies: [ { name: p, repeat: -1, levels: [] } ]\n",
        &[],
        &[
            "tocsin.yaml:2:24: unknown variant \"smtp\", expected \"http\" or \"tcp\"",
            "tocsin.yaml:3:36: invalid type: string \"many\", expected usize",
            "tocsin.yaml:4:43: invalid value: integer \"-1\", expected u32",
        ],
    );
}

#[test]
fn rule_logic_errors() {
    assert_errors(
        RULES_GLOB,
        &[(
            "r.yaml",
            "groups:\n  - name: g\n    rules:\n      - { name: A, for: 1m, failures: 3, impact: { kind: outage } }\n      - { name: B, impact: { kind: meltdown } }\n      - { name: C, impact: { severity: 7 } }\n      - { name: D, impact: {}, summary: '{{ labels.region ' }\n",
        )],
        &[
            "rules/r.yaml:4:39: set either for: (a duration) or failures: (a count), not both",
            "rules/r.yaml:5:36: unknown variant \"meltdown\", expected one of \"outage\", \"degradation\", \"latency\", \"data_loss\", \"data_corruption\", \"security\", \"other\"",
            "rules/r.yaml:6:40: invalid severity 7: expected 0 (disaster) to 4 (not urgent)",
            "rules/r.yaml:7:41: invalid summary template: unexpected end of input, expected end of variable block",
        ],
    );
}

#[test]
fn route_and_paging_shape_errors() {
    assert_errors(
        "routes:\n  - { match: [ 'severity=\"4\"' ] }\n  - { match: [], policy: p, queue: q }\nescalation_policies: [ { name: p, levels: [] } ]\nresponders: [ { id: ghost } ]\n",
        &[],
        &[
            "tocsin.yaml:2:5: a route needs policy: (page) or queue: (triage queue)",
            "tocsin.yaml:3:36: a route takes either policy or queue, not both",
            "tocsin.yaml:4:43: an escalation policy needs at least one level",
            "tocsin.yaml:5:15: responder \"ghost\" has neither email nor webhook: they cannot be paged",
        ],
    );
}

#[test]
fn missing_rule_file_and_bad_store() {
    assert_errors(
        "rule_files: [ rules/storage.yaml ]\nstore: { url: 'mysql://127.0.0.1/tocsin' }\n",
        &[],
        &[
            "tocsin.yaml:1:15: rule file rules/storage.yaml does not exist; fix the path (relative to the config's folder) or create the file",
            "tocsin.yaml:2:15: invalid store url \"mysql://127.0.0.1/tocsin\": expected sqlite://PATH or postgres://…",
        ],
    );
}

#[test]
fn rule_files_patterns_that_match_no_file() {
    assert_errors(
        "rule_files: [ \"rules/*.yaml\", \"rule/*.yml\" ]\n",
        &[("ok.yaml", "groups: []\n")],
        &["tocsin.yaml:1:31: no file matches the rule_files pattern \"rule/*.yml\" (rule/*.yml); add a rule file there or fix the pattern (relative to the config's folder)"],
    );
}

const SECRETS: &str = "\
server:
  auth: { tokens_file: secrets/tokens }
  ack_secret_file: secrets/ack-key
probes:
  - { name: api, kind: http, url: 'https://127.0.0.1:1/', tls: { ca_file: secrets/ca.pem } }
notifiers:
  email: { from: tocsin@example.com, smtp: { host: 127.0.0.1, username: tocsin, password_file: secrets/smtp } }
  webhooks: [ { name: chat, url: 'http://127.0.0.1:1/', secret_file: secrets/ } ]
";

#[test]
fn files_the_config_names_that_are_missing_unreadable_or_empty() {
    assert_errors_with(
        SECRETS,
        &[],
        &[
            ("secrets/tokens", "# nobody yet\n"),
            ("secrets/ca.pem", "not a certificate\n"),
        ],
        &[
            "tocsin.yaml:2:24: tokens file \"secrets/tokens\" holds no token: every API request would be refused; create it with one API token per line (`NAME ROLE TOKEN` or `TOKEN`), or remove server.auth to serve the API without tokens",
            "tocsin.yaml:3:20: ack secret file \"secrets/ack-key\" (secrets/ack-key) does not exist; put a random key in it (e.g. `openssl rand -hex 32 > FILE`), or remove server.ack_secret_file to have tocsin generate the key",
            "tocsin.yaml:5:75: CA file \"secrets/ca.pem\" holds no certificate (expected PEM \"CERTIFICATE\" blocks): every run of probe \"api\" would fail; give the PEM file of the CA that signed the server's certificate, or remove tls.ca_file to trust the Mozilla roots",
            "tocsin.yaml:7:96: SMTP password file \"secrets/smtp\" (secrets/smtp) does not exist; create it with the SMTP password, or use password_env",
            "tocsin.yaml:8:70: webhook secret file \"secrets/\" (secrets) is a folder, not a file; create it with the secret that signs the webhook's requests, or remove secret_file to send them unsigned",
        ],
    );
    // The same files, present and sound: the config passes.
    let (code, stdout, stderr, _dir) = check_with(
        &SECRETS.replace("secret_file: secrets/ }", "secret_file: secrets/hook }"),
        &[],
        &[
            ("secrets/tokens", "# on-call\ntok\n"),
            ("secrets/ack-key", "0123456789abcdef\n"),
            ("secrets/ca.pem", &test_ca_pem()),
            ("secrets/smtp", "pw\n"),
            ("secrets/hook", "s3cret\n"),
        ],
    );
    assert_eq!(code, 0, "{stderr:?}");
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn a_tokens_line_with_an_unknown_role_or_shape_and_an_empty_audit_key() {
    let config =
        "server:\n  auth: { tokens_file: secrets/tokens }\n  audit_key_file: secrets/audit\n";
    for (tokens, why) in [
        (
            "alice responder t1\nbob boss s3cret\n",
            "line 2: unknown role \"boss\": expected viewer, ingest, responder or admin",
        ),
        (
            "alice s3cret\n",
            "line 1: expected `TOKEN` or `NAME ROLE TOKEN` (2 fields found)",
        ),
    ] {
        assert_errors_with(
            config,
            &[],
            &[("secrets/tokens", tokens), ("secrets/audit", "\n")],
            &[
                &format!("tocsin.yaml:2:24: tokens file \"secrets/tokens\", {why}; create it with one API token per line (`NAME ROLE TOKEN` or `TOKEN`), or remove server.auth to serve the API without tokens"),
                "tocsin.yaml:3:19: audit key file \"secrets/audit\" is empty: anyone could forge the audit log; put a random key in it (e.g. `openssl rand -hex 32 > FILE`), or remove server.audit_key_file to have tocsin generate the key beside the data",
            ],
        );
    }
}

/// A PEM certificate.
fn test_ca_pem() -> String {
    rcgen::generate_simple_self_signed(vec!["localhost".into()])
        .unwrap()
        .cert
        .pem()
}

#[test]
fn an_email_folder_that_cannot_be_created() {
    assert_errors_with(
        "notifiers: { email: { from: tocsin@example.com, file: { dir: data/outbox } } }\n",
        &[],
        &[("data", "a file where the folder would go\n")],
        &["tocsin.yaml:1:62: the email folder \"data/outbox\" cannot be created: data is a file, not a folder; pages sent by email would all fail; choose another dir"],
    );
}

#[test]
fn matchers_that_could_never_match() {
    assert_errors(
        &format!("{RULES_GLOB}escalation_policies: [ {{ name: p, levels: [ {{ notify: [ 'webhook:x' ] }} ] }} ]\nnotifiers: {{ webhooks: [ {{ name: x, url: 'http://127.0.0.1:1/' }} ] }}\nroutes:\n  - {{ match: [ '{{service=\"storage\"}}' ], policy: p }}\nsilences:\n  - {{ match: [ 'env!~\".*\"' ] }}\n"),
        &[("r.yaml", "groups:\n  - name: g\n    rules:\n      - { name: A, match: [ 'service==storage' ], impact: {} }\n      - { name: B, match: [ \"region='china-east'\" ], impact: {} }\n")],
        &[
            "tocsin.yaml:5:16: invalid matcher \"{service=\\\"storage\\\"}\": write matchers without braces, one per list item, e.g. [ 'service=\"storage\"', 'region=~\"china-.*\"' ]",
            "tocsin.yaml:7:16: invalid matcher \"env!~\\\".*\\\"\": it can never match: every value, the empty one too, matches \".*\"; remove it or write env!=\"\" for \"the label is set\"",
            "rules/r.yaml:4:29: invalid matcher \"service==storage\": == is not an operator: write service=\"storage\"",
            "rules/r.yaml:5:29: invalid matcher \"region='china-east'\": single quotes would be part of the value: write region=\"china-east\"",
        ],
    );
}

#[test]
fn whens_that_read_fields_that_do_not_exist_or_are_not_boolean() {
    let rule = |name: &str, when: &str| {
        format!("      - name: {name}\n        when: \"{when}\"\n        impact: {{}}\n")
    };
    let rules = format!(
        "groups:\n  - name: g\n    rules:\n{}{}{}{}",
        rule("A", "probe.latncy_ms > 2000.0"),
        rule("B", "lables.env == 'prod'"),
        rule("C", "probe.latency_ms"),
        rule("D", "labels.env == 'prod' && probe.latency_ms > 2000.0"),
    );
    assert_errors(
        RULES_GLOB,
        &[("r.yaml", &rules)],
        &[
            "rules/r.yaml:5:15: invalid when \"probe.latncy_ms > 2000.0\": probe has no field \"latncy_ms\" (did you mean latency_ms?); its fields are success, status_code, latency_ms, body, cert_expiry_days, error",
            "rules/r.yaml:8:15: invalid CEL in when \"lables.env == 'prod'\": unknown variable \"lables\" (did you mean labels?), expected one of labels, annotations, value, source, probe",
            "rules/r.yaml:11:15: invalid when \"probe.latency_ms\": it gives a number, not true or false; compare it (==, !=, <, >, in) or test it (has(), startsWith(), exists()), e.g. \"probe.latency_ms > 2000.0\" or \"labels.env == 'prod'\"",
        ],
    );
}

#[test]
fn an_unset_password_env_is_a_warning_for_check_and_an_error_for_run() {
    let config = format!(
        "notifiers:\n  email:\n    from: tocsin@example.com\n    smtp: {{ host: 127.0.0.1, username: tocsin, password_env: {UNSET_VARIABLE} }}\n"
    );
    let (code, stdout, stderr, dir) = check(&config, &[]);
    let message = format!("environment variable \"{UNSET_VARIABLE}\" (password_env) is not set: the engine needs it to sign in to the SMTP server and refuses to start without it; set it in the engine's environment, or use password_file");
    assert_eq!(code, 0, "a warning only: {stderr:?}");
    assert_eq!(stderr, [format!("tocsin.yaml:4:62: warning: {message}")]);
    assert!(
        stdout.contains("OK") && stdout.contains("; 1 warning)"),
        "{stdout}"
    );
    assert_run_refuses(dir.path(), &[&format!("tocsin.yaml:4:62: {message}")]);
}

#[test]
fn smtp_credentials_that_cannot_sign_in() {
    assert_errors(
        "notifiers:\n  email:\n    from: tocsin@example.com\n    smtp: { host: 127.0.0.1, username: tocsin }\n  webhooks: [ { name: x, url: 'http://127.0.0.1:1/', headers: { 'X Team': a } } ]\n",
        &[],
        &[
            "tocsin.yaml:4:40: a username needs a password: set password_file or password_env",
            "tocsin.yaml:5:66: invalid header name \"X Team\": expected letters, digits and - (e.g. X-Api-Key)",
        ],
    );
}

// ----- check --store ----------------------------------------------------------------------

/// `tocsin check --store` on a config whose store is `data/tocsin.db` beside it, after
/// `prepare` has had the folder: exit code, stdout, stderr, the folder.
fn check_store(prepare: impl FnOnce(&Path)) -> (i32, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tocsin.yaml"),
        "store: { url: \"sqlite://data/tocsin.db\" }\n",
    )
    .unwrap();
    prepare(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--store", "--config"])
        .arg(dir.path().join("tocsin.yaml"))
        .output()
        .expect("run tocsin check --store");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
        dir,
    )
}

/// The number of SQLite migrations this tocsin has.
/// The last SQLite migration's number.
fn sqlite_schema() -> usize {
    crate::support::upgrade::latest_schema("sqlite") as usize
}

/// A store as today's engine leaves it, then `sql` run on it.
fn store_then(folder: &Path, sql: &str) {
    let url = format!("sqlite://{}/data/tocsin.db", folder.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = tocsin::store::Store::open(&url).await.unwrap();
        store.close().await;
    });
    if !sql.is_empty() {
        let conn = rusqlite::Connection::open(folder.join("data/tocsin.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

#[test]
fn check_store_before_the_first_start_creates_nothing() {
    let (code, stdout, stderr, dir) = check_store(|_| {});
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "no store at sqlite://{}/data/tocsin.db yet: this tocsin creates it at schema version {} when it starts",
            dir.path().display(),
            sqlite_schema()
        )),
        "{stdout}"
    );
    assert!(!dir.path().join("data").exists(), "no folder made");
}

#[test]
fn check_store_on_a_store_of_today() {
    let (code, stdout, stderr, dir) = check_store(|folder| store_then(folder, ""));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "store at sqlite://{}/data/tocsin.db is at schema version {}: up to date",
            dir.path().display(),
            sqlite_schema()
        )),
        "{stdout}"
    );
}

#[test]
fn check_store_refuses_a_store_newer_than_this_tocsin() {
    let (code, stdout, stderr, _dir) = check_store(|folder| {
        store_then(
            folder,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from a later tocsin', 1, x'00', 0)",
        )
    });
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&format!(
            "is at schema version 99; this tocsin knows versions up to {}: the store was written by a newer tocsin (migrations 99 unknown here)",
            sqlite_schema()
        )),
        "{stderr}"
    );
}

#[test]
fn check_store_refuses_a_migration_applied_with_other_contents() {
    let (code, _, stderr, _dir) = check_store(|folder| {
        store_then(
            folder,
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
        )
    });
    assert_eq!(code, 1);
    assert!(
        stderr.contains("but migrations 2 were applied with other contents than this tocsin's"),
        "{stderr}"
    );
}

#[test]
fn check_store_on_what_is_no_tocsin_store() {
    let (code, _, stderr, _dir) = check_store(|folder| {
        std::fs::create_dir_all(folder.join("data")).unwrap();
        std::fs::write(
            folder.join("data/tocsin.db"),
            "not a database, a text file\n".repeat(200),
        )
        .unwrap();
    });
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read the store at sqlite://"),
        "{stderr}"
    );
    assert!(stderr.contains("file is not a database"), "{stderr}");

    let (code, _, stderr, _dir) = check_store(|folder| {
        std::fs::create_dir_all(folder.join("data")).unwrap();
        let conn = rusqlite::Connection::open(folder.join("data/tocsin.db")).unwrap();
        conn.execute_batch("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
            .unwrap();
    });
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no record of tocsin's migrations: not a tocsin store"),
        "{stderr}"
    );
}

#[test]
fn bad_slas_burn_rates_and_sla_breaches() {
    assert_errors(
        &format!(
            "{RULES_GLOB}catalog:\n  services:\n    - {{ name: storage, sla: 100 }}\nclassification: {{ sla: {{ burn: {{ fast: 0, slow: 6 }} }} }}\n"
        ),
        &[(
            "r.yaml",
            "groups:\n  - name: g\n    rules:\n      - name: R\n        impact: { sla_breach: maybe }\n      - name: S\n        impact: { sla_breach: 3 }\n",
        )],
        &[
            "tocsin.yaml:4:29: invalid sla 100: expected a percentage above 0 and below 100 (such as 99.9)",
            "tocsin.yaml:5:40: invalid burn rate 0: expected a number above 0 (such as 14.4)",
            "rules/r.yaml:5:31: invalid sla_breach \"maybe\": expected true, false or auto",
            "rules/r.yaml:7:31: invalid type: integer \"3\", expected true, false or auto",
        ],
    );
}

#[test]
fn tsg_actions_name_a_webhook_that_sends_tocsins_body() {
    let config = "\
notifiers:
  email: { from: tocsin@example.com, file: { dir: out } }
  webhooks:
    - { name: chat, url: 'http://127.0.0.1:1/hook', format: slack }
catalog:
  services:
    - { name: storage, tsg: { url: 'https://wiki/tsg', action: { webhook: restart } } }
    - { name: sqldb, tsg: { url: 'https://wiki/tsg', action: { webhook: chat, timeout: 0s } } }
    - { name: blob, tsg: { url: 'wiki/tsg' } }
";
    let rules = "groups:\n  - name: g\n    rules:\n      - { name: Down, impact: {}, tsg: { url: 'https://wiki/down', action: { webhook: fix } } }\n";
    assert_errors(
        &format!("{RULES_GLOB}{config}"),
        &[("a.yaml", rules)],
        &[
            "tocsin.yaml:8:75: unknown webhook \"restart\": not defined in notifiers.webhooks",
            "tocsin.yaml:9:73: webhook \"chat\" sends format: slack: a TSG action needs tocsin's own body (format: tocsin, no template), which names the report-back URL",
            "tocsin.yaml:9:88: timeout must be more than 0s: the action's time to report back",
            "tocsin.yaml:10:33: invalid url \"wiki/tsg\": expected http:// or https://",
            "rules/a.yaml:4:87: unknown webhook \"fix\": not defined in notifiers.webhooks",
        ],
    );
}
