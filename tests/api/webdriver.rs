//! A minimal W3C WebDriver client for the console's browser suite: Debian's `chromedriver` spawned on
//! a free loopback port per browser, one headless Chromium session with a throw-away profile, and the
//! handful of commands the scenarios need (navigate, find by CSS, click, type, read, screenshot, the
//! browser log). Every wait is explicit and bounded; nothing sleeps longer than a poll interval.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a wait for an element, a URL or a condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);
/// The key of an element reference in W3C WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process; killed (and reaped) when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver on a port the system picks (`--port=0`) and reads which from its output:
    /// no window between finding a free port and binding it.
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver must be installed for the browser suite (scripts/ensure-browser.sh)",
            );
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines.by_ref().map_while(Result::ok).find_map(|line| {
            line.split_once("started successfully on port ")
                .and_then(|(_, rest)| rest.trim_end_matches('.').parse::<u16>().ok())
        });
        // Whatever it prints later is read and dropped, so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromedriver did not start");
        };
        Self { child, port }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium session. Dropping it ends the session (Chromium exits) and the driver.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    session: String,
    _profile: tempfile::TempDir,
    _driver: ChromeDriver,
}

/// A found element, tied to its browser.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

/// One entry of the browser log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280×900, a fresh profile, browser log at ALL).
    pub async fn start() -> Self {
        let driver = ChromeDriver::start();
        let profile = tempfile::tempdir().expect("profile dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{}", driver.port);
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(started.elapsed() < WAIT, "chromedriver did not start");
            tokio::time::sleep(POLL).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions", "--no-first-run",
                "--window-size=1280,900", "--lang=ja", "--accept-lang=ja",
                format!("--user-data-dir={}", profile.path().display()),
            ]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session answer");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        let browser = Self {
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
            _driver: driver,
        };
        browser.fit_viewport(1280, 900).await;
        browser
    }

    /// Resizes the window so that the page itself (what a screenshot shows) is `width`×`height`:
    /// `--window-size` sets the outer size, the browser's frame takes some of it.
    async fn fit_viewport(&self, width: u32, height: u32) {
        let png = self.screenshot().await;
        let (shown_w, shown_h) = image::load_from_memory(&png)
            .map(|i| (i.width(), i.height()))
            .expect("a PNG screenshot");
        let rect = self.get("/window/rect").await;
        let outer = |k: &str| rect[k].as_u64().unwrap_or(0) as u32;
        self.post(
            "/window/rect",
            json!({"width": outer("width") + width - shown_w.min(width),
                   "height": outer("height") + height - shown_h.min(height)}),
        )
        .await;
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(body["value"].clone())
        } else {
            // A WebDriver error answer: `{"value": {"error", "message"}}`.
            Err(format!(
                "{}: {}",
                body["value"]["error"].as_str().unwrap_or(""),
                body["value"]["message"].as_str().unwrap_or("")
            ))
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or("").to_string()
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.get("/source").await.as_str().unwrap_or("").to_string()
    }

    /// The first element matching `css` now, if any (no waiting).
    pub async fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        Some(Element {
            browser: self,
            id: found[ELEMENT_KEY].as_str()?.to_string(),
        })
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let started = Instant::now();
        loop {
            if let Some(element) = self.try_find(css).await {
                return element;
            }
            if started.elapsed() > WAIT {
                panic!(
                    "no element {css:?} on {} after {WAIT:?}:\n{}",
                    self.current_url().await,
                    self.body_text().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every element matching `css` now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Clicks the element matching `css` (waiting for it).
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await;
    }

    /// Replaces the value of the field matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await;
        field.send_keys(text).await;
    }

    /// The visible text of the element matching `css` (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await
    }

    /// The visible text of the whole page (empty if there is no body yet).
    pub async fn body_text(&self) -> String {
        match self.try_find("body").await {
            Some(body) => body.text().await,
            None => String::new(),
        }
    }

    /// Waits until `condition` holds for the browser, failing with `what` after [`WAIT`].
    pub async fn wait_until<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !condition().await {
            if started.elapsed() > WAIT {
                panic!(
                    "waited {WAIT:?} for {what} on {}:\n{}",
                    self.current_url().await,
                    self.body_text().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the current URL's path (with query) satisfies `test`.
    pub async fn wait_for_path(&self, what: &str, test: impl Fn(&str) -> bool) {
        self.wait_until(what, || async {
            let url = self.current_url().await;
            test(path_of(&url))
        })
        .await;
    }

    /// Waits until the page's text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str) {
        self.wait_until(&format!("the text {needle:?}"), || async {
            self.body_text().await.contains(needle)
        })
        .await;
    }

    /// The cookie `name` as the browser holds it (HttpOnly ones too), if set: `value`, `httpOnly`,
    /// `secure`, `sameSite`, `path`, …
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        self.command(reqwest::Method::GET, &format!("/cookie/{name}"), None)
            .await
            .ok()
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let encoded = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or(""))
            .expect("a base64 screenshot")
    }

    /// The browser log since the last call (chromedriver hands each entry out once).
    pub async fn log(&self) -> Vec<LogEntry> {
        let entries = self.post("/se/log", json!({"type": "browser"})).await;
        entries
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|e| LogEntry {
                        level: e["level"].as_str().unwrap_or("").to_string(),
                        message: e["message"].as_str().unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails on any SEVERE entry of the browser log (script errors, failed loads, CSP violations)
    /// except those containing one of `expected` (e.g. the 404 of a page the test asked for).
    pub async fn assert_clean_log_except(&self, expected: &[&str]) {
        let severe: Vec<LogEntry> = self
            .log()
            .await
            .into_iter()
            .filter(|e| e.level == "SEVERE")
            .filter(|e| !expected.iter().any(|x| e.message.contains(x)))
            .collect();
        assert!(
            severe.is_empty(),
            "SEVERE browser log entries on {}: {severe:#?}",
            self.current_url().await
        );
    }

    /// Fails on any SEVERE entry of the browser log.
    pub async fn assert_clean_log(&self) {
        self.assert_clean_log_except(&[]).await;
    }
}

impl Drop for Browser {
    /// Ends the session so that Chromium exits before its driver is killed (a blocking request on
    /// a plain socket: there is no async drop, and this must work while a test unwinds too).
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Some(rest) = self.session.strip_prefix("http://") else {
            return;
        };
        let Some((host, path)) = rest.split_once('/') else {
            return;
        };
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
    }
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    pub async fn click(&self) {
        self.browser.post(&self.path("/click"), json!({})).await;
    }

    pub async fn clear(&self) {
        self.browser.post(&self.path("/clear"), json!({})).await;
    }

    pub async fn send_keys(&self, text: &str) {
        self.browser
            .post(&self.path("/value"), json!({ "text": text }))
            .await;
    }

    pub async fn text(&self) -> String {
        let text = self.browser.get(&self.path("/text")).await;
        text.as_str().unwrap_or("").to_string()
    }

    /// The attribute as written in the HTML (`None` when absent).
    pub async fn attr(&self, name: &str) -> Option<String> {
        let value = self
            .browser
            .get(&self.path(&format!("/attribute/{name}")))
            .await;
        value.as_str().map(str::to_string)
    }

    /// Where the element is drawn, in CSS pixels: (x, y, width, height).
    pub async fn rect(&self) -> (f64, f64, f64, f64) {
        let r = self.browser.get(&self.path("/rect")).await;
        let n = |k: &str| r[k].as_f64().unwrap_or(0.0);
        (n("x"), n("y"), n("width"), n("height"))
    }

    /// The DOM property (e.g. a field's current `value`).
    pub async fn property(&self, name: &str) -> Value {
        self.browser
            .get(&self.path(&format!("/property/{name}")))
            .await
    }
}

/// The path and query of an absolute URL (`/console/…?x=1`).
pub fn path_of(url: &str) -> &str {
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/")
}
