//! The console in a real browser (issue 22 item 5): headless Chromium from Debian's packages, driven
//! over WebDriver (`webdriver.rs`), against the real app on a random port, on both backends where a
//! scenario is cheap enough to run twice and on one of them otherwise. Operators are made by the real
//! `jpki-face operator create` (or by an admin in the console); their TOTP codes come from `oathtool`,
//! an implementation independent of the service's. After every page load the browser log must hold no
//! SEVERE entry: a script error, a failed load or a Content-Security-Policy violation fails the test.
//!
//! `CONSOLE_SCREENSHOTS=<dir>` saves PNGs of the main pages there (docs/console.md, "Screenshots"); the
//! review page's photos are pixelated before saving: committed screenshots show no real face.

use crate::cards::*;
use crate::helpers::*;
use crate::webdriver::{path_of, Browser};
use crate::webhooks::Receiver;
use jpki_face::devcard::PersonId;
use jpki_face::domain::search::CheckMode;
use jpki_face::store::TenantSettings;
use jpki_face::usecase::tenants::create_tenant_with;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

crate::on_both_backends!(
    the_harness_drives_a_page_and_reads_its_log,
    login_needs_the_totp_code_and_the_language_switches,
    a_reviewer_approves_one_case_and_rejects_another,
);

mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cross_site_or_cross_origin_form_changes_nothing() {
        super::a_cross_site_or_cross_origin_form_changes_nothing(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_eyes_needs_a_second_reviewer_and_a_late_decision_sees_the_first() {
        super::four_eyes_needs_a_second_reviewer_and_a_late_decision_sees_the_first(Backend::Sqlite)
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_retry_button_delivers_a_failed_webhook() {
        super::the_retry_button_delivers_a_failed_webhook(Backend::Sqlite).await
    }
}

mod postgres_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_api_key_is_shown_once_and_revoked_keys_get_401() {
        super::an_api_key_is_shown_once_and_revoked_keys_get_401(Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_tenants_enrollment_is_not_found() {
        super::another_tenants_enrollment_is_not_found(Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_viewer_made_in_the_console_cannot_approve() {
        super::a_viewer_made_in_the_console_cannot_approve(Backend::Postgres).await
    }
}

// The harness: a page server on another origin, the app, operators, TOTP codes, logging in.

/// A tiny HTTP server on its own port (another origin than the app) that answers every request with
/// one HTML page and records the request lines it saw.
struct Site {
    base: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Site {
    /// Serves `html` on 127.0.0.1, named `host` in its URL (`localhost` is another site than the
    /// app's `127.0.0.1`; `127.0.0.1` on another port is the same site but another origin).
    async fn serve(host: &str, html: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let html = Arc::new(html);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (seen, html) = (seen.clone(), html.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let line = head.lines().next().unwrap_or("").to_string();
                    seen.lock().unwrap().push(line);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                        html.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            base: format!("http://{host}:{port}"),
            requests,
        }
    }
}

/// The app with a tenant of its own (the bank) whose operators use the console.
struct Console {
    app: TestApp,
    tenant: String,
    key_id: String,
    key: String,
}

impl Console {
    async fn start(backend: Backend, settings: TenantSettings, extra_toml: &str) -> Self {
        let mut options = cards().app_options(backend);
        options.toml.push_str(extra_toml);
        let app = spawn_app_with(options).await;
        let (tenant, key_id, key) =
            create_tenant_with(app.ctx.svc.store.as_ref(), "bank", settings)
                .await
                .expect("tenant");
        Self {
            app,
            tenant: tenant.id.to_string(),
            key_id,
            key: key.expose().clone(),
        }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// An operator of the bank made by `jpki-face operator create`, run against the app's database.
    async fn operator(&self, login: &str, role: &str) -> Operator {
        let password = format!("pw-{login}-{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jpki-face"))
            .args(["operator", "create", "--tenant", &self.tenant])
            .args(["--login", login, "--role", role, "--json"])
            .env("JPKI_FACE__DATABASE__URL", &self.app.db_url)
            .env("JPKI_FACE__CRYPTO__KEK", &self.app.kek)
            .env("JPKI_FACE__LOG__FILTER", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the jpki-face binary");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "operator create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
        assert_eq!(created["role"], role);
        Operator {
            login: login.to_string(),
            password,
            secret: created["totp_secret"]
                .as_str()
                .expect("a secret")
                .to_string(),
        }
    }

    /// An enrollment in the bank of `person`'s card with person A's selfie; its JSON.
    async fn enroll(&self, person: &PersonId) -> Value {
        enroll_with_key(&self.app, &self.key, person).await
    }

    /// An enrollment waiting for a person: person A's face on a card of another identity, in a bank
    /// whose duplicate check sends duplicates to review (person A must be enrolled first).
    async fn in_review(&self) -> String {
        let body = self.enroll(&cards().a_other_identity).await;
        assert_eq!(body["status"], "in_review", "{body:#}");
        body["id"].as_str().unwrap().to_string()
    }

    /// The enrollment's status as the API shows it.
    async fn status(&self, id: &str) -> String {
        let response = self
            .app
            .client
            .get(self.url(&format!("/v1/enrollments/{id}")))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["status"].as_str().unwrap_or("").to_string()
    }

    /// The HTTP status `key` gets from an authenticated `/v1` route.
    async fn api_status_with(&self, key: &str) -> u16 {
        self.app
            .client
            .get(self.url("/v1/webhooks"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// An enrollment of `person`'s card with person A's selfie, by a session of `key`'s tenant.
async fn enroll_with_key(app: &TestApp, key: &str, person: &PersonId) -> Value {
    let response = app
        .post_session(
            key,
            &json!({"purpose": "enrollment", "subject_ref": "browser-1"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let session: Value = response.json().await.unwrap();
    let card = cards().sign(person, &session);
    let response = post_enrollment(app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn review_settings() -> TenantSettings {
    TenantSettings {
        duplicate_check: Some(CheckMode::Review),
        ..TenantSettings::default()
    }
}

struct Operator {
    login: String,
    password: String,
    secret: String,
}

/// The TOTP codes of `secret` for this 30-second step and the next, by `oathtool`.
fn totp_codes(secret: &str) -> Vec<String> {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", "-w", "1", secret])
        .output()
        .expect("oathtool must be installed for the browser suite (scripts/ensure-tools.sh)");
    assert!(out.status.success(), "oathtool failed");
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 2, "{codes:?}");
    codes
}

/// Fills the login form (the page must be open) and submits it with the Enter key (the keyboard
/// alone is enough to log in).
async fn submit_login(browser: &Browser, console: &Console, op: &Operator, code: &str) {
    browser.fill("#tenant", &console.tenant).await;
    browser.fill("#login", &op.login).await;
    browser.fill("#password", &op.password).await;
    browser.fill("#totp", &format!("{code}{ENTER}")).await;
}

/// The WebDriver code of the Enter key.
const ENTER: char = '\u{E007}';

/// Logs `op` in with the current TOTP code and waits for the dashboard.
async fn login(browser: &Browser, console: &Console, op: &Operator) {
    browser.goto(&console.url("/console/login")).await;
    browser.assert_clean_log().await;
    submit_login(browser, console, op, &totp_codes(&op.secret)[0]).await;
    browser
        .wait_for_path("the dashboard after login", |p| p == "/console/")
        .await;
    let whoami = browser.text("#whoami").await;
    assert!(whoami.contains(&op.login), "{whoami}");
    browser.assert_clean_log().await;
}

async fn logout(browser: &Browser) {
    browser.click("#logout").await;
    browser
        .wait_for_path("the login page after logout", |p| p == "/console/login")
        .await;
    browser.assert_clean_log().await;
}

/// Opens a console page and checks the log.
async fn open(browser: &Browser, console: &Console, path: &str) {
    browser.goto(&console.url(path)).await;
    browser.assert_clean_log().await;
}

/// Clicks a submit button and waits for the page the POST leads to.
async fn submit_and_wait(browser: &Browser, button: &str, what: &str, test: impl Fn(&str) -> bool) {
    browser.click(button).await;
    browser.wait_for_path(what, test).await;
}

/// Reloads `path` until `css` is on it (a background job's result, e.g. a webhook delivery).
async fn reload_until(browser: &Browser, console: &Console, path: &str, css: &str) {
    let started = std::time::Instant::now();
    loop {
        open(browser, console, path).await;
        if browser.try_find(css).await.is_some() {
            return;
        }
        assert!(
            started.elapsed() < crate::webdriver::WAIT,
            "{css} never appeared on {path}:\n{}",
            browser.body_text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// The CSRF token of the page's forms.
async fn csrf_token(browser: &Browser) -> String {
    browser
        .find("input[name=csrf]")
        .await
        .attr("value")
        .await
        .expect("a csrf token")
}

/// Saves a screenshot as `<CONSOLE_SCREENSHOTS>/<name>.png` when that variable is set, with the
/// elements matching `hide` pixelated beyond recognition (the review page's photos).
async fn screenshot(browser: &Browser, name: &str, hide: &[&str]) {
    use image::imageops::{crop_imm, replace, resize, FilterType};
    let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS").map(std::path::PathBuf::from) else {
        return;
    };
    let png = browser.screenshot().await;
    let mut img = image::load_from_memory(&png).expect("a PNG").to_rgb8();
    for css in hide {
        let (x, y, w, h) = browser.find(css).await.rect().await;
        let (x, y) = (x.max(0.0) as u32, y.max(0.0) as u32);
        let w = (w as u32).min(img.width().saturating_sub(x));
        let h = (h as u32).min(img.height().saturating_sub(y));
        if w == 0 || h == 0 {
            continue;
        }
        let patch = crop_imm(&img, x, y, w, h).to_image();
        // Six blocks across: a face becomes a few flat colours.
        let small = resize(&patch, 6, (6 * h / w).max(1), FilterType::Triangle);
        let blocks = resize(&small, w, h, FilterType::Nearest);
        replace(&mut img, &blocks, i64::from(x), i64::from(y));
    }
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let file = std::fs::File::create(dir.join(format!("{name}.png"))).expect("screenshot file");
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    );
    img.write_with_encoder(encoder).expect("write screenshot");
}

// The scenarios.

/// The harness itself: navigation, a form typed into and submitted, reading text and the URL, a
/// screenshot, and the log check catching a script error (so that a clean log means something).
async fn the_harness_drives_a_page_and_reads_its_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = Browser::start().await;

    browser.goto(&app.url("/openapi.json")).await;
    browser.wait_for_text("\"openapi\"").await;
    // A JSON document has no icon link: the browser asks for /favicon.ico, which the API lacks.
    browser.assert_clean_log_except(&["/favicon.ico"]).await;

    let site = Site::serve(
        "127.0.0.1",
        r#"<!doctype html><html lang="en"><head><title>form</title><link rel="icon" href="data:,"></head>
<body><form action="/echo" method="get"><label>q <input id="q" name="q"></label>
<button id="go" type="submit">go</button></form>
<script>if (location.search.includes("boom")) console.error("boom");</script></body></html>"#
            .to_string(),
    )
    .await;
    browser.goto(&site.base).await;
    browser.fill("#q", "hello").await;
    submit_and_wait(&browser, "#go", "the echo page", |p| p == "/echo?q=hello").await;
    browser.assert_clean_log().await;
    assert!(site
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("GET /echo?q=hello ")));

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");

    // A script error is a SEVERE entry: the check the scenarios rely on can fail.
    browser.goto(&format!("{}/echo?q=boom", site.base)).await;
    let severe: Vec<_> = browser
        .log()
        .await
        .into_iter()
        .filter(|e| e.level == "SEVERE")
        .collect();
    assert!(
        severe.iter().any(|e| e.message.contains("boom")),
        "{severe:?}"
    );
}

/// A wrong TOTP code is refused with the one generic message and no session; the right one (by
/// oathtool) opens the dashboard. The console speaks Japanese until English is chosen.
async fn login_needs_the_totp_code_and_the_language_switches(backend: Backend) {
    let console = Console::start(backend, TenantSettings::default(), "").await;
    let admin = console.operator("alice", "admin").await;
    let browser = Browser::start().await;

    open(&browser, &console, "/console/").await;
    browser
        .wait_for_path("the login page", |p| p == "/console/login")
        .await;
    let html = browser.find("html").await;
    assert_eq!(html.attr("lang").await.as_deref(), Some("ja"));

    // Wrong code: neither this step's nor the next one's.
    let codes = totp_codes(&admin.secret);
    let wrong = (0..10u32)
        .map(|d| format!("{d}{}", &codes[0][1..]))
        .find(|c| !codes.contains(c))
        .expect("a wrong code");
    submit_login(&browser, &console, &admin, &wrong).await;
    browser.find("#login-error").await;
    assert_eq!(path_of(&browser.current_url().await), "/console/login");
    assert!(browser.cookie("jf_console").await.is_none(), "no session");
    browser.assert_clean_log_except(&["status of 401"]).await;

    login(&browser, &console, &admin).await;
    assert!(browser.text("#whoami").await.contains("admin"));
    let cookie = browser
        .cookie("jf_console")
        .await
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["secure"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(cookie["path"], "/console", "{cookie}");
    // Nothing decided yet: the table and the health, no chart.
    browser.find("#decisions-table").await;
    browser.find("#no-scores").await;
    assert!(browser.try_find("#score-chart").await.is_none());
    assert_eq!(
        browser
            .find("#health-database")
            .await
            .attr("data-state")
            .await
            .as_deref(),
        Some("ok")
    );
    open(&browser, &console, "/console/settings").await;
    browser.find("#settings-form").await;
    screenshot(&browser, "settings", &[]).await;
    let japanese = browser.text("#page-title").await;

    // English: the same page, other words.
    browser.click("#lang option[value=en]").await;
    // The form posts back to the same path, so the path cannot tell the new page from the old one:
    // wait for the new page's language instead.
    browser.click("#lang-submit").await;
    browser
        .wait_until("the settings page in English", || async {
            browser.try_find("html[lang=en]").await.is_some()
        })
        .await;
    browser
        .wait_for_path("the settings page again", |p| p == "/console/settings")
        .await;
    browser.assert_clean_log().await;
    assert_eq!(
        browser.find("html").await.attr("lang").await.as_deref(),
        Some("en")
    );
    let english = browser.text("#page-title").await;
    assert_ne!(english, japanese);
    assert!(english.is_ascii(), "{english}");

    logout(&browser).await;
    open(&browser, &console, "/console/").await;
    browser
        .wait_for_path("the login page after logout", |p| p == "/console/login")
        .await;
}

/// A reviewer works the queue: the evidence loads, one case is approved and one rejected (the API
/// sees both decisions), and the enrollment's page shows the history and a verified audit chain.
async fn a_reviewer_approves_one_case_and_rejects_another(backend: Backend) {
    let console = Console::start(backend, review_settings(), "").await;
    let first_person = console.enroll(&cards().a).await;
    assert_eq!(first_person["status"], "verified");
    let first = console.in_review().await;
    let second = console.in_review().await;
    let reviewer = console.operator("rita", "reviewer").await;
    let browser = Browser::start().await;
    login(&browser, &console, &reviewer).await;

    browser.click("#nav-reviews").await;
    browser
        .wait_for_path("the review queue", |p| p == "/console/reviews")
        .await;
    browser.assert_clean_log().await;
    let mut queued = Vec::new();
    for row in browser.find_all("#reviews-table tr[data-id]").await {
        queued.push(row.attr("data-id").await.unwrap_or_default());
    }
    assert_eq!(queued, vec![first.clone(), second.clone()], "oldest first");
    screenshot(&browser, "review-queue", &[]).await;

    // The first: both photos load (reviewers see the evidence), then approve.
    browser
        .click(&format!(
            "#reviews-table tr[data-id='{first}'] a.review-link"
        ))
        .await;
    let review_path = format!("/console/reviews/{first}");
    browser
        .wait_for_path("the review page", |p| p == review_path)
        .await;
    for img in ["#chip-photo", "#selfie"] {
        browser
            .wait_until(&format!("{img} loaded"), || async {
                browser
                    .find(img)
                    .await
                    .property("naturalWidth")
                    .await
                    .as_u64()
                    > Some(0)
            })
            .await;
    }
    browser.assert_clean_log().await;
    assert!(browser.find("#scores").await.text().await.len() > 1);
    screenshot(&browser, "review", &["#chip-photo", "#selfie"]).await;
    browser
        .click("#reason_code option[value=verified_by_reviewer]")
        .await;
    browser.fill("#note", "same person, checked by hand").await;
    submit_and_wait(&browser, "#approve", "the queue after approving", |p| {
        p == "/console/reviews?done=decided"
    })
    .await;
    browser.find("#flash").await;
    browser.assert_clean_log().await;
    assert_eq!(console.status(&first).await, "verified");

    // The second: reject.
    open(&browser, &console, &format!("/console/reviews/{second}")).await;
    browser
        .click("#reason_code option[value=face_mismatch]")
        .await;
    submit_and_wait(&browser, "#reject", "the queue after rejecting", |p| {
        p == "/console/reviews?done=decided"
    })
    .await;
    browser.assert_clean_log().await;
    assert_eq!(console.status(&second).await, "rejected");
    assert!(browser
        .find_all("#reviews-table tr[data-id]")
        .await
        .is_empty());

    // The dashboard counts today's decisions and draws the scores against the threshold.
    open(&browser, &console, "/console/").await;
    browser.find("#score-chart").await;
    let mut decided = 0;
    for row in browser.find_all("#decisions-table tr[data-day]").await {
        let total = row.text().await;
        decided += total
            .split_whitespace()
            .last()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
    }
    assert!(decided >= 3, "decisions counted: {decided}");
    screenshot(&browser, "dashboard", &[]).await;

    // The enrollments list and the decided enrollment's page.
    open(&browser, &console, "/console/enrollments").await;
    let rows = browser.find_all("#enrollments-table tr[data-id]").await;
    assert_eq!(rows.len(), 3);
    screenshot(&browser, "enrollments", &[]).await;
    open(&browser, &console, &format!("/console/enrollments/{first}")).await;
    assert_eq!(
        browser
            .find("#chain-status")
            .await
            .attr("data-verified")
            .await
            .as_deref(),
        Some("true")
    );
    assert!(browser.find_all("#history tr").await.len() >= 2);
    assert!(!browser
        .find_all("#audit-trail tr[data-seq]")
        .await
        .is_empty());
    screenshot(&browser, "enrollment", &[]).await;
}

/// Under the four-eyes rule a reviewer's approve waits for a second one, the same reviewer cannot be
/// the second, another reviewer can. A reviewer deciding a case that was decided meanwhile (by the
/// API) is told so and changes nothing.
async fn four_eyes_needs_a_second_reviewer_and_a_late_decision_sees_the_first(backend: Backend) {
    let settings = TenantSettings {
        review_four_eyes: Some(true),
        ..review_settings()
    };
    let console = Console::start(backend, settings, "").await;
    console.enroll(&cards().a).await;
    let case = console.in_review().await;
    let raced = console.in_review().await;
    let (first, second) = (
        console.operator("rita", "reviewer").await,
        console.operator("rob", "reviewer").await,
    );
    let browser = Browser::start().await;
    let review_path = format!("/console/reviews/{case}");
    let approve = || async {
        open(&browser, &console, &review_path).await;
        browser
            .click("#reason_code option[value=verified_by_reviewer]")
            .await;
        browser.click("#approve").await;
    };

    login(&browser, &console, &first).await;
    approve().await;
    browser
        .wait_for_path("the queue after the first approve", |p| {
            p == "/console/reviews?done=awaiting_second"
        })
        .await;
    browser.find("#flash").await;
    browser.assert_clean_log().await;
    assert_eq!(console.status(&case).await, "in_review");
    open(&browser, &console, &review_path).await;
    let state = browser.find("#four-eyes-state").await;
    assert_eq!(
        state.attr("data-state").await.as_deref(),
        Some("awaiting_second")
    );
    // The same reviewer again: refused.
    approve().await;
    let page = browser.find(".error-page[data-code]").await;
    assert_eq!(page.attr("data-code").await.as_deref(), Some("conflict"));
    browser.assert_clean_log_except(&["status of 409"]).await;
    assert_eq!(console.status(&case).await, "in_review");
    open(&browser, &console, "/console/").await;
    logout(&browser).await;

    login(&browser, &console, &second).await;
    approve().await;
    browser
        .wait_for_path("the queue after the second approve", |p| {
            p == "/console/reviews?done=decided"
        })
        .await;
    browser.assert_clean_log().await;
    assert_eq!(console.status(&case).await, "verified");

    // A late decision: the page is open, the API rejects meanwhile, the reviewer's reject is refused.
    open(&browser, &console, &format!("/console/reviews/{raced}")).await;
    browser
        .click("#reason_code option[value=face_mismatch]")
        .await;
    let response = console
        .app
        .client
        .post(console.url(&format!("/v1/enrollments/{raced}/review")))
        .bearer_auth(&console.key)
        .json(&json!({"decision": "reject", "reason_code": "duplicate_person", "reviewer": "case-tool-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    browser.click("#reject").await;
    let page = browser.find(".error-page[data-code]").await;
    assert_eq!(page.attr("data-code").await.as_deref(), Some("conflict"));
    browser.assert_clean_log_except(&["status of 409"]).await;
    assert_eq!(console.status(&raced).await, "rejected");
}

/// A form on another site (cookie not sent: SameSite=Strict) and one on the same site but another
/// origin (cookie sent: the origin and token checks refuse it) both try to revoke the bank's key; a
/// same-origin POST with a wrong token is refused too. The key still works afterwards.
async fn a_cross_site_or_cross_origin_form_changes_nothing(backend: Backend) {
    let console = Console::start(backend, TenantSettings::default(), "").await;
    let admin = console.operator("alice", "admin").await;
    let browser = Browser::start().await;
    login(&browser, &console, &admin).await;
    let target = console.url(&format!("/console/keys/{}/revoke", console.key_id));
    let attack = format!(
        r#"<!doctype html><html><head><title>win a prize</title><link rel="icon" href="data:,"></head><body>
<form id="f" method="post" action="{target}"><input type="hidden" name="csrf" value="forged"></form>
<script>document.getElementById("f").submit();</script></body></html>"#
    );

    for host in ["localhost", "127.0.0.1"] {
        let site = Site::serve(host, attack.clone()).await;
        browser.goto(&site.base).await;
        browser
            .wait_for_path("the console's answer to the attack", |p| {
                p.starts_with("/console/")
            })
            .await;
        // Whatever page the console answered, it is not the key page after a revocation.
        let url = browser.current_url().await;
        assert!(!url.contains("done=revoked"), "{url}");
        if host == "localhost" {
            // Another site: the SameSite=Strict cookie stayed home, the console saw a stranger.
            assert_eq!(path_of(&url), "/console/login", "{url}");
        } else {
            // The same site, another origin: the cookie went along, the checks refused the form.
            let page = browser.find(".error-page[data-code]").await;
            assert_eq!(page.attr("data-code").await.as_deref(), Some("csrf_failed"));
        }
        browser
            .assert_clean_log_except(&["status of 403", "status of 401"])
            .await;
        assert_eq!(console.api_status_with(&console.key).await, 200, "{host}");
    }

    // The operator's own session with a wrong token, from the console's own origin: refused.
    open(&browser, &console, "/console/keys").await;
    let session = browser.cookie("jf_console").await.expect("still logged in")["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let token = csrf_token(&browser).await;
    for (csrf, origin) in [
        ("forged", console.app.base.as_str()),
        (token.as_str(), "null"),
    ] {
        let response = console
            .app
            .client
            .post(&target)
            .header("cookie", format!("jf_console={session}"))
            .header("origin", origin)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "csrf {csrf}, origin {origin}");
    }
    assert_eq!(console.api_status_with(&console.key).await, 200);
    let row = browser
        .find(&format!("#keys-table tr[data-id='{}']", console.key_id))
        .await;
    assert_eq!(row.attr("data-state").await.as_deref(), Some("live"));
}

/// A webhook delivery that failed (its only attempt got a 500) is sent again by the retry button,
/// and the receiver, answering 204 now, gets it.
async fn the_retry_button_delivers_a_failed_webhook(backend: Backend) {
    let console = Console::start(
        backend,
        TenantSettings::default(),
        "[webhooks]\npoll_interval_ms = 100\nmax_attempts = 1\nattempt_timeout_ms = 2000\nconnect_timeout_ms = 500\nlease_secs = 5\n",
    )
    .await;
    let receiver = Receiver::start(1).await;
    let response = console
        .app
        .client
        .post(console.url("/v1/webhooks"))
        .bearer_auth(&console.key)
        .json(&json!({"url": receiver.url, "events": ["enrollment.verified"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    console.enroll(&cards().a).await;
    let admin = console.operator("alice", "admin").await;
    let browser = Browser::start().await;
    login(&browser, &console, &admin).await;

    reload_until(
        &browser,
        &console,
        "/console/webhooks",
        "table.deliveries tr[data-status=failed]",
    )
    .await;
    assert_eq!(receiver.all().len(), 1);
    let delivery = browser
        .find("table.deliveries tr[data-status=failed]")
        .await
        .attr("data-id")
        .await
        .expect("a delivery id");
    submit_and_wait(
        &browser,
        &format!("#retry-{delivery}"),
        "the webhooks page after retrying",
        |p| p == "/console/webhooks?done=retried",
    )
    .await;
    browser.assert_clean_log().await;
    reload_until(
        &browser,
        &console,
        "/console/webhooks",
        &format!("table.deliveries tr[data-id='{delivery}'][data-status=delivered]"),
    )
    .await;
    assert_eq!(receiver.all().len(), 2);
    screenshot(&browser, "webhooks", &[]).await;
}

/// A key made in the console is shown once and works over HTTP; revoked there, it gets 401.
async fn an_api_key_is_shown_once_and_revoked_keys_get_401(backend: Backend) {
    let console = Console::start(backend, TenantSettings::default(), "").await;
    let admin = console.operator("alice", "admin").await;
    let browser = Browser::start().await;
    login(&browser, &console, &admin).await;

    browser.click("#nav-keys").await;
    browser
        .wait_for_path("the keys page", |p| p == "/console/keys")
        .await;
    browser.assert_clean_log().await;
    browser.click("#key-create").await;
    let key = browser.text("#new-key").await;
    let key_id = browser.text("#new-key-id").await;
    browser.assert_clean_log().await;
    assert!(key.starts_with("jfk_live_"), "{key}");
    assert_eq!(console.api_status_with(&key).await, 200);

    open(&browser, &console, "/console/keys").await;
    assert!(!browser.source().await.contains(&key), "shown once only");
    let row = format!("#keys-table tr[data-id='{key_id}']");
    assert_eq!(
        browser.find(&row).await.attr("data-state").await.as_deref(),
        Some("live")
    );
    submit_and_wait(
        &browser,
        &format!("#revoke-{key_id}"),
        "the keys page after revoking",
        |p| p == "/console/keys?done=revoked",
    )
    .await;
    browser.assert_clean_log().await;
    assert_eq!(
        browser.find(&row).await.attr("data-state").await.as_deref(),
        Some("revoked")
    );
    screenshot(&browser, "keys", &[]).await;
    assert_eq!(console.api_status_with(&key).await, 401);
    assert_eq!(console.api_status_with(&console.key).await, 200);
}

/// The bank's operator asks for an enrollment of another tenant by its id: not found, on the
/// enrollment page and on the review page; the bank's own one opens.
async fn another_tenants_enrollment_is_not_found(backend: Backend) {
    let console = Console::start(backend, TenantSettings::default(), "").await;
    let own = console.enroll(&cards().a).await;
    let own = own["id"].as_str().unwrap().to_string();
    let theirs = enroll_with_key(&console.app, &console.app.api_key, &cards().a).await;
    let theirs = theirs["id"].as_str().unwrap().to_string();
    let admin = console.operator("alice", "admin").await;
    let browser = Browser::start().await;
    login(&browser, &console, &admin).await;

    open(&browser, &console, &format!("/console/enrollments/{own}")).await;
    browser.find("#status").await;
    for path in [
        format!("/console/enrollments/{theirs}"),
        format!("/console/reviews/{theirs}"),
        format!("/console/reviews/{theirs}/photo/selfie"),
    ] {
        browser.goto(&console.url(&path)).await;
        let page = browser.find(".error-page[data-code]").await;
        assert_eq!(
            page.attr("data-code").await.as_deref(),
            Some("not_found"),
            "{path}"
        );
        browser.assert_clean_log_except(&["status of 404"]).await;
    }
}

/// An admin makes a viewer in the console (the TOTP secret shown once); the viewer logs in with it,
/// sees a case without its photos or the decision form, and a forged approve (a valid session and
/// token, sent by hand) is refused: the case stays in review.
async fn a_viewer_made_in_the_console_cannot_approve(backend: Backend) {
    let console = Console::start(backend, review_settings(), "").await;
    console.enroll(&cards().a).await;
    let case = console.in_review().await;
    let admin = console.operator("alice", "admin").await;
    let browser = Browser::start().await;
    login(&browser, &console, &admin).await;

    open(&browser, &console, "/console/operators").await;
    let password = "a viewer's long password";
    browser.fill("#new-login", "victor").await;
    browser.click("#new-role option[value=viewer]").await;
    browser.fill("#new-password", password).await;
    browser.click("#operator-create").await;
    let secret = browser.text("#new-totp-secret").await;
    browser.assert_clean_log().await;
    logout(&browser).await;
    let viewer = Operator {
        login: "victor".into(),
        password: password.into(),
        secret,
    };
    login(&browser, &console, &viewer).await;
    assert!(browser.text("#whoami").await.contains("viewer"));
    assert!(browser.try_find("#nav-keys").await.is_none());

    open(&browser, &console, &format!("/console/reviews/{case}")).await;
    browser.find("#evidence-hidden").await;
    for absent in [
        "#approve",
        "#reject",
        "#review-form",
        "#selfie",
        "#chip-photo",
    ] {
        assert!(browser.try_find(absent).await.is_none(), "{absent}");
    }

    let session = browser.cookie("jf_console").await.expect("a session")["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let token = csrf_token(&browser).await;
    let forged = console
        .app
        .client
        .post(console.url(&format!("/console/reviews/{case}")))
        .header("cookie", format!("jf_console={session}"))
        .header("origin", &console.app.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", token.as_str()),
            ("decision", "approve"),
            ("reason_code", "verified_by_reviewer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged
        .text()
        .await
        .unwrap()
        .contains("data-code=\"forbidden\""));
    let photo = console
        .app
        .client
        .get(console.url(&format!("/console/reviews/{case}/photo/selfie")))
        .header("cookie", format!("jf_console={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 403);
    assert_eq!(console.status(&case).await, "in_review");
}
