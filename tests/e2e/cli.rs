//! The CLI client (the real binary) against a real engine on 127.0.0.1 with SQLite in a
//! temporary folder: it lists, shows and acts on incidents, and fails clearly on 401, 404
//! and no engine; times in the reader's zone or `--utc`; every list as a table and as the
//! API's JSON; `--by` from the token's name, else `$USER`, else a plain error.

use std::time::Duration;

use crate::support::api::*;
use crate::support::free_port;
use serde_json::{json, Value};

/// Run the real binary as `cli-user` with times in UTC; (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    cli_with(args, &[("USER", Some("cli-user")), ("TZ", Some("UTC"))]).await
}

/// Run the real binary with these variables set (or, with `None`, unset).
async fn cli_with(args: &[&str], env: &[(&str, Option<&str>)]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"));
    command
        .args(args)
        .env_remove("TOCSIN_URL")
        .env_remove("TOCSIN_TOKEN")
        .kill_on_drop(true);
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the CLI finishes within 60 s")
        .expect("the CLI runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test]
async fn cli_lists_shows_and_acts_on_incidents() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let queued = send(&engine, vec![minor("sqldb", "ReplicaLag")]).await[0];
    let url = engine.url.as_str();
    let sid = id.to_string();

    let (code, out, err) = cli(&["incidents", "list", "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "SEV", "STATUS", "OPENED", "SERVICES", "TITLE"]
    );
    // The opened time is three words: date, time to the second, zone.
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        [&newest[..4], &newest[6..8]].concat(),
        [
            queued.to_string().as_str(),
            "Sev",
            "4",
            "triggered",
            "UTC",
            "sqldb"
        ]
    );
    let oldest: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        [&oldest[..4], &oldest[6..8]].concat(),
        [sid.as_str(), "Sev", "2", "triggered", "UTC", "storage"]
    );

    let (code, out, _) = cli(&[
        "incidents",
        "list",
        "--url",
        url,
        "--severity",
        "2",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("--output json is JSON");
    assert_eq!(ids(&list), vec![id]);

    let (code, out, err) = cli(&["incidents", "show", &sid, "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Severity     Sev 2"), "{out}");
    assert!(out.contains("Customers    contoso,fabrikam (2)"), "{out}");
    assert!(
        out.contains("Impacts (1)") && out.contains("outage"),
        "{out}"
    );
    assert!(
        out.contains("Timeline (") && out.contains("opened"),
        "{out}"
    );
    let (code, out, _) = cli(&["incidents", "show", &sid, "--url", url, "-o", "json"]).await;
    assert_eq!(code, 0);
    let detail: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(detail["impacts"].as_array().unwrap().len(), 1);

    let (code, out, err) = cli(&["incidents", "ack", &sid, "--url", url, "--by", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("acknowledged") && out.contains("alice"),
        "{out}"
    );
    let (code, _, err) = cli(&["incidents", "ack", &sid, "--url", url, "--by", "alice"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("409") && err.contains("already acknowledged"),
        "{err}"
    );

    let (code, out, err) = cli(&[
        "incidents",
        "severity",
        &sid,
        "3",
        "--url",
        url,
        "--by",
        "bob",
        "--reason",
        "contained",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Sev 3"), "{out}");
    let (code, out, _) = cli(&[
        "incidents",
        "severity",
        &sid,
        "--unpin",
        "--url",
        url,
        "--by",
        "bob",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["pinned"],
        false
    );
    let (code, _, err) = cli(&[
        "incidents",
        "severity",
        &sid,
        "7",
        "--url",
        url,
        "--by",
        "bob",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("422"), "{err}");

    let (code, out, err) = cli(&[
        "incidents",
        "resolve",
        &sid,
        "--url",
        url,
        "--by",
        "carol",
        "--note",
        "fixed",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resolved"), "{out}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "resolved");
    // Each action is recorded with the `--by` it was given. (Unpinning raised it back to
    // Sev 2, and a rise clears an acknowledgement, so the timeline is where alice's ack is.)
    let acts: Vec<(String, String)> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().into(),
                t["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("acknowledged", "alice"),
        ("severity_changed", "bob"),
        ("severity_unpinned", "bob"),
        ("resolved", "carol"),
    ] {
        assert!(
            acts.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {acts:?}"
        );
    }
    let (code, _, err) = cli(&["incidents", "resolve", &sid, "--url", url, "--by", "carol"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("409"), "{err}");

    // `by` defaults to $USER.
    let (code, _, err) = cli(&["incidents", "ack", &queued.to_string(), "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{queued}")).await;
    assert_eq!(incident["acknowledged_by"], "cli-user");
    engine.stop().await;
}

#[tokio::test]
async fn cli_fails_clearly_on_401_404_and_no_engine() {
    let (_dir, engine) = engine(true).await;
    let id = send(&engine, vec![storage_east()]).await[0].to_string();
    let url = engine.url.as_str();

    let (code, out, err) = cli(&["incidents", "list", "--url", url]).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("401") && err.contains("--token"), "{err}");
    let (code, _, err) = cli(&[
        "incidents",
        "ack",
        &id,
        "--url",
        url,
        "--token",
        "wrong",
        "--by",
        "x",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("401") && err.contains("refused"), "{err}");
    assert!(!err.contains("wrong"), "the token is not echoed: {err}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        incident.get("status"),
        None,
        "401 without token: {incident}"
    );

    let (code, out, err) = cli(&["incidents", "list", "--url", url, "--token", TOKEN]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("storage"), "{out}");

    let (code, _, err) = cli(&["incidents", "show", "999", "--url", url, "--token", TOKEN]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("no incident 999"),
        "{err}"
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = cli(&["incidents", "list", "--url", &closed]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach") && err.to_lowercase().contains("refused"),
        "{err}"
    );
    engine.stop().await;
}

/// The API's time `t` (RFC 3339) as the CLI shows it in `zone`.
fn shown(t: &Value, zone: chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(t.as_str().expect("a time"))
        .unwrap()
        .with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[tokio::test]
async fn times_print_in_the_local_zone_to_the_second_or_in_utc() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0].to_string();
    let url = engine.url.as_str();
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    let new_york = &[("TZ", Some("America/New_York")), ("USER", Some("x"))];

    let (code, out, err) = cli_with(&["incidents", "show", &id, "--url", url], new_york).await;
    assert_eq!(code, 0, "{err}");
    let opened = shown(&incident["opened_at"], chrono_tz::America::New_York);
    assert!(
        opened.ends_with(" EST") || opened.ends_with(" EDT"),
        "{opened}"
    );
    assert!(
        out.contains(&format!("Opened       {opened}\n")),
        "{opened:?} in:\n{out}"
    );
    let (_, out, _) = cli_with(&["incidents", "list", "--url", url], new_york).await;
    assert!(out.lines().nth(1).unwrap().contains(&opened), "{out}");

    // --utc, before or after the command, shows the API's UTC, to the second.
    let utc = shown(&incident["opened_at"], chrono_tz::UTC);
    for args in [
        ["--utc", "incidents", "show", &id, "--url", url],
        ["incidents", "show", &id, "--url", url, "--utc"],
    ] {
        let (code, out, err) = cli_with(&args, new_york).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("Opened       {utc}\n")),
            "{utc:?} in:\n{out}"
        );
        assert!(!out.contains(" EST") && !out.contains(" EDT"), "{out}");
    }
    // The zone of a POSIX TZ string, which the zone database does not name, is shown by
    // its offset.
    let (_, out, _) = cli_with(
        &["incidents", "show", &id, "--url", url],
        &[("TZ", Some("XYZ-3"))],
    )
    .await;
    let plus_three = chrono::DateTime::parse_from_rfc3339(incident["opened_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).unwrap())
        .format("%Y-%m-%d %H:%M:%S +03:00")
        .to_string();
    assert!(out.contains(&plus_three), "{plus_three:?} in:\n{out}");
    engine.stop().await;
}

/// The start (in characters) of each of `header`'s columns in a table's first line, after
/// checking that every row has a cell starting at each, under its heading.
fn assert_table(out: &str, header: &[&str]) {
    let lines: Vec<Vec<char>> = out
        .lines()
        .filter(|l| !l.starts_with("more: "))
        .map(|l| l.chars().collect())
        .collect();
    let first: String = lines[0].iter().collect();
    let words: Vec<&str> = first
        .split("  ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(words, header, "the header of:\n{out}");
    let starts: Vec<usize> = header
        .iter()
        .map(|h| first.find(h).map(|at| first[..at].chars().count()).unwrap())
        .collect();
    assert!(lines.len() > 1, "rows under the header:\n{out}");
    for row in &lines[1..] {
        for &at in &starts[1..] {
            assert!(
                row.len() > at && row[at - 1] == ' ' && row[at - 2] == ' ' && row[at] != ' ',
                "a cell starts at column {at} of every row:\n{out}"
            );
        }
    }
}

#[tokio::test]
async fn every_list_prints_a_table_or_the_apis_json() {
    let (_dir, engine) = engine(false).await;
    let url = engine.url.as_str();
    // (the command, the API path it reads, the table's header, what it says when empty)
    let lists: Vec<(Vec<&str>, &str, Vec<&str>, &str)> = vec![
        (
            vec!["incidents", "list"],
            "/api/v1/incidents",
            vec!["ID", "SEV", "STATUS", "OPENED", "SERVICES", "TITLE"],
            "no incidents",
        ),
        (
            vec!["silence", "list"],
            "/api/v1/silences",
            vec!["ID", "STATE", "STARTS", "ENDS", "BY", "MATCHERS", "COMMENT"],
            "no silences",
        ),
        (
            vec!["oncall", "overrides", "primary"],
            "/api/v1/schedules/primary/overrides",
            vec!["ID", "RESPONDER", "START", "END", "BY"],
            "no overrides",
        ),
        (
            vec!["queue", "list", "triage"],
            "/api/v1/queues/triage",
            vec!["ID", "SEV", "STATUS", "OPENED", "ASSIGNEE", "TITLE"],
            "no incidents in queue triage",
        ),
        (
            vec!["cases", "list"],
            "/api/v1/cases",
            vec![
                "ID",
                "SR",
                "STATUS",
                "CUSTOMER",
                "SERVICE",
                "REGION",
                "OWNER",
                "RESPOND BY",
            ],
            "no cases",
        ),
        (
            vec!["audit", "list"],
            "/api/v1/audit",
            vec!["ID", "AT", "BY", "ACTION", "TARGET", "FROM", "DETAIL"],
            "no audit entries",
        ),
    ];
    for (command, _, _, empty) in &lists {
        let args = [command.as_slice(), &["--url", url]].concat();
        let (code, out, err) = cli(&args).await;
        assert_eq!(code, 0, "{command:?}: {err}");
        assert_eq!(out, format!("{empty}\n"), "{command:?}");
    }

    send(&engine, vec![storage_east()]).await;
    send(&engine, vec![minor("sqldb", "ReplicaLag")]).await;
    let made = [
        (
            "/api/v1/silences",
            json!({ "matchers": ["service=\"sqldb\""], "duration": "2h", "created_by": "dave", "comment": "replica rebuild" }),
        ),
        (
            "/api/v1/schedules/primary/overrides",
            json!({ "responder": "bob", "start": "2032-03-01T00:00:00Z", "end": "2032-03-02T00:00:00Z", "created_by": "alice" }),
        ),
        (
            "/api/v1/cases",
            json!({ "customer": "contoso", "service": "storage", "region": "china-east",
                    "sr_severity": "B", "summary": "slow uploads", "contact": { "name": "Dana", "email": "dana@contoso.example.com" }, "by": "sam" }),
        ),
    ];
    for (path, body) in made {
        let (status, answer) = engine.post(path, &body).await;
        assert!(status == 200 || status == 201, "{path}: {answer}");
    }

    for (command, path, header, _) in &lists {
        let args = [command.as_slice(), &["--url", url]].concat();
        let (code, out, err) = cli(&args).await;
        assert_eq!(code, 0, "{command:?}: {err}");
        assert_table(&out, header);
        assert!(
            out.contains(" UTC"),
            "times to the second with the zone: {out}"
        );
        let args = [command.as_slice(), &["--url", url, "--output", "json"]].concat();
        let (code, out, err) = cli(&args).await;
        assert_eq!(code, 0, "{command:?}: {err}");
        let printed: Value = serde_json::from_str(&out).expect("--output json is JSON");
        let (_, api) = engine.get(path).await;
        assert_eq!(printed, api, "{command:?} prints the API's JSON");
    }
    // Who is on call, a list of schedules.
    let (code, out, err) = cli(&["oncall", "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    assert_table(&out, &["SCHEDULE", "RESPONDER", "SINCE", "UNTIL"]);
    let (_, out, _) = cli(&["oncall", "--url", url, "-o", "json"]).await;
    let (_, api) = engine.get("/api/v1/oncall").await;
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), api);
    engine.stop().await;
}

#[tokio::test]
async fn by_is_the_tokens_name_else_user_else_the_command_says_what_to_pass() {
    use crate::support::operate::{start, BARE, RESPONDER, VIEWER};
    let live = start().await;
    let url = live.engine.url.clone();
    let (status, me) = live.get(VIEWER, "/api/v1/whoami").await;
    assert_eq!(
        (status, me),
        (200, json!({ "name": "vic", "role": "viewer" }))
    );
    let (status, me) = live.get(BARE, "/api/v1/whoami").await;
    assert_eq!(
        (status, me),
        (200, json!({ "name": null, "role": "admin" }))
    );
    let (status, _) = live.call(None, "GET", "/api/v1/whoami", Value::Null).await;
    assert_eq!(status, 401);

    let declare = |title: &str| json!({ "title": title, "services": ["sqldb"], "regions": ["china-east"], "severity": 3 });
    let first = live.declare(declare("payments slow")).await.to_string();
    let second = live.declare(declare("payments slower")).await.to_string();
    let no_user = [("USER", None), ("TZ", Some("UTC"))];

    // No --by and no $USER: the signed-in name, the token's.
    let (code, out, err) = cli_with(
        &[
            "incidents",
            "ack",
            &first,
            "--url",
            &url,
            "--token",
            RESPONDER,
        ],
        &no_user,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acknowledged by rita"), "{out}");

    // A nameless token: $USER.
    let (code, out, err) = cli_with(
        &["incidents", "ack", &second, "--url", &url, "--token", BARE],
        &[("USER", Some("sam"))],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acknowledged by sam"), "{out}");

    // Neither: the command says what to pass, fails, and sends nothing.
    let (code, out, err) = cli_with(
        &[
            "incidents",
            "resolve",
            &second,
            "--url",
            &url,
            "--token",
            BARE,
        ],
        &no_user,
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err.trim(),
        "tocsin: who is acting? say who you are with --by NAME or set $USER"
    );
    let (_, incident) = live
        .get(VIEWER, &format!("/api/v1/incidents/{second}"))
        .await;
    assert_eq!(incident["status"], "acknowledged", "{incident}");
    let (_, audit) = live.get(VIEWER, "/api/v1/audit").await;
    assert!(
        !audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "resolve"),
        "{audit}"
    );
    // Nor is the engine asked anything without a token: the error comes first.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = cli_with(&["incidents", "ack", "1", "--url", &closed], &no_user).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--by NAME") && !err.contains("cannot reach"),
        "{err}"
    );
}
