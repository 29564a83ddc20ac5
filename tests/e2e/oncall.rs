//! On-call changes at run time, through the real binary: overrides (API and CLI) that
//! change who a page reaches, `tocsin oncall` asking the engine, and test pages.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::support;
use crate::support::paging::{Answer, Receiver};
use crate::support::{
    eventually, free_port, get_json, post_json, push_alerts, run_tocsin, EngineProcess, TestDir,
    CATALOG,
};

/// alice holds `primary` every week (the config's overrides give carol one day by the new
/// field names and dave one by the old); bob has an email address (written to a folder) and
/// a webhook nothing listens on.
fn config(a: &str, b: &str) -> String {
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    format!(
        r#"{CATALOG}
responders:
  - {{ id: alice, webhook: hook_a }}
  - {{ id: bob, webhook: hook_dead, email: bob@example.com }}
  - {{ id: carol, webhook: hook_b }}
  - {{ id: dave, webhook: hook_a }}
schedules:
  - name: primary
    timezone: UTC
    handoff: "0 0 9 * * Mon"
    start: 2020-01-06T09:00:00Z
    participants: [alice]
    overrides:
      - {{ responder: carol, start: 2030-01-01T00:00:00Z, end: 2030-01-02T00:00:00Z }}
      - {{ responder: dave, from: 2031-01-01T00:00:00Z, to: 2031-01-02T00:00:00Z }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "schedule:primary" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks:
    - {{ name: hook_a, url: "{a}", timeout: 2s }}
    - {{ name: hook_b, url: "{b}", timeout: 2s }}
    - {{ name: hook_dead, url: "{dead}", timeout: 2s }}
  email:
    from: tocsin@example.com
    file: {{ dir: data/outbox }}
  retry: {{ initial_backoff: 200ms, max_backoff: 1s, max_age: 1h }}
"#
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn events(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn on_call_at(http: &reqwest::Client, url: &str, at: &str) -> Value {
    let (status, list) = get_json(http, &format!("{url}/api/v1/oncall?at={at}")).await;
    assert_eq!(status, 200, "{list}");
    list[0]["responder"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_changes_who_is_paged_from_its_start() {
    let (a, b) = (
        Receiver::start(vec![], Answer::Status(200)).await,
        Receiver::start(vec![], Answer::Status(200)).await,
    );
    let dir = TestDir::new(
        &config(&a.url, &b.url),
        &[("default.yaml", &support::default_rules())],
    );
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let (http, url) = (http(), engine.url.clone());

    // The config's overrides, by the new field names and the old.
    assert_eq!(
        on_call_at(&http, &url, "2030-01-01T12:00:00Z").await,
        "carol"
    );
    assert_eq!(
        on_call_at(&http, &url, "2031-01-01T12:00:00Z").await,
        "dave"
    );
    assert_eq!(
        on_call_at(&http, &url, "2030-01-03T12:00:00Z").await,
        "alice"
    );

    // carol covers from now for an hour: the next page reaches her, not alice.
    let now = Utc::now();
    let (status, made) = post_json(
        &http,
        &format!("{url}/api/v1/schedules/primary/overrides"),
        &json!({ "responder": "carol", "start": rfc3339(now - chrono::Duration::minutes(1)), "end": rfc3339(now + chrono::Duration::hours(1)), "created_by": "alice" }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let (_, list) = get_json(&http, &format!("{url}/api/v1/schedules/primary/overrides")).await;
    assert_eq!(list[0]["id"], made["id"], "{list}");
    let (_, oncall) = get_json(&http, &format!("{url}/api/v1/oncall")).await;
    assert_eq!(oncall[0]["responder"], "carol", "{oncall}");
    let ends = rfc3339(now + chrono::Duration::hours(2));
    push_alerts(
        &http,
        &url,
        json!([{ "labels": { "alertname": "Down", "severity": "critical", "service": "storage", "region": "china-east" }, "endsAt": ends }]),
    )
    .await;
    let page = eventually(Duration::from_secs(10), || async {
        events(&b).into_iter().find(|p| p["event"] == "triggered")
    })
    .await
    .expect("carol is paged");
    assert_eq!(page["recipient"], "carol");
    assert!(events(&a).is_empty(), "alice was paged: {:?}", events(&a));

    // Removed: alice again.
    let id = made["id"].as_str().unwrap();
    let r = http
        .delete(format!("{url}/api/v1/schedules/primary/overrides/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, oncall) = get_json(&http, &format!("{url}/api/v1/oncall")).await;
    assert_eq!(oncall[0]["responder"], "alice", "{oncall}");

    // Refused, saying why.
    for (path, body, code, says) in [
        (
            "nope",
            json!({ "responder": "bob", "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z" }),
            404,
            "no schedule",
        ),
        (
            "primary",
            json!({ "responder": "zed", "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z" }),
            422,
            "not a configured responder",
        ),
        (
            "primary",
            json!({ "responder": "bob", "start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z" }),
            422,
            "must be after",
        ),
    ] {
        let (status, answer) = post_json(
            &http,
            &format!("{url}/api/v1/schedules/{path}/overrides"),
            &body,
        )
        .await;
        assert_eq!(status, code, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }

    // The CLI: an override, the list, and `tocsin oncall --at` asking the engine.
    let cli = |words: &[&str]| {
        let mut args: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        args.extend(["--url".to_string(), url.clone()]);
        let cwd = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tocsin(&cwd, &args).await
        }
    };
    let (code, out, err) = cli(&[
        "oncall",
        "override",
        "primary",
        "bob",
        "--start",
        "2032-03-01T00:00:00Z",
        "--end",
        "2032-03-02T00:00:00Z",
        "--by",
        "alice",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("bob is on call in primary from 2032-03-01"),
        "{out}"
    );
    let (code, out, _) = cli(&["oncall", "--at", "2032-03-01T12:00:00Z"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("SCHEDULE"), "{out}");
    assert!(
        lines[1].starts_with("primary") && lines[1].contains("bob"),
        "{out}"
    );
    let (_, out, _) = cli(&["oncall"]).await;
    assert!(out.lines().nth(1).unwrap().contains("alice"), "{out}");
    let (_, out, _) = cli(&["oncall", "overrides", "primary"]).await;
    assert!(out.contains("2032-03-01") && out.contains("bob"), "{out}");
    // Durable: a restarted engine still knows it.
    engine.kill();
    let mut again = EngineProcess::spawn(&dir, free_port());
    again.wait_ready().await;
    assert_eq!(
        on_call_at(&http, &again.url, "2032-03-01T12:00:00Z").await,
        "bob"
    );
}

/// `tocsin test-page` sends over each channel and says how each went; a failed one makes
/// it exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_page_reports_each_channel() {
    let (a, b) = (
        Receiver::start(vec![], Answer::Status(200)).await,
        Receiver::start(vec![], Answer::Status(200)).await,
    );
    let dir = TestDir::new(
        &config(&a.url, &b.url),
        &[("default.yaml", &support::default_rules())],
    );
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let url = engine.url.clone();
    let (code, out, err) = run_tocsin(dir.path(), &["test-page", "alice", "--url", &url]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "webhook hook_a: delivered\n");
    let got = events(&a);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "test");
    assert_eq!(got[0]["recipient"], "alice");

    let (code, out, _) = run_tocsin(dir.path(), &["test-page", "bob", "--url", &url]).await;
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "email bob@example.com: delivered", "{out}");
    assert!(
        lines[1]
            .starts_with("webhook hook_dead: failed: webhook \"hook_dead\" could not be reached"),
        "{out}"
    );
    let mail = std::fs::read_dir(dir.path().join("data/outbox"))
        .unwrap()
        .count();
    assert_eq!(mail, 1, "one test email written");
    let (status, answer) = post_json(
        &http(),
        &format!("{url}/api/v1/responders/zed/test"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
}

/// The holder of a shift that begins while the engine runs hears of it once, with the
/// schedule, the shift's end and the open incidents they inherit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_start_notice_names_the_schedule_its_end_and_the_open_incidents() {
    let (a, b) = (
        Receiver::start(vec![], Answer::Status(200)).await,
        Receiver::start(vec![], Answer::Status(200)).await,
    );
    // Whole seconds, as the config says it.
    let starts = chrono::DateTime::from_timestamp(Utc::now().timestamp() + 6, 0).expect("a time");
    let text = config(&a.url, &b.url).replace(
        "start: 2020-01-06T09:00:00Z",
        &format!("start: {}", rfc3339(starts)),
    );
    let dir = TestDir::new(&text, &[("default.yaml", &support::default_rules())]);
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let (http, url) = (http(), engine.url.clone());
    // Open before anyone is on call: alice inherits it.
    let ends = rfc3339(Utc::now() + chrono::Duration::hours(2));
    push_alerts(
        &http,
        &url,
        json!([{ "labels": { "alertname": "Down", "severity": "critical", "service": "storage", "region": "china-east" }, "endsAt": ends }]),
    )
    .await;
    let incident = eventually(Duration::from_secs(10), || async {
        let (_, list) = get_json(&http, &format!("{url}/api/v1/incidents")).await;
        list["incidents"][0]["id"].as_i64()
    })
    .await
    .expect("an incident opens");
    let notice = eventually(Duration::from_secs(20), || async {
        events(&a)
            .into_iter()
            .find(|p| p["event"] == "shift_started")
    })
    .await
    .expect("alice hears her shift begin");
    assert!(Utc::now() >= starts, "the notice came before the shift");
    assert_eq!(notice["recipient"], "alice");
    let labels = &notice["incident"]["labels"];
    assert_eq!(labels["schedule"], "primary");
    assert_eq!(labels["open_incidents"], incident.to_string());
    // The shift ends at the next Monday 09:00 UTC handoff.
    let until: chrono::DateTime<Utc> = labels["shift_ends_at"].as_str().unwrap().parse().unwrap();
    use chrono::{Datelike, Timelike};
    assert_eq!(until.weekday(), chrono::Weekday::Mon);
    assert_eq!((until.hour(), until.minute()), (9, 0));
    assert!(until > starts && until - starts <= chrono::Duration::days(7));
    let title = notice["incident"]["title"].as_str().unwrap();
    assert!(
        title.contains("on call in primary") && title.contains(&format!("#{incident}")),
        "{title}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let notices = events(&a)
        .into_iter()
        .filter(|p| p["event"] == "shift_started")
        .count();
    assert_eq!(notices, 1, "one notice per shift");
}

/// Every VEVENT of a feed (parsed by Python's icalendar): (summary, start, end) in UTC.
fn parse_feed(text: &str) -> Vec<(String, chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    use std::io::Write;
    const SCRIPT: &str = r#"
import json, sys, datetime, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
assert any(c.name == "VTIMEZONE" for c in cal.walk()), "no VTIMEZONE"
out = []
for e in cal.walk("VEVENT"):
    s, t = e.decoded("DTSTART"), e.decoded("DTEND")
    assert s.tzinfo is not None and t.tzinfo is not None, "floating time"
    out.append([str(e["SUMMARY"]), s.astimezone(datetime.timezone.utc).isoformat(), t.astimezone(datetime.timezone.utc).isoformat()])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with icalendar (Debian package python3-icalendar)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "icalendar refused the feed: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<(String, String, String)> = serde_json::from_slice(&output.stdout).unwrap();
    events
        .into_iter()
        .map(|(s, a, b)| (s, a.parse().unwrap(), b.parse().unwrap()))
        .collect()
}

/// The feeds, read by a real iCalendar parser, agree with `/api/v1/oncall?at=` at the start
/// and end of every shift, across the spring daylight-saving change, overrides applied;
/// with auth on they are served by their signed link only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_feeds_agree_with_oncall_at_every_shift() {
    use chrono::{Offset, Timelike};
    let (a, b) = (
        Receiver::start(vec![], Answer::Status(200)).await,
        Receiver::start(vec![], Answer::Status(200)).await,
    );
    // A zone whose clocks change within the feed's 90 days, whenever the test runs (the
    // unit tests of `paging::ics` pin the spring and autumn changes at fixed dates).
    let zone: chrono_tz::Tz = [
        "America/New_York",
        "Europe/Berlin",
        "Australia/Sydney",
        "America/Santiago",
        "Africa/Cairo",
        "Africa/Casablanca",
    ]
    .into_iter()
    .map(|z| z.parse::<chrono_tz::Tz>().unwrap())
    .find(|tz| {
        let offset = |t: chrono::DateTime<Utc>| t.with_timezone(tz).offset().fix();
        let now = Utc::now();
        (1..85).any(|d| offset(now + chrono::Duration::days(d)) != offset(now))
    })
    .unwrap_or(chrono_tz::America::New_York);
    let text = config(&a.url, &b.url)
        .replace("timezone: UTC", &format!("timezone: {}", zone.name()))
        .replace("\"0 0 9 * * Mon\"", "\"0 0 9 * * Mon,Thu\"")
        .replace("participants: [alice]", "participants: [alice, bob]");
    let text = format!(
        "server:\n  ack_secret_file: secrets/ack-key\n  auth: {{ tokens_file: secrets/api-tokens }}\n{text}"
    );
    let dir = TestDir::new(&text, &[("default.yaml", &support::default_rules())]);
    dir.write("secrets/ack-key", "feed-test-key\n");
    dir.write("secrets/api-tokens", "t0ken\n");
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let url = engine.url.clone();
    let http = http();
    let authed = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).bearer_auth("t0ken").send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // carol covers three days ahead, from 15:00 UTC for a day.
    let day = (Utc::now() + chrono::Duration::days(3)).date_naive();
    let cover_from = day.and_hms_opt(15, 0, 0).unwrap().and_utc();
    let r = http
        .post(format!("{url}/api/v1/schedules/primary/overrides"))
        .bearer_auth("t0ken")
        .json(&json!({ "responder": "carol", "start": rfc3339(cover_from), "end": rfc3339(cover_from + chrono::Duration::days(1)) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // Without a token or a signature: refused. The CLI's link works alone.
    let plain = http
        .get(format!("{url}/api/v1/schedules/primary.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 401);
    let (code, link, err) = run_tocsin(
        dir.path(),
        &[
            "oncall",
            "feed-link",
            "primary",
            "--url",
            &url,
            "--token",
            "t0ken",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let link = link.trim().to_string();
    assert!(
        link.contains("/api/v1/schedules/primary.ics?sig="),
        "{link}"
    );
    let path = &link[link.find("/api/").unwrap()..];
    let signed = http.get(format!("{url}{path}")).send().await.unwrap();
    assert_eq!(signed.status().as_u16(), 200);
    assert!(signed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    let feed = signed.text().await.unwrap();
    let forged = http
        .get(format!("{url}/api/v1/schedules/primary.ics?sig=AAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let other = http
        .get(format!(
            "{url}{}",
            path.replace("schedules/primary", "responders/alice")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status().as_u16(),
        401,
        "a link signs its own feed only"
    );

    let events = parse_feed(&feed);
    let horizon = Utc::now() + chrono::Duration::days(89);
    assert!(
        events.len() >= 26,
        "90 days of twice-weekly shifts: {}",
        events.len()
    );
    assert!(
        events.last().unwrap().2 >= horizon,
        "the feed reaches 90 days ahead"
    );
    assert!(
        events
            .iter()
            .any(|e| e.0 == "On call: carol (primary)" && e.1 == cover_from),
        "the override is in the feed"
    );
    for (i, (summary, start, end)) in events.iter().enumerate() {
        if i > 0 {
            assert_eq!(events[i - 1].2, *start, "shifts follow each other");
        }
        let who = summary
            .strip_prefix("On call: ")
            .and_then(|s| s.strip_suffix(" (primary)"))
            .unwrap();
        for at in [*start, *end - chrono::Duration::seconds(1)] {
            let (status, body) = authed(format!(
                "{url}/api/v1/oncall?at={}",
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ))
            .await;
            assert_eq!(status, 200, "{body}");
            let list: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(list[0]["responder"], who, "at {at}: {summary}");
        }
        // Each handoff at 09:00 on the schedule's wall clock, whatever the offset.
        let after_cover = i > 0 && events[i - 1].0 == "On call: carol (primary)";
        if !summary.contains("carol") && i > 0 && !after_cover {
            let local = start.with_timezone(&zone);
            assert_eq!(
                (local.hour(), local.minute()),
                (9, 0),
                "{summary} at {start}"
            );
        }
    }
    let offsets: std::collections::BTreeSet<i32> = events
        .iter()
        .map(|e| e.1.with_timezone(&zone).offset().fix().local_minus_utc())
        .collect();
    // New York is the fallback when no candidate changes within the span.
    if zone.name() != "America/New_York" || offsets.len() > 1 {
        assert_eq!(
            offsets.len(),
            2,
            "the feed crosses a change of {}",
            zone.name()
        );
    }

    // A responder's feed: only their shifts, the same as in the schedule's.
    let (status, alice) = authed(format!("{url}/api/v1/responders/alice.ics")).await;
    assert_eq!(status, 200);
    let mine = parse_feed(&alice);
    let theirs: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "On call: alice (primary)")
        .cloned()
        .collect();
    assert_eq!(mine, theirs);
}
