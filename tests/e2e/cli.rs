//! The CLI client (the real binary) against a real engine on 127.0.0.1 with SQLite in a
//! temporary folder: it lists, shows and acts on incidents, and fails clearly on 401, 404
//! and no engine.

use std::time::Duration;

use crate::support::api::*;
use crate::support::free_port;
use serde_json::Value;

/// Run the real binary; (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(args)
            .env_remove("TOCSIN_URL")
            .env_remove("TOCSIN_TOKEN")
            .env("USER", "cli-user")
            .kill_on_drop(true)
            .output(),
    )
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
    assert_eq!(header, ["ID", "SEV", "STATUS", "SERVICES", "TITLE"]);
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &newest[..5],
        [
            queued.to_string().as_str(),
            "Sev",
            "4",
            "triggered",
            "sqldb"
        ]
    );
    let oldest: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &oldest[..5],
        [sid.as_str(), "Sev", "2", "triggered", "storage"]
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
