//! The back-office console over HTTP (issue 22), on both backends: login with password and TOTP
//! (codes from `oathtool`, the independent judge), replay and lockout, cookie attributes, CSRF,
//! the security headers on every page, roles, tenant isolation, API keys made and revoked through
//! the console and then refused by /v1, and HTML escaping of what the RP sent.

use crate::cards::{cards, photo, A_LATER, A_SELFIE};
use crate::helpers::*;
use jpki_face::domain::{Role, TenantId};
use jpki_face::redact::Secret;
use jpki_face::usecase::operators::{create_operator, NewOperatorRequest};
use serde_json::json;
use std::process::Command;

crate::on_both_backends!(
    login_needs_password_and_a_fresh_totp_code_and_locks_after_failures,
    state_changes_need_the_csrf_token_the_origin_and_the_role,
    enrollment_pages_escape_filter_and_stay_within_the_tenant,
    reviews_are_decided_in_the_console_by_reviewers_with_four_eyes,
    the_retry_button_delivers_an_event_again,
    an_idle_session_ends,
);

const PASSWORD: &str = "correct horse battery staple";
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The TOTP code of `secret` (base32) at now + `offset_steps` × 30 s, computed by oathtool.
fn oathtool(secret: &str, offset_steps: i64) -> String {
    let now = chrono::Utc::now().timestamp() + offset_steps * 30;
    let at = chrono::DateTime::from_timestamp(now, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &at, secret])
        .output()
        .expect("oathtool runs (scripts/ensure-tools.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One browser-like client: no redirects followed, cookies kept by hand.
struct Console {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a csrf field") + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }

    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    fn assert_hardened(&self) {
        assert_eq!(self.headers["content-security-policy"], CSP);
        assert_eq!(self.headers["x-frame-options"], "DENY");
        assert_eq!(self.headers["referrer-policy"], "no-referrer");
        assert_eq!(self.headers["cache-control"], "no-store");
    }
}

impl Console {
    fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for v in headers.get_all("set-cookie").iter() {
            let text = v.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), val.to_string()));
            }
        }
        Page {
            status,
            headers,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[]).await
    }

    async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        self.keep(r).await
    }

    async fn login(&mut self, tenant: &TenantId, login: &str, password: &str, code: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[
                ("csrf", &csrf),
                ("tenant", tenant.as_str()),
                ("login", login),
                ("password", password),
                ("totp", code),
            ],
        )
        .await
    }
}

/// An operator of `tenant`; returns its TOTP secret (base32).
async fn operator(app: &TestApp, tenant: &TenantId, login: &str, role: Role) -> String {
    let created = create_operator(
        app.ctx.svc.store.as_ref(),
        &app.ctx.svc.keys,
        tenant,
        NewOperatorRequest {
            login: login.into(),
            role,
            password: Secret::new(PASSWORD.into()),
        },
        None,
    )
    .await
    .expect("operator");
    created.totp_secret.expose().clone()
}

async fn audit_events(app: &TestApp, tenant: &TenantId) -> Vec<(String, String)> {
    app.ctx
        .svc
        .store
        .audit_rows(tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.event, r.subject))
        .collect()
}

/// A logged-in console of a new operator with `role` (the code of the next step, so that several
/// logins in one 30-s window each have a fresh step).
async fn logged_in(app: &TestApp, tenant: &TenantId, login: &str, role: Role) -> Console {
    let secret = operator(app, tenant, login, role).await;
    let mut c = Console::new(app);
    let page = c
        .login(tenant, login, PASSWORD, &oathtool(&secret, 0))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    c
}

async fn login_needs_password_and_a_fresh_totp_code_and_locks_after_failures(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant_id.clone();
    let secret = operator(&app, &tenant, "alice", Role::Admin).await;
    let mut c = Console::new(&app);

    // Not logged in: every page sends to the login form.
    let page = c.get("/console/").await;
    assert_eq!((page.status, page.location()), (303, "/console/login"));
    let form = c.get("/console/login").await;
    form.assert_hardened();
    assert!(
        form.body.contains("<html lang=\"ja\">"),
        "Japanese by default"
    );
    assert!(form.body.contains("label for=\"totp\""));
    let nonce = form.set_cookie("jf_login").expect("the login nonce cookie");
    assert!(
        nonce.contains("HttpOnly") && nonce.contains("SameSite=Strict") && nonce.contains("Secure")
    );

    // A wrong code, then a code from two steps ago: refused with one generic message.
    let wrong = c.login(&tenant, "alice", PASSWORD, "000000").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("id=\"login-error\""));
    assert!(wrong.set_cookie("jf_console").is_none());
    let stale = c
        .login(&tenant, "alice", PASSWORD, &oathtool(&secret, -2))
        .await;
    assert_eq!(stale.status, 401);

    // The right password and the current code: a session cookie with every attribute.
    let code = oathtool(&secret, 0);
    let ok = c.login(&tenant, "alice", PASSWORD, &code).await;
    assert_eq!(
        (ok.status, ok.location()),
        (303, "/console/"),
        "{}",
        ok.body
    );
    let session = ok.set_cookie("jf_console").expect("session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    let token = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(token.len() >= 43, "256 random bits");
    let dashboard = c.get("/console/").await;
    assert_eq!(dashboard.status, 200);
    dashboard.assert_hardened();
    assert!(dashboard.body.contains("id=\"whoami\">alice (admin)"));
    assert!(dashboard.body.contains("id=\"decisions-table\""));

    // The same code again (a replay), from another client: refused.
    let mut other = Console::new(&app);
    let replay = other.login(&tenant, "alice", PASSWORD, &code).await;
    assert_eq!(replay.status, 401);

    // Logout ends the session on the server: the old cookie no longer opens a page.
    let csrf = dashboard.csrf();
    let out = c.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (303, "/console/login"));
    let mut stale_cookie = Console::new(&app);
    stale_cookie.cookies.push(("jf_console".into(), token));
    assert_eq!(stale_cookie.get("/console/").await.status, 303);

    // Lockout: five wrong passwords lock bob; then even the right password and code are refused.
    let bob = operator(&app, &tenant, "bob", Role::Viewer).await;
    let mut b = Console::new(&app);
    for _ in 0..5 {
        let r = b
            .login(&tenant, "bob", "wrong password!!", &oathtool(&bob, 0))
            .await;
        assert_eq!(r.status, 401);
    }
    let locked = b.login(&tenant, "bob", PASSWORD, &oathtool(&bob, 1)).await;
    assert_eq!(locked.status, 401, "locked out");
    // An unknown login and an unknown tenant answer the same way.
    assert_eq!(
        b.login(&tenant, "nobody", PASSWORD, "123456").await.status,
        401
    );
    assert_eq!(
        b.login(&TenantId::new(), "alice", PASSWORD, "123456")
            .await
            .status,
        401
    );

    let events = audit_events(&app, &tenant).await;
    let count = |kind: &str| events.iter().filter(|(e, _)| e == kind).count();
    assert_eq!(count("operator.created"), 2);
    assert_eq!(count("operator.login"), 1);
    assert_eq!(count("operator.logout"), 1);
    assert_eq!(count("operator.locked"), 1);
    // alice: wrong, stale, replay; bob: five wrong passwords, then the locked attempt.
    assert_eq!(count("operator.login_failed"), 3 + 5 + 1);
    assert!(events
        .iter()
        .filter(|(e, _)| e.starts_with("operator."))
        .all(|(_, subject)| subject.starts_with("opr_")));
    // Nothing of the secrets reached the audit log.
    let rows = app.ctx.svc.store.audit_rows(&tenant).await.unwrap();
    assert!(rows
        .iter()
        .all(|r| !r.details.contains(PASSWORD) && !r.details.contains(&secret)));
}

async fn state_changes_need_the_csrf_token_the_origin_and_the_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant_id.clone();
    let mut admin = logged_in(&app, &tenant, "admin", Role::Admin).await;
    let keys_before = app
        .ctx
        .svc
        .store
        .list_api_keys(&tenant)
        .await
        .unwrap()
        .len();

    let page = admin.get("/console/keys").await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    // No token, a wrong token, a foreign origin, a cross-site fetch: 403 and nothing made.
    for (form, headers) in [
        (vec![], vec![]),
        (vec![("csrf", "forged")], vec![]),
        (
            vec![("csrf", csrf.as_str())],
            vec![("origin", "http://evil.example")],
        ),
        (
            vec![("csrf", csrf.as_str())],
            vec![("sec-fetch-site", "cross-site")],
        ),
    ] {
        let r = admin.post_with("/console/keys", &form, &headers).await;
        assert_eq!(r.status, 403, "{form:?} {headers:?}");
        assert!(r.body.contains("data-code=\"csrf_failed\""), "{}", r.body);
        r.assert_hardened();
    }
    assert_eq!(
        app.ctx
            .svc
            .store
            .list_api_keys(&tenant)
            .await
            .unwrap()
            .len(),
        keys_before
    );

    // A same-origin post with the token: the key is shown once and works on /v1.
    let host = app.base.trim_start_matches("http://").to_string();
    let origin = format!("http://{host}");
    let created = admin
        .post_with("/console/keys", &[("csrf", &csrf)], &[("origin", &origin)])
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let key = created
        .body
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new key is shown")
        .to_string();
    let key_id = created
        .body
        .split("id=\"new-key-id\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    assert!(key.starts_with("jfk_live_"));
    let v1 = |key: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/v1/enrollments"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(v1(key.clone()).await, 200);
    let revoked = admin
        .post(
            &format!("/console/keys/{key_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        (revoked.status, revoked.location()),
        (303, "/console/keys?done=revoked")
    );
    assert_eq!(v1(key).await, 401);
    let events = audit_events(&app, &tenant).await;
    assert!(events.contains(&("api_key.created".into(), key_id.clone())));
    assert!(events.contains(&("api_key.revoked".into(), key_id.clone())));

    // Settings: refused when invalid (nothing stored), saved when valid.
    let bad = admin
        .post(
            "/console/settings",
            &[("csrf", &csrf), ("settings", r#"{"require_hojoo": true}"#)],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"error\""));
    let good = admin
        .post(
            "/console/settings",
            &[("csrf", &csrf), ("settings", r#"{"require_hojo": false}"#)],
        )
        .await;
    assert_eq!(good.status, 303);
    let stored = app
        .ctx
        .svc
        .store
        .get_tenant(&tenant)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.settings.require_hojo, Some(false));

    // A viewer reads but changes nothing, and sees no admin page.
    let mut viewer = logged_in(&app, &tenant, "viewer", Role::Viewer).await;
    let dash = viewer.get("/console/").await;
    assert_eq!(dash.status, 200);
    assert!(!dash.body.contains("id=\"nav-keys\""));
    let vcsrf = dash.csrf();
    let refused = viewer.post("/console/keys", &[("csrf", &vcsrf)]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("data-code=\"forbidden\""));
    assert_eq!(viewer.get("/console/keys").await.status, 403);
    let keys_after = app.ctx.svc.store.list_api_keys(&tenant).await.unwrap();
    assert_eq!(keys_after.len(), keys_before + 1);

    // Every page carries the headers; the English switch works.
    for path in [
        "/console/",
        "/console/enrollments",
        "/console/reviews",
        "/console/webhooks",
        "/console/keys",
        "/console/settings",
        "/console/operators",
        "/console/no-such-page",
        "/console/static/console.css",
    ] {
        let p = admin.get(path).await;
        assert!(matches!(p.status, 200 | 404), "{path}: {}", p.status);
        p.assert_hardened();
    }
    let switched = admin
        .post(
            "/console/lang",
            &[("csrf", &csrf), ("lang", "en"), ("back", "/console/keys")],
        )
        .await;
    assert_eq!(
        (switched.status, switched.location()),
        (303, "/console/keys")
    );
    let english = admin.get("/console/keys").await;
    assert!(english.body.contains("<html lang=\"en\">"));
    assert!(english.body.contains("Create an API key"));

    // Operators: an admin creates one (its TOTP secret shown once) and disables it.
    let made = admin
        .post(
            "/console/operators",
            &[
                ("csrf", &csrf),
                ("login", "carol"),
                ("role", "reviewer"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.body.contains("id=\"new-totp-secret\""));
    let carol = made
        .body
        .split("id=\"new-operator-id\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_string();
    let disabled = admin
        .post(
            &format!("/console/operators/{carol}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(disabled.status, 303);
    let events = audit_events(&app, &tenant).await;
    assert!(events.contains(&("operator.disabled".into(), carol)));
}

async fn enrollment_pages_escape_filter_and_stay_within_the_tenant(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let tenant = app.tenant_id.clone();
    let hostile = "<script>alert(1)</script>";
    let session = open_session(
        &app,
        json!({"purpose": "enrollment", "subject_ref": hostile}),
    )
    .await;
    let card = cards().sign(&cards().a, &session);
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_eq!(response.status(), 201);
    let enrolled: serde_json::Value = response.json().await.unwrap();
    assert_eq!(enrolled["status"], "verified", "{enrolled:#}");
    let id = enrolled["id"].as_str().unwrap().to_string();
    let plain = enroll_person_a(&app).await;

    let mut c = logged_in(&app, &tenant, "olivia", Role::Viewer).await;
    let list = c.get("/console/enrollments").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&format!("data-id=\"{id}\"")));
    assert!(list.body.contains(&format!("data-id=\"{plain}\"")));
    assert!(
        !list.body.contains(hostile),
        "the subject reference is escaped"
    );
    assert!(list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));

    // The subject filter goes by POST and stays in the session; the list then shows only it.
    let csrf = list.csrf();
    let set = c
        .post(
            "/console/enrollments/subject",
            &[("csrf", &csrf), ("subject_ref", hostile)],
        )
        .await;
    assert_eq!((set.status, set.location()), (303, "/console/enrollments"));
    let filtered = c.get("/console/enrollments").await;
    assert!(filtered.body.contains(&format!("data-id=\"{id}\"")));
    assert!(!filtered.body.contains(&format!("data-id=\"{plain}\"")));
    assert!(filtered.body.contains("id=\"subject-filter-active\""));
    let cleared = c
        .post(
            "/console/enrollments/subject",
            &[("csrf", &csrf), ("clear", "1")],
        )
        .await;
    assert_eq!(cleared.status, 303);
    let all = c.get("/console/enrollments").await;
    assert!(all.body.contains(&format!("data-id=\"{plain}\"")));

    // Status and reason filters (a verified enrollment has no reasons).
    let verified = c.get("/console/enrollments?status=verified").await;
    assert!(verified.body.contains(&format!("data-id=\"{plain}\"")));
    let rejected = c.get("/console/enrollments?status=rejected").await;
    assert!(!rejected.body.contains(&format!("data-id=\"{plain}\"")));
    let by_reason = c.get("/console/enrollments?reason=face_mismatch").await;
    assert_eq!(by_reason.status, 200);
    assert!(!by_reason.body.contains(&format!("data-id=\"{plain}\"")));
    assert_eq!(
        c.get("/console/enrollments?status=nonsense").await.status,
        400
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let dated = c
        .get(&format!("/console/enrollments?from={today}&to={today}"))
        .await;
    assert!(dated.body.contains(&format!("data-id=\"{plain}\"")));

    // The enrollment's page: its audit trail with the chain verified.
    let detail = c.get(&format!("/console/enrollments/{id}")).await;
    assert_eq!(detail.status, 200);
    assert!(
        detail.body.contains("data-verified=\"true\""),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("enrollment.created"));
    assert!(!detail.body.contains(hostile));
    // The dashboard counts today's enrollments from the per-day counters.
    let dash = c.get("/console/?days=30").await;
    assert!(dash.body.contains(&format!("data-day=\"{today}\"")));
    assert!(dash.body.contains("id=\"score-chart\""));

    // Another tenant's operator: the enrollment does not exist for it.
    let (other, _) = app.other_tenant().await;
    let mut stranger = logged_in(&app, &other, "mallory", Role::Admin).await;
    let hidden = stranger.get(&format!("/console/enrollments/{id}")).await;
    assert_eq!(hidden.status, 404);
    assert!(hidden.body.contains("data-code=\"not_found\""));
    assert!(!stranger
        .get("/console/enrollments")
        .await
        .body
        .contains(&id));
    assert_eq!(
        stranger.get(&format!("/console/reviews/{id}")).await.status,
        404
    );
    assert_eq!(
        stranger.get("/console/enrollments/not-an-id").await.status,
        404
    );
}

/// Enrolls `person`'s card with `selfie` through the RP's backend with `key`; returns the answer.
async fn enroll_as(
    app: &TestApp,
    key: &str,
    person: &jpki_face::devcard::PersonId,
    selfie: &str,
) -> serde_json::Value {
    let response = app
        .post_session(
            key,
            &json!({"purpose": "enrollment", "subject_ref": "review-subject"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let session: serde_json::Value = response.json().await.unwrap();
    let card = cards().sign(person, &session);
    let form = reqwest::multipart::Form::new()
        .part(
            "card",
            reqwest::multipart::Part::text(card.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "selfie",
            reqwest::multipart::Part::bytes(std::fs::read(photo(selfie)).unwrap())
                .file_name("selfie.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
    let response = app
        .client
        .post(app.url(&format!(
            "/v1/sessions/{}/enrollment",
            session["id"].as_str().unwrap()
        )))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn reviews_are_decided_in_the_console_by_reviewers_with_four_eyes(backend: Backend) {
    use jpki_face::domain::search::CheckMode;
    use jpki_face::store::TenantSettings;
    let app = spawn_app_with(cards().app_options(backend)).await;
    let (tenant, _, key) = jpki_face::usecase::tenants::create_tenant_with(
        app.ctx.svc.store.as_ref(),
        "bank",
        TenantSettings {
            duplicate_check: Some(CheckMode::Review),
            review_four_eyes: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (tenant, key) = (tenant.id, key.expose().clone());
    let first = enroll_as(&app, &key, &cards().a, A_SELFIE).await;
    assert_eq!(first["status"], "verified", "{first:#}");
    let one = enroll_as(&app, &key, &cards().a_other_identity, A_SELFIE).await;
    let two = enroll_as(&app, &key, &cards().a_other_identity, A_LATER).await;
    assert_eq!(one["status"], "in_review", "{one:#}");
    assert_eq!(two["status"], "in_review", "{two:#}");
    let one = one["id"].as_str().unwrap().to_string();
    let two = two["id"].as_str().unwrap().to_string();

    // A viewer sees the queue and the case, but no photo, and cannot decide.
    let mut viewer = logged_in(&app, &tenant, "vera", Role::Viewer).await;
    let queue = viewer.get("/console/reviews").await;
    assert_eq!(queue.status, 200);
    assert!(queue.body.contains(&format!("data-id=\"{one}\"")));
    assert!(queue.body.contains(&format!("data-id=\"{two}\"")));
    let case = viewer.get(&format!("/console/reviews/{one}")).await;
    assert_eq!(case.status, 200);
    assert!(case.body.contains("id=\"evidence-hidden\""));
    assert!(!case.body.contains("id=\"chip-photo\""));
    let vcsrf = case.csrf();
    let refused = viewer
        .post(
            &format!("/console/reviews/{one}"),
            &[
                ("csrf", &vcsrf),
                ("decision", "approve"),
                ("reason_code", "verified_by_reviewer"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("data-code=\"forbidden\""));
    assert_eq!(
        viewer
            .get(&format!("/console/reviews/{one}/photo/selfie"))
            .await
            .status,
        403
    );

    // A reviewer sees both photos side by side; each view is audited naming the operator.
    let mut r1 = logged_in(&app, &tenant, "rita", Role::Reviewer).await;
    let case = r1.get(&format!("/console/reviews/{one}")).await;
    assert!(case.body.contains("id=\"chip-photo\"") && case.body.contains("id=\"selfie\""));
    assert!(case.body.contains("data-state=\"none\""));
    let photo = r1
        .get(&format!("/console/reviews/{one}/photo/chip_photo"))
        .await;
    assert_eq!(photo.status, 200);
    assert!(photo.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("image/"));
    photo.assert_hardened();
    let rows = app.ctx.svc.store.audit_rows(&tenant).await.unwrap();
    let viewed: Vec<_> = rows
        .iter()
        .filter(|r| r.event == "review.evidence_viewed")
        .collect();
    assert_eq!(viewed.len(), 1);
    let rita = app
        .ctx
        .svc
        .store
        .operator_by_login(&tenant, "rita")
        .await
        .unwrap()
        .unwrap();
    assert!(
        viewed[0].details.contains(rita.id.as_str()),
        "{}",
        viewed[0].details
    );

    // Without the CSRF token nothing is decided.
    let csrf = case.csrf();
    let forged = r1
        .post(
            &format!("/console/reviews/{one}"),
            &[
                ("decision", "approve"),
                ("reason_code", "verified_by_reviewer"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    let approve = [
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
        ("reason_code", "verified_by_reviewer"),
    ];
    // Four-eyes: the first approve waits; the same reviewer cannot give the second.
    let first_ok = r1.post(&format!("/console/reviews/{one}"), &approve).await;
    assert_eq!(
        (first_ok.status, first_ok.location()),
        (303, "/console/reviews?done=awaiting_second")
    );
    let waiting = r1.get(&format!("/console/reviews/{one}")).await;
    assert!(
        waiting.body.contains("data-state=\"awaiting_second\""),
        "{}",
        waiting.body
    );
    let again = r1.post(&format!("/console/reviews/{one}"), &approve).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("data-code=\"conflict\""));

    // A second reviewer approves: verified. A reject decides at once.
    let mut r2 = logged_in(&app, &tenant, "ralf", Role::Reviewer).await;
    let csrf2 = r2.get("/console/reviews").await.csrf();
    let second = r2
        .post(
            &format!("/console/reviews/{one}"),
            &[
                ("csrf", &csrf2),
                ("decision", "approve"),
                ("reason_code", "verified_by_reviewer"),
            ],
        )
        .await;
    assert_eq!(
        (second.status, second.location()),
        (303, "/console/reviews?done=decided")
    );
    let rejected = r2
        .post(
            &format!("/console/reviews/{two}"),
            &[
                ("csrf", &csrf2),
                ("decision", "reject"),
                ("reason_code", "duplicate_person"),
                ("note", "same face as an earlier customer"),
            ],
        )
        .await;
    assert_eq!(
        (rejected.status, rejected.location()),
        (303, "/console/reviews?done=decided")
    );
    let late = r1
        .post(
            &format!("/console/reviews/{two}"),
            &[
                ("csrf", &csrf),
                ("decision", "reject"),
                ("reason_code", "other"),
            ],
        )
        .await;
    assert_eq!(late.status, 409, "decided exactly once");
    let one_page = r2.get(&format!("/console/enrollments/{one}")).await;
    assert!(one_page.body.contains("data-status=\"verified\""));
    let two_page = r2.get(&format!("/console/enrollments/{two}")).await;
    assert!(two_page.body.contains("data-status=\"rejected\""));
    assert!(two_page.body.contains("enrollment.reviewed"));
    let queue = r2.get("/console/reviews").await;
    assert!(!queue.body.contains(&format!("data-id=\"{one}\"")));
    assert!(!queue.body.contains(&format!("data-id=\"{two}\"")));
}

async fn the_retry_button_delivers_an_event_again(backend: Backend) {
    use crate::webhooks::{fast_webhooks, wait_until, Receiver};
    use std::time::Duration;
    let mut options = cards().app_options(backend);
    options.toml.push_str(&fast_webhooks(1000));
    let app = spawn_app_with(options).await;
    let tenant = app.tenant_id.clone();
    let receiver = Receiver::start(0).await;
    let response = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&app.api_key)
        .json(&json!({"url": receiver.url, "events": ["enrollment.verified"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let webhook: serde_json::Value = response.json().await.unwrap();
    enroll_person_a(&app).await;
    wait_until("the first delivery", Duration::from_secs(30), || {
        receiver.of_type("enrollment.verified").len() == 1
    })
    .await;

    let mut viewer = logged_in(&app, &tenant, "vic", Role::Viewer).await;
    assert_eq!(viewer.get("/console/webhooks").await.status, 403);
    let mut admin = logged_in(&app, &tenant, "ada", Role::Admin).await;
    let mut page = admin.get("/console/webhooks").await;
    for _ in 0..100 {
        if page.body.contains("data-status=\"delivered\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = admin.get("/console/webhooks").await;
    }
    assert!(page
        .body
        .contains(&format!("data-id=\"{}\"", webhook["id"].as_str().unwrap())));
    assert!(
        page.body.contains("data-status=\"delivered\""),
        "{}",
        page.body
    );
    let delivery = page
        .body
        .split("id=\"retry-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a retry button")
        .to_string();
    let csrf = page.csrf();
    let action = format!(
        "/console/webhooks/{}/deliveries/{delivery}/retry",
        webhook["id"].as_str().unwrap()
    );
    assert_eq!(admin.post(&action, &[]).await.status, 403, "no CSRF token");
    let retried = admin.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!(
        (retried.status, retried.location()),
        (303, "/console/webhooks?done=retried")
    );
    wait_until("the retried delivery", Duration::from_secs(30), || {
        receiver.of_type("enrollment.verified").len() == 2
    })
    .await;
    let rows = app.ctx.svc.store.audit_rows(&tenant).await.unwrap();
    let retried = rows
        .iter()
        .find(|r| r.event == "webhook.delivery_retried" && r.subject == delivery)
        .expect("the retry is audited");
    let ada = app
        .ctx
        .svc
        .store
        .operator_by_login(&tenant, "ada")
        .await
        .unwrap()
        .unwrap();
    assert!(
        retried.details.contains(ada.id.as_str()),
        "names the operator: {}",
        retried.details
    );
    // Another tenant's admin cannot retry it.
    let (other, _) = app.other_tenant().await;
    let mut stranger = logged_in(&app, &other, "eve", Role::Admin).await;
    let scsrf = stranger.get("/console/webhooks").await.csrf();
    assert_eq!(
        stranger.post(&action, &[("csrf", &scsrf)]).await.status,
        404
    );
}

async fn an_idle_session_ends(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options
        .toml
        .push_str("[console]\nidle_timeout_secs = 1\nabsolute_timeout_secs = 60\n");
    let app = spawn_app_with(options).await;
    let mut c = logged_in(&app, &app.tenant_id, "ida", Role::Viewer).await;
    assert_eq!(c.get("/console/").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let idle = c.get("/console/").await;
    assert_eq!((idle.status, idle.location()), (303, "/console/login"));
}
