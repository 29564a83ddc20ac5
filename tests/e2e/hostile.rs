//! Hostile input, table-driven: malformed config and rule files (through `tocsin check` and
//! through a live reload) and malformed API bodies (against the real binary). Each gets a
//! clear error — `file:line:column: message` for files, the right status and a JSON error
//! naming the problem for the API — and nothing crashes: the engine answers `/-/healthy`
//! after every case, and is still the same process at the end.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::reliability::{free_port, http, Proc};
use serde_json::{json, Value};

// ===== config and rule files ===============================================================

/// A config that loads: the live engine runs on it between cases.
const BASE: &str = r#"
rule_files: [ "rules/*.yaml" ]
store: { url: "sqlite://data/tocsin.db" }
"#;

/// For the API tests: many requests from one address.
const NO_LIMIT: &str = "server: { rate_limit: { per_client: 100000, burst: 100000 } }\n";

const BASE_RULES: &str = r#"
groups:
  - name: base
    rules:
      - name: Down
        match: [ 'source="alert"', 'alertname="Down"' ]
        impact: { kind: outage, sla_breach: true }
      # Exponential for a backtracking engine; the regex crate runs it in linear time.
      - name: Catastrophic
        match: [ 'source="alert"', 'alertname=~"(a+)+$"' ]
        impact: { kind: other }
      - name: Explode
        match: [ 'source="alert"', 'alertname="Explode"' ]
        impact: { kind: other }
"#;

/// What a case writes: the config (BASE when None) and/or an extra rule file.
struct FileCase {
    name: &'static str,
    config: Option<Vec<u8>>,
    rules: Option<Vec<u8>>,
    /// Part of the message every reported error must carry (one of them at least).
    expect: &'static str,
}

fn config(name: &'static str, text: impl Into<String>, expect: &'static str) -> FileCase {
    FileCase {
        name,
        config: Some(format!("{BASE}{}", text.into()).into_bytes()),
        rules: None,
        expect,
    }
}

fn rules(name: &'static str, text: impl Into<String>, expect: &'static str) -> FileCase {
    FileCase {
        name,
        config: None,
        rules: Some(text.into().into_bytes()),
        expect,
    }
}

/// A rule file with one rule whose body (after `name:`) is `rest`.
fn rule(rest: &str) -> String {
    format!("groups:\n  - name: hostile\n    rules:\n      - name: Hostile\n{rest}")
}

fn when(expr: &str) -> String {
    rule(&format!(
        "        match: [ 'source=\"alert\"' ]\n        when: {}\n        impact: {{ kind: other }}\n",
        serde_json::to_string(expr).unwrap()
    ))
}

fn route_matcher(matcher: &str) -> String {
    format!(
        "escalation_policies: [ {{ name: p, levels: [ {{ after: 0s, notify: [] }} ] }} ]\n\
         routes: [ {{ match: [ {} ], policy: p }} ]\n",
        serde_json::to_string(matcher).unwrap()
    )
}

fn file_cases() -> Vec<FileCase> {
    let laughs = {
        // Each line refers nine times to the one before: 9^12 strings once expanded.
        let mut text = String::from("catalog:\n  services:\n    - { name: a, regions: &l0 [x] }\n");
        for i in 1..=12 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            text.push_str(&format!(
                "    - {{ name: s{i}, regions: &l{i} [{refs}] }}\n"
            ));
        }
        text
    };
    let deep_block: String = (0..400)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    vec![
        // ----- wrong types
        config("listen is a list", "server: { listen: [1, 2] }\n", "invalid type: sequence"),
        config("a list section is a number", "probes: 5\n", "expected a list"),
        config("a duration is a boolean", "correlation: { window: true }\n", "invalid type: boolean"),
        config("a negative duration", "incidents: { resolve_after: -5 }\n", "must not be negative"),
        config("a duration of a hundred million years", "incidents: { resolve_after: 100000000y }\n", "too large"),
        config("an unknown section", "servr: {}\n", "unknown field \"servr\""),
        config("rate limit of zero", "server: { rate_limit: { per_client: 0 } }\n", "invalid per_client 0"),
        config("rate limit is a word", "server: { rate_limit: { per_client: fast } }\n", "invalid type: string"),
        config("a map where a list goes", "responders: { id: alice }\n", "expected a list"),
        // ----- what YAML itself can do
        config("deep flow nesting", format!("catalog: {}{}\n", "[".repeat(20_000), "]".repeat(20_000)), "invalid YAML"),
        config("deep block nesting", format!("catalog:\n{}", deep_block.replace('\n', "\n  ")), "invalid YAML"),
        config("a billion laughs", laughs, "invalid YAML"),
        config("duplicate keys", "server: { listen: \"127.0.0.1:1\", listen: \"127.0.0.1:2\" }\n", "duplicate"),
        config("a tab for indentation", "server:\n\tlisten: x\n", "invalid YAML"),
        config("a NUL byte", "server: { external_url: \"http://a\0b\" }\n", "invalid YAML"),
        FileCase {
            name: "invalid UTF-8 in the config",
            config: Some(b"server: { external_url: \"http://\xff\xfe\" }\n".to_vec()),
            rules: None,
            expect: "valid UTF-8",
        },
        // ----- matchers
        config("an unclosed quote", route_matcher("service=\"storage"), "invalid matcher"),
        config("no operator", route_matcher("service"), "invalid matcher"),
        config("a regex over the size limit", route_matcher("alertname=~\"(((a{100}){100}){100})\""), "bad regular expression"),
        config("an invalid regex", route_matcher("alertname=~\"(unclosed\""), "bad regular expression"),
        config("a matcher of 5000 bytes", route_matcher(&format!("a=\"{}\"", "x".repeat(5000))), "at most 4096"),
        // ----- schedules and windows
        config("cron nonsense", "time_windows: [ { name: w, timezone: UTC, start: \"every day\", duration: 1h } ]\n", "cron"),
        config("a time zone on Mars", "time_windows: [ { name: w, timezone: Mars/Olympus, start: \"0 0 9 * * Mon\", duration: 1h } ]\n", "Mars/Olympus"),
        // ----- rules and CEL
        rules("CEL over 4096 bytes", when(&format!("labels.a == '{}'", "x".repeat(5000))), "at most 4096"),
        rules("CEL nested 100 deep", when(&format!("{}true{}", "(".repeat(100), ")".repeat(100))), "nests"),
        rules("CEL that doubles a string 40 times", when(&format!("['a']{}.size() > 0", ".map(value, value + value)".repeat(40))), "cost too much"),
        rules("CEL with nested comprehensions", when("labels.all(value, labels.exists(source, source == value))"), "inside"),
        rules("CEL with 200 operators", when(&vec!["value > 1.0"; 200].join(" || ")), "more than 64"),
        rules("CEL syntax error", when("probe.success &&"), "invalid CEL"),
        rules("CEL unknown variable", when("secrets.password == ''"), "unknown variable"),
        rules("when is a list", rule("        match: [ 'source=\"alert\"' ]\n        when: [1, 2]\n        impact: { kind: other }\n"), "invalid type: sequence"),
        rules("an unknown rule field", rule("        match: [ 'source=\"alert\"' ]\n        fro: 1m\n        impact: { kind: other }\n"), "unknown field \"fro\""),
        rules("a rule file that is a list", "- a\n- b\n", "must be a mapping"),
        rules("severity 9", rule("        match: [ 'source=\"alert\"' ]\n        impact: { kind: outage, severity: 9 }\n"), "invalid severity 9"),
        rules("an unknown impact kind", rule("        match: [ 'source=\"alert\"' ]\n        impact: { kind: nuclear }\n"), "unknown variant \"nuclear\""),
        rules("a label that is a list", rule("        match: [ 'source=\"alert\"' ]\n        labels: { team: [a] }\n        impact: { kind: other }\n"), "invalid type: sequence"),
        rules("deep nesting in a rule file", format!("groups: {}{}\n", "[".repeat(20_000), "]".repeat(20_000)), "invalid YAML"),
        FileCase {
            name: "invalid UTF-8 in a rule file",
            config: None,
            rules: Some(b"groups:\n  - name: \xc3\x28\n".to_vec()),
            expect: "valid UTF-8",
        },
    ]
}

/// `tocsin check` on a folder; (exit code, stderr lines), or a panic if it hangs.
async fn check(dir: &Path) -> (Option<i32>, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--config"])
        .arg(dir.join("config.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = tokio::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tocsin check hangs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let output = child.wait_with_output().unwrap();
    let lines = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !crate::support::is_error_count(l))
        .map(str::to_string)
        .collect();
    (output.status.code(), lines)
}

/// Every error line is `file:line:column: message`, and one names what `expect` says.
fn assert_positioned(case: &str, lines: &[String], expect: &str) {
    let shape = regex::Regex::new(r"^/.+\.yaml:\d+:\d+: \S").unwrap();
    assert!(!lines.is_empty(), "{case}: no error");
    for line in lines {
        assert!(shape.is_match(line), "{case}: not file:line:column: {line}");
        assert!(
            line.len() < 20_000,
            "{case}: a {} byte error line",
            line.len()
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(expect)),
        "{case}: no error says {expect:?}: {lines:#?}"
    );
}

fn write_case(dir: &Path, case: &FileCase) {
    std::fs::write(
        dir.join("config.yaml"),
        case.config
            .clone()
            .unwrap_or_else(|| BASE.as_bytes().to_vec()),
    )
    .unwrap();
    let extra = dir.join("rules/zz-hostile.yaml");
    match &case.rules {
        Some(body) => std::fs::write(&extra, body).unwrap(),
        None => {
            let _ = std::fs::remove_file(&extra);
        }
    }
}

#[tokio::test]
async fn hostile_config_and_rule_files_get_positioned_errors_and_a_live_engine_survives_them() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/base.yaml"), BASE_RULES).unwrap();
    std::fs::write(dir.join("config.yaml"), BASE).unwrap();
    let mut engine = Proc::start(
        &dir.join("config.yaml"),
        free_port(),
        &dir.join("engine.log"),
        &[],
    );
    engine.wait_ready().await;

    let cases = file_cases();
    assert!(cases.len() >= 30, "{} file cases", cases.len());
    for case in &cases {
        write_case(dir, case);
        // The checker: exit 1, every error positioned, none unclear.
        let (code, lines) = check(dir).await;
        assert_eq!(code, Some(1), "{}: exit {code:?}: {lines:#?}", case.name);
        assert_positioned(case.name, &lines, case.expect);
        // The live engine: the reload is refused whole with the same errors, and it runs on.
        let answer = http()
            .post(format!("{}/-/reload", engine.url))
            .send()
            .await
            .expect("reload answered");
        assert_eq!(answer.status().as_u16(), 500, "{}", case.name);
        let body: Value = answer.json().await.expect("a JSON error");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(case.expect), "{}: {error}", case.name);
        assert_eq!(engine.get("/-/healthy").await.0, 200, "{}", case.name);
        assert!(engine.alive(), "{}: the engine died", case.name);
    }
    // The old config still runs: a good reload works and the engine takes pushes.
    write_case(
        dir,
        &FileCase {
            name: "good",
            config: None,
            rules: None,
            expect: "",
        },
    );
    let (code, lines) = check(dir).await;
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(
        http()
            .post(format!("{}/-/reload", engine.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, _) = engine
        .post_json(
            "/api/v2/alerts",
            &json!([{ "labels": { "alertname": "Down", "service": "s" } }]),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        engine.log_lines("ERROR").len() >= cases.len(),
        "each refused reload is logged"
    );
    assert!(!engine.log_text().contains("panicked"));
}

// ===== API bodies ==========================================================================

struct ApiCase {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    status: u16,
    /// Part of the JSON error (empty: only the status is checked, for 2xx).
    expect: &'static str,
}

fn post(
    name: &'static str,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    expect: &'static str,
) -> ApiCase {
    ApiCase {
        name,
        method: "POST",
        path: path.to_string(),
        body: body.into(),
        status,
        expect,
    }
}

fn get(name: &'static str, path: impl Into<String>, status: u16, expect: &'static str) -> ApiCase {
    ApiCase {
        name,
        method: "GET",
        path: path.into(),
        body: Vec::new(),
        status,
        expect,
    }
}

fn json_bytes(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn api_cases() -> Vec<ApiCase> {
    let alerts = "/api/v2/alerts";
    let many_labels: serde_json::Map<String, Value> =
        (0..257).map(|i| (format!("l{i}"), json!("v"))).collect();
    let deep_value = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let cri = |extra: Value| {
        let mut body = json!({ "customer": "contoso", "service": "storage", "region": "china-east",
                               "sr_severity": "A", "summary": "cannot write",
                               "contact": { "name": "Pat", "email": "pat@example.com" } });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        json_bytes(body)
    };
    vec![
        // ----- /api/v2/alerts
        post("alerts: not JSON", alerts, "{not json", 400, "not JSON"),
        post(
            "alerts: invalid UTF-8",
            alerts,
            b"[{\"labels\": {\"a\": \"\xff\"}}]".to_vec(),
            400,
            "UTF-8",
        ),
        post(
            "alerts: an object, not a list",
            alerts,
            "{}",
            400,
            "a JSON array",
        ),
        post("alerts: empty body", alerts, "", 400, "not JSON"),
        post(
            "alerts: a label that is a number",
            alerts,
            json_bytes(json!([{ "labels": { "a": 5 } }])),
            400,
            "labels.a",
        ),
        post(
            "alerts: labels that are a list",
            alerts,
            json_bytes(json!([{ "labels": ["a"] }])),
            400,
            "labels",
        ),
        post(
            "alerts: nested 100,000 deep",
            alerts,
            deep_value.clone(),
            400,
            "recursion limit",
        ),
        post(
            "alerts: nested deep inside an annotation",
            alerts,
            format!("[{{\"labels\":{{\"a\":\"b\"}},\"annotations\":{{\"x\":{deep_value}}}}}]"),
            400,
            "recursion limit",
        ),
        post("alerts: 2 MiB", alerts, vec![b' '; 2 << 20], 413, "1 MiB"),
        post(
            "alerts: 257 labels",
            alerts,
            json_bytes(json!([{ "labels": many_labels }])),
            422,
            "257 labels",
        ),
        post(
            "alerts: a bad label name",
            alerts,
            json_bytes(json!([{ "labels": { "bad-name": "x" } }])),
            422,
            "bad-name",
        ),
        post(
            "alerts: no labels",
            alerts,
            json_bytes(json!([{ "labels": {} }])),
            422,
            "at least one label",
        ),
        post(
            "alerts: a 65 KiB annotation",
            alerts,
            json_bytes(
                json!([{ "labels": { "a": "b" }, "annotations": { "summary": "x".repeat(65 * 1024) } }]),
            ),
            422,
            "summary",
        ),
        post(
            "alerts: endsAt is not a time",
            alerts,
            json_bytes(json!([{ "labels": { "a": "b" }, "endsAt": "yesterday" }])),
            400,
            "endsAt",
        ),
        post(
            "alerts: startsAt is a huge number",
            alerts,
            "[{\"labels\":{\"a\":\"b\"},\"startsAt\":1e999}]",
            400,
            "not JSON",
        ),
        post(
            "alerts: endsAt in the year 9999 (taken)",
            alerts,
            json_bytes(
                json!([{ "labels": { "alertname": "Down", "service": "far" }, "endsAt": "9999-12-31T23:59:59Z" }]),
            ),
            200,
            "",
        ),
        post(
            "alerts: a NUL in a label value (taken)",
            alerts,
            json_bytes(json!([{ "labels": { "a": "x\u{0}y" } }])),
            200,
            "",
        ),
        post(
            "alerts: a catastrophic-regex input, 50,000 a's (taken, fast)",
            alerts,
            json_bytes(json!([{ "labels": { "alertname": format!("{}!", "a".repeat(50_000)) } }])),
            200,
            "",
        ),
        // ----- /api/v1/alertmanager
        post(
            "webhook: version 3",
            "/api/v1/alertmanager",
            json_bytes(json!({ "version": "3", "alerts": [] })),
            400,
            "version",
        ),
        post(
            "webhook: alerts not a list",
            "/api/v1/alertmanager",
            json_bytes(json!({ "version": "4", "alerts": {} })),
            400,
            "field \"alerts\": expected an array of alerts",
        ),
        post(
            "webhook: a weird status",
            "/api/v1/alertmanager",
            json_bytes(
                json!({ "version": "4", "alerts": [{ "status": "weird", "labels": { "a": "b" } }] }),
            ),
            400,
            "status",
        ),
        // ----- /api/v1/cri
        post(
            "cri: customer is a number",
            "/api/v1/cri",
            cri(json!({ "customer": 5 })),
            400,
            "customer",
        ),
        post(
            "cri: no contact",
            "/api/v1/cri",
            cri(json!({ "contact": null })),
            422,
            "contact",
        ),
        post(
            "cri: summary over 64 KiB",
            "/api/v1/cri",
            cri(json!({ "summary": "x".repeat(65 * 1024) })),
            422,
            "summary",
        ),
        post(
            "cri: an unknown field",
            "/api/v1/cri",
            cri(json!({ "callback_url": "http://127.0.0.1:1/" })),
            400,
            "unknown field",
        ),
        post(
            "cri: invalid UTF-8",
            "/api/v1/cri",
            b"{\"customer\": \"\xc3\x28\"}".to_vec(),
            400,
            "UTF-8",
        ),
        post(
            "cri: nested deep",
            "/api/v1/cri",
            format!("{{\"summary\":{deep_value}}}"),
            400,
            "summary",
        ),
        // ----- incidents
        post(
            "ack: by is a number",
            "/api/v1/incidents/1/ack",
            json_bytes(json!({ "by": 5 })),
            400,
            "field \"by\": expected a string, got the number 5",
        ),
        post(
            "ack: a list body",
            "/api/v1/incidents/1/ack",
            json_bytes(json!(["alice"])),
            400,
            "expected a JSON object",
        ),
        post(
            "severity: 9",
            "/api/v1/incidents/1/severity",
            json_bytes(json!({ "severity": 9, "by": "a" })),
            422,
            "out of range",
        ),
        post(
            "severity: a word",
            "/api/v1/incidents/1/severity",
            json_bytes(json!({ "severity": "high", "by": "a" })),
            400,
            "field \"severity\": expected an integer from 0 (worst) to 4, or null to unpin",
        ),
        post(
            "note: over 64 KiB",
            "/api/v1/incidents/1/notes",
            json_bytes(json!({ "by": "a", "text": "x".repeat(65 * 1024) })),
            422,
            "64 KiB",
        ),
        get(
            "an id that is not a number",
            "/api/v1/incidents/abc",
            404,
            "ids are numbers",
        ),
        get(
            "an id past i64",
            "/api/v1/incidents/99999999999999999999999",
            404,
            "ids are numbers",
        ),
        get(
            "severity filter 7",
            "/api/v1/incidents?severity=7",
            400,
            "invalid severity",
        ),
        get(
            "limit -1",
            "/api/v1/incidents?limit=-1",
            400,
            "invalid limit",
        ),
        get(
            "status filter injection",
            "/api/v1/incidents?status=%27%20OR%201%3D1%20--",
            400,
            "invalid status",
        ),
        get(
            "a GET of a heartbeat",
            format!("/api/v1/heartbeats/{}", "h".repeat(300)),
            405,
            "allowed: POST",
        ),
        post(
            "an unknown heartbeat, 300 bytes long",
            &format!("/api/v1/heartbeats/{}", "h".repeat(300)),
            "",
            404,
            "is not configured",
        ),
        get("a wrong method", "/api/v2/alerts", 405, "allowed: POST"),
        get(
            "path traversal",
            "/ack/..%2F..%2Fetc%2Fpasswd",
            403,
            "This link is not valid",
        ),
    ]
}

#[tokio::test]
async fn hostile_api_bodies_get_the_right_status_and_a_json_error() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/base.yaml"), BASE_RULES).unwrap();
    std::fs::write(dir.join("config.yaml"), format!("{BASE}{NO_LIMIT}")).unwrap();
    let mut engine = Proc::start(
        &dir.join("config.yaml"),
        free_port(),
        &dir.join("engine.log"),
        &[],
    );
    engine.wait_ready().await;
    // An incident to act on.
    let (status, _) = engine
        .post_json(
            "/api/v2/alerts",
            &json!([{ "labels": { "alertname": "Down", "service": "s" } }]),
        )
        .await;
    assert_eq!(status, 200);

    let cases = api_cases();
    let client = http();
    for case in &cases {
        let started = tokio::time::Instant::now();
        let request = match case.method {
            "GET" => client.get(format!("{}{}", engine.url, case.path)),
            _ => client
                .post(format!("{}{}", engine.url, case.path))
                .header("content-type", "application/json")
                .body(case.body.clone()),
        };
        let answer = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = answer.text().await.unwrap_or_default();
        assert_eq!(status, case.status, "{}: {text}", case.name);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}: took {:?}",
            case.name,
            started.elapsed()
        );
        if content_type.starts_with("text/html") {
            // A page for people (the ack link's): it says what went wrong in words.
            assert!(text.contains(case.expect), "{}: {text}", case.name);
        } else if status >= 400 {
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{}: not a JSON error: {text}", case.name));
            let error = body["error"].as_str().unwrap_or_default();
            assert!(!error.is_empty(), "{}: {text}", case.name);
            assert!(error.contains(case.expect), "{}: {error}", case.name);
            assert!(
                error.len() < 8192,
                "{}: a {} byte error",
                case.name,
                error.len()
            );
        }
        assert_eq!(engine.get("/-/healthy").await.0, 200, "after {}", case.name);
    }
    // Headers over hyper's buffer are refused by the HTTP layer itself (431, or the
    // connection closed; no JSON there, nothing reaches the engine).
    let answer = client
        .get(format!("{}/api/v1/incidents", engine.url))
        .header("x-junk", "j".repeat(1 << 20))
        .send()
        .await;
    match answer {
        Ok(answer) => assert_eq!(answer.status().as_u16(), 431),
        Err(e) => assert!(!e.is_timeout(), "the oversized headers hung: {e}"),
    }
    assert_eq!(engine.get("/-/healthy").await.0, 200);
    assert!(engine.alive(), "the engine is the same process");
    assert!(
        !engine.log_text().contains("panicked"),
        "{}",
        engine.log_text()
    );
    assert!(cases.len() + file_cases().len() > 30);
}

/// 10,000 distinct alerts with random labels, 500 to a request: every one is taken, the
/// engine stays responsive, and listing all the incidents they opened stays quick.
#[tokio::test]
async fn a_label_explosion_is_taken_without_harm() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/base.yaml"), BASE_RULES).unwrap();
    std::fs::write(dir.join("config.yaml"), format!("{BASE}{NO_LIMIT}")).unwrap();
    let mut engine = Proc::start(
        &dir.join("config.yaml"),
        free_port(),
        &dir.join("engine.log"),
        &[],
    );
    engine.wait_ready().await;
    let mut rng = rand::rng();
    let started = tokio::time::Instant::now();
    for batch in 0..20 {
        let alerts: Vec<Value> = (0..500)
            .map(|i| {
                use rand::Rng;
                let mut labels = serde_json::Map::new();
                labels.insert(
                    "alertname".into(),
                    json!(if i % 2 == 0 { "Explode" } else { "Noise" }),
                );
                labels.insert("service".into(), json!(format!("svc-{batch}-{i}")));
                for _ in 0..rng.random_range(1..8) {
                    let name = format!("l{:08x}", rng.random::<u32>());
                    labels.insert(name, json!(format!("{:x}", rng.random::<u64>())));
                }
                json!({ "labels": labels })
            })
            .collect();
        let (status, answer) = engine
            .post_json("/api/v2/alerts", &Value::Array(alerts))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 500);
        assert_eq!(engine.get("/-/healthy").await.0, 200);
    }
    let pushed = started.elapsed();
    let listing = tokio::time::Instant::now();
    let (status, list) = engine.get_json("/api/v1/incidents?limit=10000").await;
    let list = list["incidents"].clone();
    assert_eq!(status, 200);
    assert_eq!(
        list.as_array().unwrap().len(),
        5000,
        "one incident per Explode alert"
    );
    println!(
        "10,000 alerts in {pushed:?}; listing 5,000 incidents took {:?}",
        listing.elapsed()
    );
    assert!(pushed < Duration::from_secs(60), "{pushed:?}");
    assert!(listing.elapsed() < Duration::from_secs(10));
    let signals = engine
        .metric("tocsin_signals_total{source=\"alert\"}")
        .await;
    assert_eq!(signals, 10_000.0);
    assert!(engine.alive());
}
