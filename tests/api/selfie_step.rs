//! The selfie step (issue 25 item 7), on both backends: `POST /v1/sessions/{id}/selfie` judges the
//! selfie at once; a passing one is kept sealed with the session and used by the enrollment (or a
//! transaction verify) posted without a selfie; a posted selfie still wins; nothing stays after the
//! session is used or expires; replays, wrong credentials and races.

use crate::cards::*;
use crate::helpers::*;
use crate::store_contract::dump_database;
use jpki_face::store::CountedTable;
use serde_json::{json, Value};

crate::on_both_backends!(
    selfie_first_then_card_only,
    a_posted_selfie_still_works_and_wins_over_the_kept_one,
    a_bad_selfie_is_a_retake_and_keeps_nothing,
    a_later_pass_replaces_the_kept_selfie,
    expiry_deletes_the_kept_selfie,
    a_retry_with_the_same_key_replays_the_verdict,
    only_the_sessions_own_client_token_may_post,
    hostile_uploads_are_refused_and_change_nothing,
    a_transaction_session_verifies_with_its_kept_selfie,
    parallel_selfie_posts_keep_exactly_one,
    a_selfie_racing_the_enrollment_leaves_nothing_behind,
    the_kept_selfie_is_sealed,
    liveness_frames_go_with_the_selfie_step,
);

fn image_part(bytes: Vec<u8>) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name("selfie.jpg")
        .mime_str("image/jpeg")
        .unwrap()
}

fn selfie_form(selfie: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part("selfie", image_part(std::fs::read(photo(selfie)).unwrap()))
}

/// `POST /v1/sessions/{id}/selfie` with a form, bearer and optional Idempotency-Key.
async fn post_selfie_form(
    app: &TestApp,
    session_id: &str,
    bearer: &str,
    form: reqwest::multipart::Form,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/v1/sessions/{session_id}/selfie")))
        .bearer_auth(bearer)
        .multipart(form);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("request")
}

/// Posts a selfie file with the session's own client token.
async fn post_selfie(app: &TestApp, session: &Value, selfie: &str) -> reqwest::Response {
    post_selfie_form(
        app,
        session["id"].as_str().unwrap(),
        &client_token(session),
        selfie_form(selfie),
        None,
    )
    .await
}

async fn passes(app: &TestApp, session: &Value, selfie: &str) -> Value {
    let response = post_selfie(app, session, selfie).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"], "pass", "{body:#}");
    assert_eq!(body["reasons"], json!([]));
    body
}

/// The enrollment with the card only (the selfie comes from the selfie step).
async fn enroll_card_only(app: &TestApp, session: &Value, card: &Value) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "card",
        reqwest::multipart::Part::text(card.to_string())
            .mime_str("application/json")
            .unwrap(),
    );
    app.client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(session))
        .multipart(form)
        .send()
        .await
        .expect("request")
}

async fn kept(app: &TestApp) -> i64 {
    app.count(CountedTable::SessionSelfies).await
}

async fn audit_of(app: &TestApp, event: &str) -> Vec<Value> {
    app.ctx
        .svc
        .store
        .audit_rows(&app.tenant_id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event == event)
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect()
}

/// A picture without a face: mid-grey.
fn no_face_jpeg() -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        320,
        320,
        image::Rgb([128, 128, 128]),
    ));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

async fn selfie_first_then_card_only(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let verdict = passes(&app, &session, A_SELFIE).await;
    assert_eq!(verdict["session_id"], session["id"]);
    assert_eq!(verdict["kept_until"], session["expires_at"]);
    assert_eq!(kept(&app).await, 1);

    // The card, read after the selfie (or before it: the app posts it now either way).
    let card = cards.sign(&cards.a, &session);
    let response = enroll_card_only(&app, &session, &card).await;
    assert_eq!(response.status(), 201);
    let enrollment: Value = response.json().await.unwrap();
    assert_eq!(enrollment["status"], "verified", "{enrollment:#}");
    // The kept verdict is used as it was given, not judged again.
    assert_eq!(
        enrollment["checks"]["selfie_quality"],
        verdict["selfie_quality"]
    );
    assert_eq!(enrollment["checks"]["liveness"], verdict["liveness"]);
    assert_eq!(kept(&app).await, 0, "used: deleted with the consumption");
    assert_eq!(app.count(CountedTable::Templates).await, 2);
    let audit = audit_of(&app, "enrollment.created").await;
    assert_eq!(audit.last().unwrap()["selfie"], "kept");
    let checked = audit_of(&app, "session.selfie_checked").await;
    assert_eq!(checked.len(), 1);
    assert_eq!(checked[0]["result"], "pass");

    // The session is used: the selfie step is closed for it.
    let again = post_selfie(&app, &session, A_SELFIE).await;
    assert_problem(again, 409, "session_consumed").await;
    assert_eq!(kept(&app).await, 0);
}

async fn a_posted_selfie_still_works_and_wins_over_the_kept_one(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    // The old way, without the selfie step.
    enroll_person_a(&app).await;

    // Someone else's selfie is kept; the enrollment posts person A's own: the posted one is judged
    // and compared (the kept one would not match person A's chip photo).
    let session = app.enrollment_session().await;
    passes(&app, &session, B_SELFIE).await;
    let card = cards.sign(&cards.a, &session);
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    assert_eq!(
        audit_of(&app, "enrollment.created").await.last().unwrap()["selfie"],
        "posted"
    );
    assert_eq!(kept(&app).await, 0, "the unused kept selfie goes too");

    // And the other way round: person B's kept selfie against person A's card is a mismatch.
    let session = app.enrollment_session().await;
    passes(&app, &session, B_SELFIE).await;
    let card = cards.sign(&cards.a, &session);
    let body: Value = enroll_card_only(&app, &session, &card)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["reasons"], json!(["face_mismatch"]), "{body:#}");
    assert_eq!(kept(&app).await, 0);
}

async fn a_bad_selfie_is_a_retake_and_keeps_nothing(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let form = reqwest::multipart::Form::new().part("selfie", image_part(no_face_jpeg()));
    let response = post_selfie_form(
        &app,
        session["id"].as_str().unwrap(),
        &client_token(&session),
        form,
        None,
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "a retake is a verdict, not an error"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"], "retake");
    assert_eq!(body["reasons"], json!(["selfie_no_face"]), "{body:#}");
    assert!(body.get("kept_until").is_none());
    assert_eq!(kept(&app).await, 0);
    let checked = audit_of(&app, "session.selfie_checked").await;
    assert_eq!(checked[0]["result"], "retake");

    // Without a kept selfie, an enrollment without one has nothing to compare: malformed, and the
    // session stays usable.
    let card = cards.sign(&cards.a, &session);
    let response = enroll_card_only(&app, &session, &card).await;
    assert_problem(response, 400, "malformed_request").await;
    assert_eq!(app.count(CountedTable::Enrollments).await, 0);

    // A retake after a pass leaves the accepted selfie in place.
    passes(&app, &session, A_SELFIE).await;
    let form = reqwest::multipart::Form::new().part("selfie", image_part(no_face_jpeg()));
    let body: Value = post_selfie_form(
        &app,
        session["id"].as_str().unwrap(),
        &client_token(&session),
        form,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["result"], "retake");
    assert_eq!(kept(&app).await, 1);
    let body: Value = enroll_card_only(&app, &session, &card)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
}

async fn a_later_pass_replaces_the_kept_selfie(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    passes(&app, &session, B_SELFIE).await;
    passes(&app, &session, A_SELFIE).await;
    assert_eq!(kept(&app).await, 1, "one per session");
    let card = cards.sign(&cards.a, &session);
    let body: Value = enroll_card_only(&app, &session, &card)
        .await
        .json()
        .await
        .unwrap();
    // Person B's selfie would not match person A's card: the later one was used.
    assert_eq!(body["status"], "verified", "{body:#}");
}

async fn expiry_deletes_the_kept_selfie(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = app.enrollment_session().await;
    passes(&app, &session, A_SELFIE).await;
    assert_eq!(kept(&app).await, 1);
    let now = jpki_face::domain::now_millis();
    // Before the session's expiry the retention run leaves it.
    jpki_face::usecase::retention::run_once(&app.ctx.svc, now)
        .await
        .unwrap();
    assert_eq!(kept(&app).await, 1);
    let ttl_ms = app.ctx.svc.settings.sessions.ttl_secs as i64 * 1000;
    jpki_face::usecase::retention::run_once(&app.ctx.svc, now + ttl_ms + 1_000)
        .await
        .unwrap();
    assert_eq!(kept(&app).await, 0);
    let purged = audit_of(&app, "retention.purged").await;
    assert_eq!(purged.last().unwrap()["counts"]["session_selfies"], 1);
}

async fn a_retry_with_the_same_key_replays_the_verdict(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = app.enrollment_session().await;
    let (id, token) = (session["id"].as_str().unwrap(), client_token(&session));
    let first = post_selfie_form(&app, id, &token, selfie_form(A_SELFIE), Some("selfie-1")).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.bytes().await.unwrap();
    let again = post_selfie_form(&app, id, &token, selfie_form(A_SELFIE), Some("selfie-1")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.bytes().await.unwrap(), first, "byte for byte");
    assert_eq!(audit_of(&app, "session.selfie_checked").await.len(), 1);
    // The same key with another selfie is a conflict and changes nothing.
    let other = post_selfie_form(&app, id, &token, selfie_form(B_SELFIE), Some("selfie-1")).await;
    assert_problem(other, 409, "idempotency_conflict").await;
    assert_eq!(audit_of(&app, "session.selfie_checked").await.len(), 1);
    assert_eq!(kept(&app).await, 1);
}

async fn only_the_sessions_own_client_token_may_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = app.enrollment_session().await;
    let other = app.enrollment_session().await;
    let id = session["id"].as_str().unwrap();
    let key = app.api_key.clone();
    for (bearer, status, code) in [
        (key.as_str(), 403, "forbidden"),
        (other["client_token"].as_str().unwrap(), 403, "forbidden"),
        ("jfc_not-a-token", 401, "unauthenticated"),
    ] {
        let response = post_selfie_form(&app, id, bearer, selfie_form(A_SELFIE), None).await;
        assert_problem(response, status, code).await;
    }
    // Another tenant's client token on this session: its own session is another.
    let (_, other_key) = app.other_tenant().await;
    let foreign: Value = app
        .post_session(&other_key, &json!({"purpose": "enrollment"}))
        .await
        .json()
        .await
        .unwrap();
    let response = post_selfie_form(
        &app,
        id,
        foreign["client_token"].as_str().unwrap(),
        selfie_form(A_SELFIE),
        None,
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(kept(&app).await, 0);
    assert!(audit_of(&app, "session.selfie_checked").await.is_empty());
}

async fn hostile_uploads_are_refused_and_change_nothing(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[face]\nselfie_max_bytes = 20000\n".into();
    let app = spawn_app_with(options).await;
    let session = app.enrollment_session().await;
    let (id, token) = (session["id"].as_str().unwrap(), client_token(&session));
    // Over the selfie part's limit.
    let big = reqwest::multipart::Form::new().part("selfie", image_part(vec![0xff; 20_001]));
    assert_problem(
        post_selfie_form(&app, id, &token, big, None).await,
        413,
        "payload_too_large",
    )
    .await;
    // A card part has no place here; nor a missing selfie.
    let with_card = reqwest::multipart::Form::new()
        .part("selfie", image_part(no_face_jpeg()))
        .text("card", "{}");
    assert_problem(
        post_selfie_form(&app, id, &token, with_card, None).await,
        400,
        "malformed_request",
    )
    .await;
    let empty = reqwest::multipart::Form::new().text("session_id", id.to_string());
    assert_problem(
        post_selfie_form(&app, id, &token, empty, None).await,
        400,
        "malformed_request",
    )
    .await;
    // Not a picture.
    let junk = reqwest::multipart::Form::new().part("selfie", image_part(b"GIF89a junk".to_vec()));
    assert_problem(
        post_selfie_form(&app, id, &token, junk, None).await,
        415,
        "unsupported_media_type",
    )
    .await;
    // JSON with an unknown member.
    let response = app
        .client
        .post(app.url(&format!("/v1/sessions/{id}/selfie")))
        .bearer_auth(&token)
        .json(&json!({"selfie": "AAAA", "card": {}}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "malformed_request").await;
    // A malformed session id in the path.
    let response = post_selfie_form(&app, "ses_1", &token, selfie_form(A_SELFIE), None).await;
    assert_eq!(response.status(), 404);
    assert_eq!(kept(&app).await, 0);
    assert!(audit_of(&app, "session.selfie_checked").await.is_empty());
}

async fn a_transaction_session_verifies_with_its_kept_selfie(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let enrollment_id = enroll_person_a(&app).await;
    let session = open_session(
        &app,
        json!({"purpose": "transaction", "enrollment_id": enrollment_id}),
    )
    .await;
    passes(&app, &session, A_LATER).await;
    // The verify posts nothing: the kept selfie is compared.
    let response = app
        .client
        .post(app.url("/v1/transactions/verify"))
        .bearer_auth(client_token(&session))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["decision"], "match", "{body:#}");
    assert_eq!(kept(&app).await, 0);
    // Server to server there is no session: the selfie is required.
    let response = app
        .client
        .post(app.url(&format!("/v1/enrollments/{enrollment_id}/verify")))
        .bearer_auth(&app.api_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    // The document requires `selfie` here, so this request is off-contract on purpose.
    assert_eq!(response.status(), 400);
}

async fn parallel_selfie_posts_keep_exactly_one(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let photos = [A_SELFIE, A_LATER, A_SELFIE, A_LATER];
    let answers =
        futures::future::join_all(photos.iter().map(|p| post_selfie(&app, &session, p))).await;
    for response in answers {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"], "pass");
    }
    assert_eq!(kept(&app).await, 1);
    assert_eq!(audit_of(&app, "session.selfie_checked").await.len(), 4);
    let card = cards.sign(&cards.a, &session);
    let body: Value = enroll_card_only(&app, &session, &card)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    assert_eq!(kept(&app).await, 0);
}

async fn a_selfie_racing_the_enrollment_leaves_nothing_behind(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    for _ in 0..3 {
        let session = app.enrollment_session().await;
        passes(&app, &session, A_SELFIE).await;
        let card = cards.sign(&cards.a, &session);
        let (selfie, enrollment) = tokio::join!(
            post_selfie(&app, &session, A_LATER),
            enroll_card_only(&app, &session, &card)
        );
        assert_eq!(enrollment.status(), 201);
        let body: Value = enrollment.json().await.unwrap();
        assert_eq!(body["status"], "verified", "{body:#}");
        match selfie.status().as_u16() {
            200 => {}
            409 => {
                assert_problem(selfie, 409, "session_consumed").await;
            }
            other => panic!("selfie answered {other}"),
        }
        // Whichever committed first, nothing of the selfie outlives the used session.
        assert_eq!(kept(&app).await, 0);
    }
}

async fn the_kept_selfie_is_sealed(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = app.enrollment_session().await;
    let verdict = passes(&app, &session, A_SELFIE).await;
    let dump = dump_database(&app).await;
    let row = dump
        .lines()
        .find(|l| l.starts_with(&format!("session_id={}", session["id"].as_str().unwrap())))
        .expect("the kept selfie's row");
    for clear in ["brightness", "template", "JFT1", "sface", "quality"] {
        assert!(!row.contains(clear), "{clear} in clear: {row}");
    }
    let brightness = verdict["selfie_quality"]["brightness"].to_string();
    assert!(!row.contains(&brightness));
    // It opens with the key ring, to the verdict that was answered, with a template.
    let session_id = jpki_face::domain::SessionId::parse(session["id"].as_str().unwrap()).unwrap();
    let stored = app
        .ctx
        .svc
        .store
        .kept_selfie(&app.tenant_id, &session_id)
        .await
        .unwrap()
        .unwrap();
    let judged = jpki_face::usecase::selfie::open(&app.ctx.svc.keys, &stored).unwrap();
    assert!(judged.template.is_some());
    let quality: Value =
        serde_json::from_str(&serde_json::to_string(&judged.quality).unwrap()).unwrap();
    assert_eq!(quality, verdict["selfie_quality"]);
    // Another tenant cannot read it through the store.
    let (other, _) = app.other_tenant().await;
    assert!(app
        .ctx
        .svc
        .store
        .kept_selfie(&other, &session_id)
        .await
        .unwrap()
        .is_none());
}

async fn liveness_frames_go_with_the_selfie_step(backend: Backend) {
    use crate::liveness::{frame_for, usable_session, A_TURNED};
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let settings = jpki_face::store::TenantSettings {
        liveness: Some(jpki_face::liveness::LivenessMode::PoseSequence),
        ..Default::default()
    };
    let (_, _, key) = jpki_face::usecase::tenants::create_tenant_with(
        app.ctx.svc.store.as_ref(),
        "live",
        settings,
    )
    .await
    .unwrap();
    let (session, prompts) = usable_session(&app, key.expose()).await;
    let (id, token) = (session["id"].as_str().unwrap(), client_token(&session));

    // The selfie without the challenge's frames: a retake, at once.
    let body: Value = post_selfie_form(&app, id, &token, selfie_form(A_SELFIE), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"], "retake");
    assert_eq!(body["reasons"], json!(["liveness_failed"]), "{body:#}");

    // With them, in order: a pass.
    let mut form = selfie_form(A_SELFIE);
    for prompt in &prompts {
        form = form.part("liveness_frame", image_part(frame_for(prompt, A_TURNED)));
    }
    let body: Value = post_selfie_form(&app, id, &token, form, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"], "pass", "{body:#}");
    assert_eq!(body["liveness"]["result"], "pass");

    // Frames without their selfie have nothing to go with.
    let card = cards.sign(&cards.a, &session);
    let mut form = reqwest::multipart::Form::new().part(
        "card",
        reqwest::multipart::Part::text(card.to_string())
            .mime_str("application/json")
            .unwrap(),
    );
    for prompt in &prompts {
        form = form.part("liveness_frame", image_part(frame_for(prompt, A_TURNED)));
    }
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "malformed_request").await;

    // The card alone: the kept selfie and its liveness verdict are used.
    let body: Value = enroll_card_only(&app, &session, &card)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    assert_eq!(body["checks"]["liveness"]["result"], "pass");
    assert_eq!(
        body["checks"]["liveness"]["frames"]
            .as_array()
            .unwrap()
            .len(),
        prompts.len()
    );
}
