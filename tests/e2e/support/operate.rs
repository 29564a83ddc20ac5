//! The engine of the operating tests (tests/e2e/operate.rs): the real binary with named
//! tokens of every role, three responders with a webhook each on a [`Recorder`], and calls
//! with a token.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::reliability::Recorder;
use crate::support::{
    eventually, exit_of, free_port, send_signal, EngineProcess, TestDir, CATALOG,
};

pub const VIEWER: &str = "v-token-1";
pub const INGEST: &str = "i-token-2";
pub const RESPONDER: &str = "r-token-3";
pub const ADMIN: &str = "a-token-4";
/// A bare token: every role, no name.
pub const BARE: &str = "b-token-5";

pub fn tokens() -> String {
    format!(
        "# name role token\nvic viewer {VIEWER}\nivy ingest {INGEST}\nrita responder \
         {RESPONDER}\nada admin {ADMIN}\n{BARE}\n"
    )
}

/// alice pages first, bob an hour later; carol is in no policy. Each has a webhook of their
/// own on `hooks` (a [`Recorder`]): `/hook/alice`, …. Sev 4 goes to the triage queue.
pub fn config(hooks: &str) -> String {
    format!(
        r#"
server: {{ external_url: "http://tocsin.test", auth: {{ tokens_file: secrets/tokens }} }}
{CATALOG}
responders:
  - {{ id: alice, webhook: alice }}
  - {{ id: bob, webhook: bob }}
  - {{ id: carol, webhook: carol }}
schedules:
  - {{ name: primary, timezone: UTC, handoff: "0 0 9 * * Mon", start: 2026-01-05T09:00:00Z, participants: [alice, bob] }}
escalation_policies:
  - name: oncall
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
      - {{ after: 1h, notify: [ "responder:bob" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2|3"' ], policy: oncall }}
  - {{ match: [ 'severity="4"' ], queue: triage }}
notifiers:
  webhooks:
    - {{ name: alice, url: "{hooks}/alice" }}
    - {{ name: bob, url: "{hooks}/bob" }}
    - {{ name: carol, url: "{hooks}/carol" }}
"#
    )
}

pub struct Live {
    pub dir: TestDir,
    pub engine: EngineProcess,
    pub hooks: Recorder,
    pub http: reqwest::Client,
}

pub async fn start() -> Live {
    let hooks = Recorder::start(200).await;
    let dir = TestDir::new(
        &config(&hooks.url),
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write("secrets/tokens", &tokens());
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Live {
        dir,
        engine,
        hooks,
        http,
    }
}

impl Live {
    pub async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.engine.url);
        let mut request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.expect("the engine answers");
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(Some(token), "GET", path, Value::Null).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(token), "POST", path, body).await
    }

    pub async fn declare(&self, body: Value) -> i64 {
        let (status, incident) = self.post(RESPONDER, "/api/v1/incidents", body).await;
        assert_eq!(status, 201, "{incident}");
        incident["id"].as_i64().expect("an id")
    }

    /// The webhook events `who` got for incident `id`, in order.
    pub fn events(&self, who: &str, id: i64) -> Vec<String> {
        self.hooks
            .got()
            .iter()
            .filter(|g| g.path == format!("/hook/{who}") && g.incident() == id)
            .map(|g| g.event.clone())
            .collect()
    }

    /// Wait (bounded) until `who` got `event` for incident `id`.
    pub async fn paged(&self, who: &str, id: i64, event: &str) {
        let got = eventually(Duration::from_secs(10), || async {
            self.events(who, id)
                .iter()
                .any(|e| e == event)
                .then_some(())
        })
        .await;
        assert!(
            got.is_some(),
            "{who} got no {event} page for incident {id}; got {:?}",
            self.events(who, id)
        );
    }

    /// Stop the engine cleanly (SIGTERM).
    pub async fn stop(&mut self) {
        send_signal(&self.engine.child, "TERM");
        exit_of(&mut self.engine.child, Duration::from_secs(20))
            .await
            .expect("the engine stops on SIGTERM");
    }
}

pub fn error_of(body: &Value) -> String {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
        .to_string()
}

pub fn storage_outage() -> Value {
    json!({ "title": "Storage writes fail", "services": ["storage"],
            "regions": ["china-east", "china-north"], "description": "customers call in",
            "by": "someone" })
}
