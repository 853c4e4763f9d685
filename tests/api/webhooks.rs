//! Webhooks, scheduled status checks and retention over HTTP, against real receivers started here
//! (an axum server that records what it gets, and a TCP listener that never answers), real test
//! cards and the real `openssl ocsp` responder.

use crate::cards::*;
use crate::helpers::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jpki_face::devcard::CrlReason;
use jpki_face::store::CountedTable;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

crate::on_both_backends!(
    endpoints_are_managed_and_a_receiver_failing_twice_gets_the_event_on_the_third_attempt,
    a_silent_receiver_gets_its_endpoint_disabled_after_the_limit,
    the_scheduled_check_finds_a_revoked_card_and_signals_it_once,
    retention_removes_what_it_should_and_nothing_else,
    rejections_and_locks_are_signalled_once_each,
    concurrent_checks_change_the_status_and_signal_it_once,
    the_endpoint_limit_answers_409_limit_reached,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_check_each_enrollment_once_per_interval() {
        super::two_instances_check_each_enrollment_once_per_interval().await
    }
}

/// Fast retries for the tests.
pub(crate) fn fast_webhooks(attempt_timeout_ms: u64) -> String {
    format!("[webhooks]\npoll_interval_ms = 100\nbackoff_base_ms = 200\nbackoff_max_ms = 1000\nattempt_timeout_ms = {attempt_timeout_ms}\nconnect_timeout_ms = 500\nlease_secs = 5\n")
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    headers: HashMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// An HTTP receiver that answers 500 to the first `fail_first` requests, then 204 (the browser suite's
/// retry button is tested against it too).
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Self {
        use axum::http::{HeaderMap, StatusCode};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let mut log = log.lock().unwrap();
                    log.push(Received {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body: body.to_vec(),
                    });
                    if log.len() <= fail_first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hook"),
            received,
        }
    }

    pub(crate) fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub(crate) fn of_type(&self, kind: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.json()["type"] == kind)
            .collect()
    }
}

/// Verifies a Standard Webhooks signature independently of the service's code: HMAC-SHA256 with the
/// decoded `whsec_` key over `{id}.{timestamp}.{body}`, any of the space-separated `v1,` signatures.
fn signature_verifies(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let id = &r.headers["webhook-id"];
    let ts = &r.headers["webhook-timestamp"];
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == expected)
}

/// The checks a receiver makes besides the signature.
fn assert_well_formed(r: &Received) {
    let body = r.json();
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        body["id"],
        r.headers["webhook-id"].as_str(),
        "the id header names the event"
    );
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - ts).abs() < 300,
        "fresh timestamp"
    );
    assert!(body["created_at"].is_string());
    assert!(body["data"]["enrollment_id"]
        .as_str()
        .unwrap()
        .starts_with("enr_"));
    assert_no_personal_data(&r.body);
}

/// No name, address, birth date, certificate field or template in a payload.
fn assert_no_personal_data(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    for needle in [
        "山田",
        "太郎",
        "東京都",
        "千代田",
        "霞が関",
        "1990",
        "01-02",
        "male",
        "identity\"",
        "template",
        "serial",
        "subject_ref",
        "customer-1",
        "not_after",
        "issuer",
    ] {
        assert!(!text.contains(needle), "payload {text} carries {needle:?}");
    }
    let v: Value = serde_json::from_slice(body).unwrap();
    let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    for k in &keys {
        assert!(
            [
                "enrollment_id",
                "status",
                "previous_status",
                "reason",
                "reasons",
                "trigger",
                "cause",
                "verification_id"
            ]
            .contains(&k.as_str()),
            "unexpected data field {k}"
        );
    }
}

pub(crate) async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn register(app: &TestApp, url: &str, events: &[&str]) -> Value {
    let response = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&app.api_key)
        .json(&json!({"url": url, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn audit_events(app: &TestApp) -> Vec<jpki_face::store::AuditRow> {
    app.ctx.svc.store.audit_rows(&app.tenant_id).await.unwrap()
}

async fn endpoints_are_managed_and_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(
    backend: Backend,
) {
    let cards = cards();
    let mut options = cards.app_options(backend);
    options.toml.push_str(&fast_webhooks(1000));
    let app = spawn_app_with(options).await;
    let receiver = Receiver::start(2).await;

    // Refused URLs and event types, and the client token, answer in the problem format.
    for bad in [
        json!({"url": "http://rp.example/hook", "events": ["enrollment.verified"]}),
        json!({"url": "ftp://127.0.0.1/hook", "events": ["enrollment.verified"]}),
        json!({"url": receiver.url, "events": []}),
        json!({"url": receiver.url, "events": ["enrollment.nonsense"]}),
    ] {
        let response = app
            .client
            .post(app.url("/v1/webhooks"))
            .bearer_auth(&app.api_key)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "malformed_request").await;
    }
    let session = app.enrollment_session().await;
    let by_token = app
        .client
        .get(app.url("/v1/webhooks"))
        .bearer_auth(client_token(&session))
        .send()
        .await
        .unwrap();
    assert_problem(by_token, 403, "forbidden").await;

    let created = register(
        &app,
        &receiver.url,
        &["enrollment.verified", "enrollment.deleted"],
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 32);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("whk_"));
    let listed = get_json(&app, "/v1/webhooks").await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(listed["webhooks"][0]["enabled"], true);
    // Another tenant sees nothing of it.
    let (_, other_key) = app.other_tenant().await;
    let other = app
        .client
        .get(app.url(&format!("/v1/webhooks/{id}")))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_problem(other, 404, "not_found").await;

    let enrollment = enroll_person_a(&app).await;
    wait_until("the third attempt", Duration::from_secs(30), || {
        receiver.all().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = receiver.all();
    assert_eq!(got.len(), 3, "delivered on the third attempt, then no more");
    let event_ids: Vec<&String> = got.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert!(
        event_ids.iter().all(|e| *e == event_ids[0]),
        "the same event id every attempt"
    );
    for r in &got {
        assert_well_formed(r);
        assert!(signature_verifies(&secret, r), "signature verifies");
        let body = r.json();
        assert_eq!(body["type"], "enrollment.verified");
        assert_eq!(body["data"]["enrollment_id"], enrollment.as_str());
        assert_eq!(body["data"]["status"], "verified");
    }
    // A signature under another key does not verify.
    assert!(!signature_verifies(
        &format!("whsec_{}", STANDARD.encode([7u8; 32])),
        &got[0]
    ));

    let deliveries = get_json(&app, &format!("/v1/webhooks/{id}/deliveries")).await;
    let list = deliveries["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["event_id"], event_ids[0].as_str());
    assert_eq!(d["event_type"], "enrollment.verified");
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 500, 204]);
    assert_eq!(d["attempts"][0]["error"], "http_status");
    assert!(d["attempts"][2]["error"].is_null());

    // Rotation: the next event is signed with the new secret and, during the grace period, the old.
    let rotated: Value = app
        .client
        .post(app.url(&format!("/v1/webhooks/{id}/rotate-secret")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/enrollments/{enrollment}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    wait_until("enrollment.deleted", Duration::from_secs(20), || {
        !receiver.of_type("enrollment.deleted").is_empty()
    })
    .await;
    let gone = &receiver.of_type("enrollment.deleted")[0];
    assert_well_formed(gone);
    assert_eq!(gone.headers["webhook-signature"].split(' ').count(), 2);
    assert!(signature_verifies(&new_secret, gone));
    assert!(signature_verifies(&secret, gone));

    // The audit chain records the endpoint's life.
    let events: Vec<String> = audit_events(&app)
        .await
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert!(events.contains(&"webhook.created".to_string()));
    assert!(events.contains(&"webhook.secret_rotated".to_string()));

    let response = app
        .client
        .delete(app.url(&format!("/v1/webhooks/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(get_json(&app, "/v1/webhooks").await["webhooks"], json!([]));
    let again = app
        .client
        .delete(app.url(&format!("/v1/webhooks/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_problem(again, 404, "not_found").await;
}

async fn a_silent_receiver_gets_its_endpoint_disabled_after_the_limit(backend: Backend) {
    let cards = cards();
    let mut options = cards.app_options(backend);
    options.toml.push_str(&fast_webhooks(400));
    options
        .toml
        .push_str("max_attempts = 2\ndisable_after_failed_deliveries = 1\n");
    let app = spawn_app_with(options).await;
    // Accepts connections and never says anything.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    let created = register(
        &app,
        &format!("http://{addr}/hook"),
        &["enrollment.verified"],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    enroll_person_a(&app).await;

    let start = Instant::now();
    loop {
        let w = get_json(&app, &format!("/v1/webhooks/{id}")).await;
        if w["enabled"] == false {
            assert_eq!(w["disabled_reason"], "consecutive_failures");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never disabled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deliveries = get_json(&app, &format!("/v1/webhooks/{id}/deliveries")).await;
    let d = &deliveries["deliveries"][0];
    assert_eq!(d["status"], "failed");
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "max_attempts");
    for a in attempts {
        assert_eq!(a["error"], "timeout");
        assert!(a["status_code"].is_null());
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    let disabled: Vec<_> = audit_events(&app)
        .await
        .into_iter()
        .filter(|r| r.event == "webhook.disabled")
        .collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].subject, id);
    // Nothing more is sent to a disabled endpoint.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);

    // A retry by hand re-enables it and makes the delivery due at once.
    let delivery_id = d["id"].as_str().unwrap();
    let response = app
        .client
        .post(app.url(&format!("/v1/webhooks/{id}/deliveries/{delivery_id}/retry")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["status"], "pending");
    assert_eq!(
        retried["attempts"].as_array().unwrap().len(),
        2,
        "the earlier attempts stay listed"
    );
    assert_eq!(
        get_json(&app, &format!("/v1/webhooks/{id}")).await["enabled"],
        true
    );
    wait_until(
        "the manual retry's attempt",
        Duration::from_secs(10),
        || accepted.load(std::sync::atomic::Ordering::SeqCst) >= 3,
    )
    .await;
    let unknown = app
        .client
        .post(app.url(&format!(
            "/v1/webhooks/{id}/deliveries/dlv_00000000000000000000000000000000/retry"
        )))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404, "not_found").await;
    assert!(matches!(
        verify_audit(&app).await,
        jpki_face::store::ChainVerdict::Intact { .. }
    ));
}

async fn verify_audit(app: &TestApp) -> jpki_face::store::ChainVerdict {
    jpki_face::store::verify_audit_chain(app.ctx.svc.store.as_ref(), &app.tenant_id)
        .await
        .unwrap()
}

/// The scheduler on a few-second interval, polling often.
fn schedule_toml(interval_secs: u64) -> String {
    format!("[status_checks]\ninterval_secs = {interval_secs}\npoll_interval_ms = 200\nlease_secs = 30\nconcurrency = 2\n")
}

async fn the_scheduled_check_finds_a_revoked_card_and_signals_it_once(backend: Backend) {
    const INTERVAL: u64 = 3;
    let cards = cards();
    // Its own `openssl ocsp` (it answers one request at a time; the shared one is busy with the
    // other tests, and a check it cannot answer in time is only a failure to retry).
    let responder = start_responder(cards.hierarchy.dir());
    let mut options = AppOptions::new(backend);
    options.toml = format!(
        "{}{}{}",
        cards.toml(responder.port),
        fast_webhooks(1000),
        schedule_toml(INTERVAL)
    );
    let app = spawn_app_with(options).await;
    let receiver = Receiver::start(0).await;
    let created = register(&app, &receiver.url, &["enrollment.status_changed"]).await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let person = cards.spare();
    let enrollment = enroll_card(&app, &person).await;
    cards.revoke_now(&person, CrlReason::AffiliationChanged);
    nudge(responder.port, &person);
    let revoked_at = Instant::now();

    // Within one interval (plus slack for the poll, the OCSP answer and the delivery): the next
    // scheduled check after the revocation is at most one interval away.
    let within = Duration::from_secs(INTERVAL + 3);
    wait_until("the scheduled check's event", within, || {
        !receiver.all().is_empty()
    })
    .await;
    assert!(revoked_at.elapsed() <= within);
    // Two more intervals: nothing else arrives (revocation is final; the event is sent once).
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL)).await;
    let got = receiver.all();
    assert_eq!(got.len(), 1, "exactly one event");
    let r = &got[0];
    assert_well_formed(r);
    assert!(signature_verifies(&secret, r));
    let body = r.json();
    assert_eq!(body["type"], "enrollment.status_changed");
    assert_eq!(body["data"]["enrollment_id"], enrollment.as_str());
    assert_eq!(body["data"]["status"], "identity_changed");
    assert_eq!(body["data"]["previous_status"], "verified");
    assert_eq!(body["data"]["trigger"], "scheduled");

    let doc = get_json(&app, &format!("/v1/enrollments/{enrollment}")).await;
    assert_eq!(doc["status"], "identity_changed");
    // The same audit event as the on-demand check.
    let checks: Vec<Value> = audit_events(&app)
        .await
        .into_iter()
        .filter(|r| r.event == "enrollment.status_checked" && r.subject == enrollment)
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect();
    assert!(checks.iter().all(|c| c["trigger"] == "scheduled"));
    assert_eq!(
        checks
            .iter()
            .filter(|c| c["status"] == "identity_changed")
            .count(),
        1
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "status_checks_total{result=\"done\"}",
        "status_checks_due",
        "status_checks_overdue",
        "webhook_attempts_total",
        "webhook_deliveries_total{result=\"delivered\"}",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }
    assert!(matches!(
        verify_audit(&app).await,
        jpki_face::store::ChainVerdict::Intact { .. }
    ));
}

/// `openssl ocsp` re-reads index.txt after serving a request: one throwaway query makes the
/// responder on `port` see a revocation (as `Cards::revoke_now` does for the shared one).
fn nudge(port: u16, person: &jpki_face::devcard::PersonId) {
    let status = std::process::Command::new("openssl")
        .args([
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            &format!("{person}/cert.pem"),
            "-url",
            &format!("http://127.0.0.1:{port}"),
            "-noverify",
        ])
        .current_dir(cards().hierarchy.dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "nudging the OCSP responder failed");
}

async fn two_instances_check_each_enrollment_once_per_interval() {
    const INTERVAL: u64 = 3;
    let cards = cards();
    let (db_url, _) = fresh_pg_database().await;
    // Its own responder: `openssl ocsp` answers one request at a time, and the other tests' load on
    // the shared one would turn checks into (unaudited) failures.
    let responder = start_responder(cards.hierarchy.dir());
    // Replicas share the KEK (each test app would otherwise make its own, and one could not open
    // the other's data keys: its checks would fail as internal errors).
    let kek = STANDARD.encode(rand::random::<[u8; 32]>());
    let toml = format!(
        "{}{}[crypto]\nkek = \"{kek}\"\n",
        cards.toml(responder.port),
        schedule_toml(INTERVAL)
    );
    let mut options = AppOptions::new(Backend::Postgres);
    options.toml = toml.clone();
    options.db_url = Some(db_url.clone());
    let one = spawn_app_with(options).await;
    let mut options = AppOptions::new(Backend::Postgres);
    options.toml = toml;
    options.db_url = Some(db_url);
    let two = spawn_app_with(options).await;
    let began = Instant::now();
    let a = enroll_person_a(&one).await;
    let b = enroll_person_a(&one).await;
    let checks_of = |rows: &[jpki_face::store::AuditRow], id: &str| -> Vec<i64> {
        rows.iter()
            .filter(|r| r.event == "enrollment.status_checked" && r.subject == id)
            .map(|r| r.at)
            .collect()
    };
    // Until each was checked in at least two intervals (a loaded machine may make a check fail,
    // which is retried and not audited, so wait for them rather than for a fixed time).
    loop {
        let rows = audit_events(&one).await;
        if [&a, &b].iter().all(|id| checks_of(&rows, id).len() >= 2) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "not every enrollment was checked twice: {:?} / {:?}",
            checks_of(&rows, &a),
            checks_of(&rows, &b)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // One more interval, so that a double check would have happened by now.
    tokio::time::sleep(Duration::from_secs(INTERVAL)).await;
    let rows = audit_events(&one).await;
    let window = began.elapsed().as_secs_f64();
    for id in [&a, &b] {
        let times = checks_of(&rows, id);
        // At most one check per interval: never two checks of one enrollment closer than that.
        for w in times.windows(2) {
            let gap = (w[1] - w[0]) as f64 / 1000.0;
            assert!(
                gap >= INTERVAL as f64 * 0.95,
                "{id} checked twice within {gap:.2} s (interval {INTERVAL} s): {times:?}"
            );
        }
        assert!(
            times.len() as f64 <= window / INTERVAL as f64 + 1.0,
            "{id}: {} checks in {window:.1} s",
            times.len()
        );
    }
    drop(two);
}

async fn retention_removes_what_it_should_and_nothing_else(backend: Backend) {
    let cards = cards();
    let mut options = cards.app_options(backend);
    // Rejected decision records go after an hour here; verification records keep the default.
    options.toml.push_str(
        "[retention]\nrejected_retention_secs = 3600\nshred_inactive_after_secs = 2592000\n",
    );
    options.toml.push_str(&fast_webhooks(1000));
    let app = spawn_app_with(options).await;
    let svc = app.ctx.svc.clone();
    let receiver = Receiver::start(0).await;
    register(
        &app,
        &receiver.url,
        &[
            "enrollment.verified",
            "enrollment.rejected",
            "enrollment.deleted",
        ],
    )
    .await;
    let now = jpki_face::domain::now_millis();
    let hour = 3_600_000;

    // A verified enrollment with one transaction-time verification.
    let enrollment = enroll_person_a(&app).await;
    let tx = open_session(
        &app,
        json!({"purpose": "transaction", "enrollment_id": enrollment}),
    )
    .await;
    let verified = post_verify(&app, &client_token(&tx), A_LATER, &[]).await;
    assert_eq!(verified.status(), 200);
    // A rejected enrollment (revoked card).
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a_key_compromise, &session);
    let rejected = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["status"], "rejected");
    // A session nobody used, opened with an Idempotency-Key (so an idempotency row exists).
    let unused = app
        .client
        .post(app.url("/v1/sessions"))
        .bearer_auth(&app.api_key)
        .header("idempotency-key", "retention-test-1")
        .json(&json!({"purpose": "enrollment", "subject_ref": "customer-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unused.status(), 201);

    // Both events delivered (a pending one would be kept).
    wait_until("two deliveries", Duration::from_secs(20), || {
        receiver.all().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count(CountedTable::WebhookEvents).await, 2);
    let before = table_counts(&app).await;
    // sessions: enrollment A's, the transaction's, the rejected one's, the unused one.
    assert_eq!(
        before,
        [4, 2, 2, 1, 1],
        "sessions, enrollments, templates, verifications, idempotency keys"
    );

    // Nothing is due yet: a run now removes nothing and records nothing.
    let audit_before = audit_events(&app).await.len();
    jpki_face::usecase::retention::run_once(&svc, now)
        .await
        .unwrap();
    assert_eq!(table_counts(&app).await, before);
    assert_eq!(audit_events(&app).await.len(), audit_before);

    // Two days on: expired sessions nobody refers to, expired idempotency rows and the rejected
    // enrollment's record go; the verified enrollment, its templates, its verification and the
    // sessions they refer to stay.
    jpki_face::usecase::retention::run_once(&svc, now + 48 * hour)
        .await
        .unwrap();
    assert_eq!(table_counts(&app).await, [2, 1, 2, 1, 0]);
    assert_eq!(
        get_json(&app, &format!("/v1/enrollments/{enrollment}")).await["status"],
        "verified"
    );
    let purged: Vec<Value> = audit_events(&app)
        .await
        .into_iter()
        .filter(|r| r.event == "retention.purged")
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect();
    assert_eq!(purged.len(), 1);
    assert_eq!(
        purged[0]["counts"],
        json!({"rejected_enrollments": 1, "verifications": 0, "sessions": 2, "idempotency_keys": 1, "webhook_events": 0})
    );
    assert_eq!(
        app.count(CountedTable::WebhookEvents).await,
        2,
        "kept for 30 days"
    );

    // Forty days on, with no verification for thirty: the enrollment's templates and identity are
    // shredded (a tombstone and the verification record stay).
    jpki_face::usecase::retention::run_once(&svc, now + 40 * 24 * hour)
        .await
        .unwrap();
    assert_eq!(table_counts(&app).await, [2, 1, 0, 1, 0]);
    // The two old events went; the shredding's own enrollment.deleted event is new.
    assert_eq!(app.count(CountedTable::WebhookEvents).await, 1);
    wait_until("the deleted event", Duration::from_secs(20), || {
        !receiver.of_type("enrollment.deleted").is_empty()
    })
    .await;
    assert_eq!(
        receiver.of_type("enrollment.deleted")[0].json()["data"]["cause"],
        "retention"
    );
    let gone = app
        .client
        .get(app.url(&format!("/v1/enrollments/{enrollment}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_problem(gone, 404, "not_found").await;
    let deleted: Vec<_> = audit_events(&app)
        .await
        .into_iter()
        .filter(|r| r.event == "enrollment.deleted")
        .collect();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].details.contains("retention"));
    assert!(matches!(
        verify_audit(&app).await,
        jpki_face::store::ChainVerdict::Intact { .. }
    ));
}

async fn table_counts(app: &TestApp) -> [i64; 5] {
    [
        app.count(CountedTable::Sessions).await,
        app.count(CountedTable::Enrollments).await,
        app.count(CountedTable::Templates).await,
        app.count(CountedTable::Verifications).await,
        app.count(CountedTable::IdempotencyKeys).await,
    ]
}

async fn rejections_and_locks_are_signalled_once_each(backend: Backend) {
    let cards = cards();
    let mut options = cards.app_options(backend);
    options.toml.push_str(&fast_webhooks(1000));
    options
        .toml
        .push_str("[verification.lockout]\nmax_failures = 2\nwindow_secs = 600\nlock_secs = 120\n");
    let app = spawn_app_with(options).await;
    let receiver = Receiver::start(0).await;
    let created = register(
        &app,
        &receiver.url,
        &["enrollment.rejected", "verification.locked"],
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_string();

    // A verified enrollment is not subscribed to: nothing is sent for it.
    let enrollment = enroll_person_a(&app).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a_key_compromise, &session);
    let rejected: Value = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rejected["status"], "rejected");
    let id = ("enrollment_id", enrollment.clone());
    for _ in 0..3 {
        post_verify(&app, &app.api_key, B_SELFIE, std::slice::from_ref(&id)).await;
    }
    wait_until("both events", Duration::from_secs(20), || {
        receiver.all().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.all();
    assert_eq!(got.len(), 2, "one rejection, one lock");
    for r in &got {
        assert_well_formed(r);
        assert!(signature_verifies(&secret, r));
    }
    let rejection = &receiver.of_type("enrollment.rejected")[0].json();
    assert_eq!(rejection["data"]["enrollment_id"], rejected["id"]);
    assert_eq!(rejection["data"]["status"], "rejected");
    assert!(rejection["data"]["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("certificate_revoked")));
    let lock = &receiver.of_type("verification.locked")[0].json();
    assert_eq!(lock["data"]["enrollment_id"], enrollment.as_str());
    assert!(lock["data"]["verification_id"]
        .as_str()
        .unwrap()
        .starts_with("ver_"));
}

/// Six on-demand checks of one freshly revoked card at once: every check that answers sees the new
/// status, but the change is written, audited and signalled once (the store applies a check only to
/// the status it read; a check that lost the race reads again).
async fn concurrent_checks_change_the_status_and_signal_it_once(backend: Backend) {
    let cards = cards();
    let responder = start_responder(cards.hierarchy.dir());
    let mut options = AppOptions::new(backend);
    options.toml = format!("{}{}", cards.toml(responder.port), fast_webhooks(1000));
    let app = spawn_app_with(options).await;
    let receiver = Receiver::start(0).await;
    register(&app, &receiver.url, &["enrollment.status_changed"]).await;
    let person = cards.spare();
    let enrollment = enroll_card(&app, &person).await;
    cards.revoke_now(&person, CrlReason::AffiliationChanged);
    nudge(responder.port, &person);

    let checks = (0..6).map(|_| {
        let request = app
            .client
            .post(app.url(&format!("/v1/enrollments/{enrollment}/status-check")))
            .bearer_auth(&app.api_key)
            .send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    });
    let answers = futures::future::join_all(checks).await;
    let answered: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == 200 || body["code"] == "revocation_unavailable"),
        "{answers:?}"
    );
    assert!(
        answered.len() >= 2,
        "the race needs two answers: {answers:?}"
    );
    assert!(
        answered.iter().all(|b| b["status"] == "identity_changed"),
        "{answered:?}"
    );
    let changes: Vec<Value> = audit_events(&app)
        .await
        .into_iter()
        .filter(|r| r.event == "enrollment.status_checked" && r.subject == enrollment)
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect();
    assert_eq!(
        changes.len(),
        answered.len(),
        "one audit event per answered check"
    );
    assert_eq!(
        changes
            .iter()
            .filter(|c| c["previous_status"] != c["status"])
            .count(),
        1,
        "{changes:?}"
    );
    wait_until("the status_changed event", Duration::from_secs(10), || {
        !receiver.all().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.of_type("enrollment.status_changed").len(), 1);
    assert!(matches!(
        verify_audit(&app).await,
        jpki_face::store::ChainVerdict::Intact { .. }
    ));
}

async fn the_endpoint_limit_answers_409_limit_reached(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[webhooks]\nmax_endpoints_per_tenant = 2\n".into();
    let app = spawn_app_with(options).await;
    for i in 0..2 {
        register(
            &app,
            &format!("https://rp{i}.example/hooks"),
            &["enrollment.deleted"],
        )
        .await;
    }
    let response = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&app.api_key)
        .json(&json!({"url": "https://rp2.example/hooks", "events": ["enrollment.deleted"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "limit_reached");
    assert_eq!(
        get_json(&app, "/v1/webhooks").await["webhooks"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
