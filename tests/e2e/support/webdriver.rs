//! Just enough of the W3C WebDriver protocol (JSON over HTTP) to drive headless Chromium
//! through chromedriver: open a page, find elements by CSS, type, click, read text, take a
//! screenshot. Every call is bounded by the HTTP client's timeout.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
}

#[derive(Debug)]
pub struct WebDriverError(#[allow(dead_code)] pub String);

impl Browser {
    /// A new headless Chromium session with a fresh profile in `profile`.
    pub async fn open(driver: &str, profile: &Path, width: u32, height: u32) -> Browser {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    // Headless on a machine without outside network: nothing may phone home.
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage",
                        format!("--user-data-dir={}", profile.display()),
                        format!("--window-size={width},{height}"),
                    ]
                }
            }}
        });
        let answer: Value = http
            .post(format!("{driver}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("chromedriver answers JSON");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        let browser = Browser {
            http,
            session: format!("{driver}/session/{session}"),
        };
        browser
            .call(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({ "pageLoad": 30000, "script": 10000, "implicit": 0 })),
            )
            .await
            .expect("timeouts set");
        browser
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let request = self.http.request(method, format!("{}{path}", self.session));
        let request = match body {
            Some(b) => request.json(&b),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| WebDriverError(e.to_string()))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| WebDriverError(e.to_string()))?;
        if !status.is_success() {
            return Err(WebDriverError(format!("{status}: {}", answer["value"])));
        }
        Ok(answer["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> Result<(), WebDriverError> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    pub async fn current_url(&self) -> Result<String, WebDriverError> {
        let v = self.call(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn find(&self, css: &str) -> Result<String, WebDriverError> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| WebDriverError(format!("no element reference in {v}")))
    }

    pub async fn text(&self, css: &str) -> Result<String, WebDriverError> {
        let element = self.find(css).await?;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Result<String, WebDriverError> {
        let element = self.find(css).await?;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/attribute/{name}"),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn click(&self, css: &str) -> Result<(), WebDriverError> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    pub async fn type_into(&self, css: &str, text: &str) -> Result<(), WebDriverError> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .map(drop)
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), WebDriverError> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| WebDriverError(e.to_string()))?;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).map_err(|e| WebDriverError(e.to_string()))
    }

    pub async fn set_window(&self, width: u32, height: u32) -> Result<(), WebDriverError> {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .map(drop)
    }

    /// Run `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WebDriverError> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// A Chrome DevTools command through chromedriver (e.g. `Emulation.setTimezoneOverride`).
    pub async fn devtools(&self, command: &str, params: Value) -> Result<Value, WebDriverError> {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": command, "params": params })),
        )
        .await
    }

    /// The session's address, to end it with [`Browser::end`] when the browser itself is
    /// out of reach (a test that panicked while holding it).
    pub fn session_url(&self) -> String {
        self.session.clone()
    }

    /// End the session at `session` (Chromium exits).
    pub async fn end(session: &str) {
        let _ = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
            .delete(session)
            .send()
            .await;
    }

    /// End the session (Chromium exits).
    pub async fn quit(self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}
