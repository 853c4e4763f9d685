//! Hostile and unlucky clients over HTTP (issues 11 and 14): a card that does not authenticate reaches
//! no decoder and no validity check; nothing that identifies a person is stored in clear; a status
//! check's `unknown` is visible; one tenant's flood does not starve another; a slow client is cut off.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::devcard::{mutate, Mutant};
use jpki_face::store::CountedTable;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

crate::on_both_backends!(
    an_unauthenticated_card_reaches_no_decoder_and_no_validity_check,
    nothing_that_identifies_a_person_is_stored_in_clear,
    a_status_check_answering_unknown_is_visible,
    a_flooding_tenant_is_limited_and_the_other_is_served,
);

/// The card's issuer signature fails, and the "selfie" is bytes no decoder accepts: had the selfie
/// reached the face pool the answer would be 400/415. It is a decided `rejected`, and the OCSP
/// responder (behind a counting proxy) saw no connection.
async fn an_unauthenticated_card_reaches_no_decoder_and_no_validity_check(backend: Backend) {
    let cards = cards();
    let target: &'static str =
        Box::leak(format!("127.0.0.1:{}", cards.responder_port()).into_boxed_str());
    let proxy = Proxy::start(target).await;
    let mut options = AppOptions::new(backend);
    options.toml = cards.toml(proxy.port);
    let app = spawn_app_with(options).await;
    let session = app.enrollment_session().await;
    let tampered = mutate(&cards.sign(&cards.a, &session), Mutant::FlipPhotoBit).unwrap();
    let garbage_selfie = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"\xff\xd8\xff\xe0 not a picture at all",
    );
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(&session))
        .json(&json!({"card": tampered, "selfie": garbage_selfie}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "rejected", "{body:#}");
    assert_eq!(body["reasons"], json!(["invalid_signature"]));
    let checks = &body["checks"];
    assert_eq!(
        checks["selfie_quality"],
        Value::Null,
        "the selfie was never analysed"
    );
    assert_eq!(
        checks["chip_photo_quality"],
        Value::Null,
        "nor the chip photo"
    );
    assert_eq!(checks["liveness"]["result"], "not_evaluated");
    assert_eq!(checks["face_match"]["result"], "not_compared");
    assert_eq!(checks["revocation"]["result"], "not_checked");
    assert_eq!(body["identity"], Value::Null);
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        0,
        "no OCSP request for a card that did not authenticate"
    );
    // A rejected decision consumes the session, as before.
    assert_eq!(app.count(CountedTable::Enrollments).await, 1);
    assert_eq!(app.count(CountedTable::Templates).await, 0);

    // The same selfie bytes with a genuine card do reach the decoder, and are refused by it.
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(&session))
        .json(&json!({"card": card, "selfie": garbage_selfie}))
        .send()
        .await
        .unwrap();
    assert!(
        [400, 415].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    assert!(
        proxy.accepted.load(Ordering::SeqCst) >= 1,
        "a genuine card is looked up"
    );
}

async fn nothing_that_identifies_a_person_is_stored_in_clear(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    // Every event goes to the outbox too (the receiver need not exist for the payloads to be stored).
    let hook = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&app.api_key)
        .json(&serde_json::json!({"url": "http://127.0.0.1:9/hook",
            "events": ["enrollment.verified", "enrollment.rejected", "enrollment.deleted"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 201);
    let hook: Value = hook.json().await.unwrap();
    let webhook_secret = hook["secret"].as_str().unwrap()["whsec_".len()..].to_string();
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    let certificate = &body["checks"]["certificate"];
    let serial = certificate["serial"]
        .as_str()
        .expect("the key holder sees the serial");
    let not_after = certificate["not_after"]
        .as_str()
        .expect("and not_after")
        .to_string();
    // A rejected one too (another person's face).
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let rejected: Value = post_enrollment(&app, &client_token(&session), &card, B_SELFIE, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["checks"]["certificate"]["serial"], Value::Null);

    let dump = crate::store_contract::dump_database(&app).await;
    assert!(dump.contains("enrollment.verified") && dump.contains("enrollment.rejected"));
    for needle in [
        serial.to_string(),
        serial.to_lowercase(),
        not_after[..10].to_string(),
        "1990-01-02".to_string(),
        "山田".to_string(),
        webhook_secret,
    ] {
        assert!(!dump.contains(&needle), "{needle:?} is stored in clear");
    }
    // Deleting shreds it: the key holder sees nothing any more.
    let id = body["id"].as_str().unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

/// J-LIS answering `unknown` (a signed answer, not an outage) is a visible status, and a later
/// `good` lifts it. J-LIS cannot run here: the checker is the real OCSP client with a switch that
/// makes it answer `unknown`.
async fn a_status_check_answering_unknown_is_visible(backend: Backend) {
    use jpki_face::jlis::{
        self, JlisError, Method, RevocationTarget, ValidityChecker, ValidityReport,
    };
    struct Switchable {
        unknown: std::sync::atomic::AtomicBool,
        real: Arc<dyn ValidityChecker>,
    }
    #[async_trait::async_trait]
    impl ValidityChecker for Switchable {
        async fn check(&self, target: &RevocationTarget) -> Result<ValidityReport, JlisError> {
            let mut report = self.real.check(target).await?;
            if self.unknown.load(Ordering::SeqCst) {
                report.status = jlis::Status::Unknown;
            }
            Ok(report)
        }
        fn method(&self) -> Method {
            self.real.method()
        }
    }
    let cards = cards();
    let mut options = cards.app_options(backend);
    let settings = jpki_face::config::Settings::from_toml_overrides(&options.toml).unwrap();
    let real = jlis::build_checker(&settings.jlis, settings.environment).unwrap();
    let switch = Arc::new(Switchable {
        unknown: false.into(),
        real,
    });
    options.validity = Some(switch.clone());
    let app = spawn_app_with(options).await;
    let id = enroll_person_a(&app).await;
    let check = |app: &TestApp| {
        let url = app.url(&format!("/v1/enrollments/{id}/status-check"));
        let client = app.client.clone();
        let key = app.api_key.clone();
        async move {
            let r = client.post(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    switch.unknown.store(true, Ordering::SeqCst);
    let answer = check(&app).await;
    assert_eq!(answer["status"], "status_unknown");
    assert_eq!(answer["revocation"]["result"], "unknown");
    let checked_at = answer["revocation"]["checked_at"]
        .as_str()
        .unwrap()
        .to_string();
    let doc: Value = app
        .client
        .get(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["status"], "status_unknown");
    assert_eq!(
        doc["checks"]["revocation"]["checked_at"],
        checked_at.as_str()
    );
    assert!(doc["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("certificate_status_unknown")));
    // Not usable meanwhile.
    let response = post_verify(
        &app,
        &app.api_key,
        A_LATER,
        &[("enrollment_id", id.clone())],
    )
    .await;
    assert_problem(response, 409, "enrollment_inactive").await;
    // A later good answer lifts it.
    switch.unknown.store(false, Ordering::SeqCst);
    let answer = check(&app).await;
    assert_eq!(answer["status"], "verified");
    let doc: Value = app
        .client
        .get(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["reasons"], json!([]));
}

async fn a_flooding_tenant_is_limited_and_the_other_is_served(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[server]\ntenant_rate_per_sec = 1.0\ntenant_burst = 5.0\n".into();
    let app = spawn_app_with(options).await;
    let (_, other_key) = app.other_tenant().await;
    let body = json!({"purpose": "enrollment", "subject_ref": "flood"});
    // The limit is work-conserving: it applies while another tenant is active on the replica.
    assert_eq!(app.post_session(&other_key, &body).await.status(), 201);
    let flood = (0..30).map(|_| app.post_session(&app.api_key, &body));
    let answers = futures::future::join_all(flood).await;
    let limited: Vec<_> = answers.into_iter().filter(|r| r.status() == 429).collect();
    assert!(
        limited.len() >= 20,
        "the flooder is limited: {}",
        limited.len()
    );
    let first = limited.into_iter().next().unwrap();
    assert!(first.headers().get("retry-after").is_some());
    assert_problem(first, 429, "rate_limited").await;
    // The other tenant is served meanwhile.
    let response = app.post_session(&other_key, &body).await;
    assert_eq!(response.status(), 201);
}

/// A client that sends its headers one byte at a time is cut off at the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = AppOptions::new(Backend::Sqlite);
    options.toml = "[server]\nheader_timeout_secs = 2\n".into();
    let app = spawn_app_with(options).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = std::time::Instant::now();
    let mut cut = false;
    for byte in request.iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        // Did the server close on us?
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await
        {
            assert!(
                !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
                "a one-byte-a-second request must not be served"
            );
            cut = true;
            break;
        }
    }
    assert!(cut, "the connection was not closed");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cut off near the 2 s header timeout, not after the whole request"
    );
    // An idle keep-alive connection is closed the same way.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(20), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed: {read:?}"
    );
    // And the service still answers.
    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

/// A worker panic (injected by the engine's test-only hook) answers that one request 500, the worker
/// is replaced, `/readyz` is ready again and the next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_panic_is_one_500_and_the_pool_heals() {
    let cards = cards();
    let mut options = cards.app_options(Backend::Sqlite);
    // Its own engine (one worker), with the fault hook: an image starting with these bytes panics.
    options.own_face_engine = true;
    options.toml.push_str(
        "[face]\nworkers = 1\njob_deadline_ms = 300000\ntest_panic_marker = \"ffd8ff50414e4943\"\n",
    );
    let app = spawn_app_with(options).await;
    // Its own engine warms up first (503 not_ready until then).
    let face = app.ctx.svc.face.clone();
    let warm = tokio::task::spawn_blocking(move || face.wait_ready(Duration::from_secs(120)));
    assert!(warm.await.unwrap(), "the engine warms up");
    let id = enroll_person_a(&app).await;
    let mut poison = hex::decode("ffd8ff50414e4943").unwrap();
    poison.extend_from_slice(&[0u8; 64]);
    let form = reqwest::multipart::Form::new()
        .part(
            "selfie",
            reqwest::multipart::Part::bytes(poison)
                .file_name("s.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        )
        .text("enrollment_id", id.clone());
    let response = app
        .client
        .post(app.url("/v1/transactions/verify"))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(response, 500, "internal_error").await;
    assert_eq!(
        app.count(CountedTable::Verifications).await,
        0,
        "nothing stored"
    );
    // The pool heals: ready again, and the next request is decided.
    let mut ready = false;
    for _ in 0..100 {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz recovers after the worker is replaced");
    let response = post_verify(&app, &app.api_key, A_LATER, &[("enrollment_id", id)]).await;
    assert_eq!(response.status(), 200);
    let stats = app.ctx.svc.face.stats();
    assert!(
        stats.worker_panics >= 1 && stats.worker_restarts >= 1,
        "{stats:?}"
    );
}
