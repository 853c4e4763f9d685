//! Review (issue 22) over HTTP on both backends: every route to `in_review` (a face score in the
//! tenant's band, a masked selfie, a duplicate face, a signed `unknown`), the evidence (JPEG, audited,
//! gone after the decision, after its retention cap and with the enrollment), approve and reject
//! exactly once (two racing decisions), the four-eyes rule (also two first approves at once), the queue's keyset pages, another
//! tenant's enrollment answering 404 everywhere, and `enrollment.reviewed` delivered to a real
//! HTTP receiver.

use crate::cards::*;
use crate::helpers::*;
use crate::masks::masked;
use crate::webhooks::{fast_webhooks, wait_until, Receiver};
use jpki_face::domain::search::{CheckMode, Rate};
use jpki_face::face::MaskMode;
use jpki_face::store::{CountedTable, TenantSettings};
use serde_json::{json, Value};
use std::time::Duration;

crate::on_both_backends!(
    a_face_in_the_band_waits_for_a_person_and_an_approve_makes_it_usable,
    a_masked_selfie_goes_to_review_and_a_reject_shreds_everything,
    a_duplicate_goes_to_review_and_two_racing_decisions_decide_once,
    four_eyes_needs_two_different_reviewers_and_the_queue_pages,
    a_signed_unknown_goes_to_review_when_the_tenant_says_so,
    evidence_is_shredded_by_retention_and_by_deletion,
    another_tenant_finds_nothing_on_any_review_route,
);

/// Someone else's face whose score against person A's chip photo (about 0.29) lies between the
/// threshold of the tenants' band (FMR 1e-1: 0.2037) and the enrollment threshold (FMR 1e-4: 0.4205).
const BAND_SELFIE: &str = "David_Beckham/David_Beckham_0004.jpg";
/// Someone whose score against person A's chip photo (about 0.14) is far below the band.
const FAR_SELFIE: &str = "Art_Howe/Art_Howe_0001.jpg";

/// Fast webhook deliveries, for the receiver.
fn options(backend: Backend) -> AppOptions {
    let mut options = cards().app_options(backend);
    options.toml.push_str(&fast_webhooks(1000));
    options
}

async fn tenant_with(
    app: &TestApp,
    settings: TenantSettings,
) -> (jpki_face::domain::TenantId, String) {
    let (tenant, _, key) =
        jpki_face::usecase::tenants::create_tenant_with(app.ctx.svc.store.as_ref(), "t", settings)
            .await
            .unwrap();
    (tenant.id, key.expose().clone())
}

/// Enrolls `person`'s card with the selfie bytes through the RP's backend; returns the answer.
async fn enroll(
    app: &TestApp,
    key: &str,
    person: &jpki_face::devcard::PersonId,
    selfie: Vec<u8>,
) -> Value {
    let response = app
        .post_session(
            key,
            &json!({"purpose": "enrollment", "subject_ref": "rev-subject"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let session: Value = response.json().await.unwrap();
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
            reqwest::multipart::Part::bytes(selfie)
                .file_name("selfie.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let url = app.url(&format!(
        "/v1/sessions/{}/enrollment",
        session["id"].as_str().unwrap()
    ));
    let response = app
        .client
        .post(url)
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn file(rel: &str) -> Vec<u8> {
    std::fs::read(photo(rel)).unwrap()
}

fn codes(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

async fn decide(app: &TestApp, key: &str, id: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/enrollments/{id}/review")))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn approve(reviewer: &str) -> Value {
    json!({"decision": "approve", "reason_code": "verified_by_reviewer", "reviewer": reviewer,
           "note": "chip and selfie compared side by side"})
}

fn reject(reviewer: &str, code: &str) -> Value {
    json!({"decision": "reject", "reason_code": code, "reviewer": reviewer})
}

async fn get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn get_json(app: &TestApp, key: &str, path: &str) -> Value {
    let response = get(app, key, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn evidence(app: &TestApp, key: &str, id: &str, kind: &str) -> reqwest::Response {
    get(
        app,
        key,
        &format!("/v1/enrollments/{id}/evidence/{kind}?reviewer=rev-1"),
    )
    .await
}

/// Asserts a served photo is a JPEG whose longest side is at most 640 px.
async fn assert_jpeg(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    assert!(
        img.width().max(img.height()) <= 640,
        "{}x{}",
        img.width(),
        img.height()
    );
}

async fn audit(
    app: &TestApp,
    tenant: &jpki_face::domain::TenantId,
) -> Vec<jpki_face::store::AuditRow> {
    app.ctx.svc.store.audit_rows(tenant).await.unwrap()
}

async fn rows_of(app: &TestApp, table: CountedTable, tenant: &jpki_face::domain::TenantId) -> i64 {
    jpki_face::store::inspect::count_rows(&app.db_url, table, tenant)
        .await
        .unwrap()
}

async fn a_face_in_the_band_waits_for_a_person_and_an_approve_makes_it_usable(backend: Backend) {
    let app = spawn_app_with(options(backend)).await;
    let (tenant, key) = tenant_with(
        &app,
        TenantSettings {
            review_band_fmr: Some(Rate(0.1)),
            ..Default::default()
        },
    )
    .await;
    let receiver = Receiver::start(0).await;
    let response = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "events": ["enrollment.in_review", "enrollment.reviewed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // A face far below the band: rejected as before.
    let other = enroll(&app, &key, &cards().a, file(FAR_SELFIE)).await;
    assert_eq!(other["status"], "rejected", "{other:#}");
    assert!(other.get("review").is_none());

    let body = enroll(&app, &key, &cards().a, file(BAND_SELFIE)).await;
    assert_eq!(body["status"], "in_review", "{body:#}");
    assert_eq!(codes(&body["review"]["reasons"]), vec!["face_mismatch"]);
    assert_eq!(codes(&body["reasons"]), vec!["face_mismatch"]);
    assert!(
        body["identity"].is_object(),
        "sealed as for verified: {body:#}"
    );
    let id = body["id"].as_str().unwrap().to_string();
    let read = get_json(&app, &key, &format!("/v1/enrollments/{id}")).await;
    assert_eq!(read["status"], "in_review");
    assert_eq!(read["review"], body["review"]);

    // The queue and the case.
    let queue = get_json(&app, &key, "/v1/reviews").await;
    let ids: Vec<&str> = queue["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["enrollment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
    assert!(queue.get("next_cursor").is_none());
    let case = get_json(&app, &key, &format!("/v1/reviews/{id}")).await;
    assert_eq!(case["approvals_needed"], 1);
    assert_eq!(codes(&case["evidence"]), vec!["chip_photo", "selfie"]);
    let score = case["enrollment"]["checks"]["face_match"]["score"]
        .as_f64()
        .unwrap();
    assert!(
        score
            < case["enrollment"]["checks"]["face_match"]["threshold"]
                .as_f64()
                .unwrap()
    );

    // Not usable while in review: no verify, not found by 1:N search.
    let verify = app
        .client
        .post(app.url(&format!("/v1/enrollments/{id}/verify")))
        .bearer_auth(&key)
        .multipart(verify_form(BAND_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    assert_problem(verify, 409, "enrollment_inactive").await;
    let session = app
        .post_session(
            &key,
            &json!({"purpose": "transaction", "enrollment_id": id}),
        )
        .await;
    assert_problem(session, 409, "enrollment_inactive").await;
    let found: Value = app
        .client
        .post(app.url("/v1/faces/search"))
        .bearer_auth(&key)
        .multipart(verify_form(BAND_SELFIE, &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!found.to_string().contains(&id), "{found:#}");

    // The evidence: two JPEGs, each view audited with the viewer.
    assert_jpeg(evidence(&app, &key, &id, "chip_photo").await).await;
    assert_jpeg(evidence(&app, &key, &id, "selfie").await).await;
    let views: Vec<_> = audit(&app, &tenant)
        .await
        .into_iter()
        .filter(|r| r.event == "review.evidence_viewed" && r.subject == id)
        .collect();
    assert_eq!(views.len(), 2);
    assert!(views.iter().all(|r| r.details.contains("rev-1")));
    // A malformed viewer is refused before anything is read.
    let bad = get(
        &app,
        &key,
        &format!("/v1/enrollments/{id}/evidence/selfie?reviewer=Yamada%20Taro"),
    )
    .await;
    assert_problem(bad, 400, "malformed_request").await;

    // A reason code that does not go with the decision: 400, nothing decided.
    let response = decide(&app, &key, &id, reject("rev-1", "verified_by_reviewer")).await;
    assert_problem(response, 400, "malformed_request").await;

    // Approve: verified, evidence gone, usable, found by search.
    let response = decide(&app, &key, &id, approve("rev-1")).await;
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome, json!({"outcome": "decided", "status": "verified"}));
    let read = get_json(&app, &key, &format!("/v1/enrollments/{id}")).await;
    assert_eq!(read["status"], "verified");
    assert_eq!(read["review"]["outcome"]["decision"], "approve");
    assert_eq!(
        read["review"]["outcome"]["reviewers"][0]["reviewer_ref"],
        "rev-1"
    );
    let gone = evidence(&app, &key, &id, "chip_photo").await;
    assert_problem(gone, 404, "not_found").await;
    assert_eq!(
        rows_of(&app, CountedTable::ReviewEvidence, &tenant).await,
        0
    );
    let verify = app
        .client
        .post(app.url(&format!("/v1/enrollments/{id}/verify")))
        .bearer_auth(&key)
        .multipart(verify_form(BAND_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let verify: Value = verify.json().await.unwrap();
    assert_eq!(verify["decision"], "match", "{verify:#}");
    let found: Value = app
        .client
        .post(app.url("/v1/faces/search"))
        .bearer_auth(&key)
        .multipart(verify_form(BAND_SELFIE, &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(found.to_string().contains(&id), "{found:#}");
    // The case still reads, with the note opened for the reviewer; the queue is empty.
    let case = get_json(&app, &key, &format!("/v1/reviews/{id}")).await;
    assert_eq!(
        case["approvals"][0]["note"],
        "chip and selfie compared side by side"
    );
    assert_eq!(case["evidence"], json!([]));
    let queue = get_json(&app, &key, "/v1/reviews").await;
    assert_eq!(queue["reviews"], json!([]));

    // Decided once: a later decision is 409 with the status.
    let again = decide(&app, &key, &id, reject("rev-2", "other")).await;
    let problem = assert_problem(again, 409, "review_already_decided").await;
    assert_eq!(problem["enrollment_status"], "verified");

    // The webhook events reach a real receiver; no note and no personal data in them.
    wait_until(
        "enrollment.reviewed delivered",
        Duration::from_secs(20),
        || !receiver.of_type("enrollment.reviewed").is_empty(),
    )
    .await;
    let reviewed = receiver.of_type("enrollment.reviewed");
    assert_eq!(reviewed.len(), 1);
    let data = &reviewed[0].json()["data"];
    assert_eq!(data["enrollment_id"], id.as_str());
    assert_eq!(data["status"], "verified");
    assert_eq!(data["decision"], "approve");
    assert_eq!(data["reason_code"], "verified_by_reviewer");
    assert!(!String::from_utf8_lossy(&reviewed[0].body).contains("side by side"));
    wait_until(
        "enrollment.in_review delivered",
        Duration::from_secs(20),
        || receiver.of_type("enrollment.in_review").len() == 1,
    )
    .await;
    // The audit event names the reviewer and the decision, never the note.
    let decided: Vec<_> = audit(&app, &tenant)
        .await
        .into_iter()
        .filter(|r| r.event == "enrollment.reviewed" && r.subject == id)
        .collect();
    assert_eq!(decided.len(), 1);
    assert!(decided[0].details.contains("rev-1") && decided[0].details.contains("approve"));
    assert!(!decided[0].details.contains("side by side"));
}

async fn a_masked_selfie_goes_to_review_and_a_reject_shreds_everything(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let (tenant, key) = tenant_with(
        &app,
        TenantSettings {
            selfie_mask: Some(MaskMode::Review),
            // The mask lowers the score: the band keeps a masked genuine face for the reviewer.
            review_band_fmr: Some(Rate(0.1)),
            ..Default::default()
        },
    )
    .await;
    let body = enroll(&app, &key, &cards().a, masked(A_SELFIE).await).await;
    assert_eq!(body["status"], "in_review", "{body:#}");
    assert!(codes(&body["review"]["reasons"]).contains(&"selfie_mask".to_string()));
    let id = body["id"].as_str().unwrap().to_string();
    assert_jpeg(evidence(&app, &key, &id, "selfie").await).await;
    assert!(rows_of(&app, CountedTable::Templates, &tenant).await > 0);

    let response = decide(&app, &key, &id, reject("rev-9", "mask_or_obstruction")).await;
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["status"], "rejected");
    let read = get_json(&app, &key, &format!("/v1/enrollments/{id}")).await;
    assert_eq!(read["status"], "rejected");
    assert!(read["identity"].is_null(), "identity shredded: {read:#}");
    assert_eq!(
        read["review"]["outcome"]["reason_code"],
        "mask_or_obstruction"
    );
    assert_eq!(rows_of(&app, CountedTable::Templates, &tenant).await, 0);
    assert_eq!(
        rows_of(&app, CountedTable::ReviewEvidence, &tenant).await,
        0
    );
    assert_problem(evidence(&app, &key, &id, "selfie").await, 404, "not_found").await;
    // A rejected enrollment cannot be approved afterwards.
    let again = decide(&app, &key, &id, approve("rev-1")).await;
    let problem = assert_problem(again, 409, "review_already_decided").await;
    assert_eq!(problem["enrollment_status"], "rejected");
    // The default tenant (mask mode reject) still asks for a retake.
    let body = enroll(&app, &app.api_key, &cards().a, masked(A_SELFIE).await).await;
    assert_eq!(body["status"], "rejected");
}

async fn a_duplicate_goes_to_review_and_two_racing_decisions_decide_once(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let (tenant, key) = tenant_with(
        &app,
        TenantSettings {
            duplicate_check: Some(CheckMode::Review),
            ..Default::default()
        },
    )
    .await;
    let first = enroll(&app, &key, &cards().a, file(A_SELFIE)).await;
    assert_eq!(first["status"], "verified", "{first:#}");
    let dup = enroll(&app, &key, &cards().a_other_identity, file(A_SELFIE)).await;
    assert_eq!(dup["status"], "in_review", "{dup:#}");
    assert_eq!(codes(&dup["review"]["reasons"]), vec!["duplicate_face"]);
    assert_eq!(dup["checks"]["duplicate_face"]["mode"], "review");
    let id = dup["id"].as_str().unwrap().to_string();

    // Two reviewers at once: exactly one decision wins.
    let (a, b) = tokio::join!(
        decide(&app, &key, &id, approve("rev-1")),
        decide(&app, &key, &id, reject("rev-2", "duplicate_person")),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(
        statuses.contains(&200) && statuses.contains(&409),
        "{statuses:?}"
    );
    let (winner, loser) = if a.status() == 200 { (a, b) } else { (b, a) };
    let won: Value = winner.json().await.unwrap();
    let lost = assert_problem(loser, 409, "review_already_decided").await;
    assert_eq!(lost["enrollment_status"], won["status"]);
    let read = get_json(&app, &key, &format!("/v1/enrollments/{id}")).await;
    assert_eq!(read["status"], won["status"]);
    let decided = audit(&app, &tenant)
        .await
        .into_iter()
        .filter(|r| r.event == "enrollment.reviewed" && r.subject == id)
        .count();
    assert_eq!(decided, 1, "one decision, one audit event");
    let verdict = jpki_face::store::verify_audit_chain(app.ctx.svc.store.as_ref(), &tenant)
        .await
        .unwrap();
    assert!(
        matches!(verdict, jpki_face::store::ChainVerdict::Intact { .. }),
        "{verdict:?}"
    );
}

async fn four_eyes_needs_two_different_reviewers_and_the_queue_pages(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let (_, key) = tenant_with(
        &app,
        TenantSettings {
            duplicate_check: Some(CheckMode::Review),
            review_four_eyes: Some(true),
            ..Default::default()
        },
    )
    .await;
    let first = enroll(&app, &key, &cards().a, file(A_SELFIE)).await;
    assert_eq!(first["status"], "verified", "{first:#}");
    let one = enroll(&app, &key, &cards().a_other_identity, file(A_SELFIE)).await;
    let two = enroll(&app, &key, &cards().a_other_identity, file(A_LATER)).await;
    assert_eq!(one["status"], "in_review", "{one:#}");
    assert_eq!(two["status"], "in_review", "{two:#}");
    let (one, two) = (
        one["id"].as_str().unwrap().to_string(),
        two["id"].as_str().unwrap().to_string(),
    );

    // The queue, one per page, oldest first.
    let page = get_json(&app, &key, "/v1/reviews?limit=1").await;
    assert_eq!(page["reviews"][0]["enrollment_id"], one.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page = get_json(&app, &key, &format!("/v1/reviews?limit=1&cursor={cursor}")).await;
    assert_eq!(page["reviews"][0]["enrollment_id"], two.as_str());
    assert!(page.get("next_cursor").is_none(), "{page:#}");
    assert_problem(
        get(&app, &key, "/v1/reviews?cursor=nonsense").await,
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        get(&app, &key, "/v1/reviews?limit=101").await,
        400,
        "malformed_request",
    )
    .await;

    // First approve: recorded, waiting for a second reviewer.
    let response = decide(&app, &key, &one, approve("rev-1")).await;
    assert_eq!(response.status(), 202);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome, json!({"outcome": "awaiting_second_approval"}));
    let case = get_json(&app, &key, &format!("/v1/reviews/{one}")).await;
    assert_eq!(case["approvals_needed"], 2);
    assert_eq!(case["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(case["enrollment"]["status"], "in_review");
    // The same reviewer again (whichever key): refused.
    let response = decide(&app, &key, &one, approve("rev-1")).await;
    assert_problem(response, 409, "second_reviewer_required").await;
    // A second reviewer decides.
    let response = decide(&app, &key, &one, approve("rev-2")).await;
    assert_eq!(response.status(), 200);
    let read = get_json(&app, &key, &format!("/v1/enrollments/{one}")).await;
    assert_eq!(read["status"], "verified");
    let reviewers: Vec<&str> = read["review"]["outcome"]["reviewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reviewer_ref"].as_str().unwrap())
        .collect();
    assert_eq!(reviewers, vec!["rev-1", "rev-2"]);

    // A reject by anyone decides at once, even after a first approve.
    let response = decide(&app, &key, &two, approve("rev-1")).await;
    assert_eq!(response.status(), 202);
    let response = decide(&app, &key, &two, reject("rev-1", "suspected_fraud")).await;
    assert_eq!(response.status(), 200);
    let read = get_json(&app, &key, &format!("/v1/enrollments/{two}")).await;
    assert_eq!(read["status"], "rejected");
    let case = get_json(&app, &key, &format!("/v1/reviews/{two}")).await;
    assert_eq!(
        case["approvals"],
        json!([]),
        "approvals go with the shredded key"
    );

    // Two different reviewers' first approves at the same instant: one is recorded as the first, the
    // other decides as the second; never two "first" approvals left waiting, never two decisions.
    let three = enroll(&app, &key, &cards().a_other_identity, file(A_SELFIE)).await;
    assert_eq!(three["status"], "in_review", "{three:#}");
    let three = three["id"].as_str().unwrap().to_string();
    let (a, b) = tokio::join!(
        decide(&app, &key, &three, approve("rev-3")),
        decide(&app, &key, &three, approve("rev-4")),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 202]);
    let read = get_json(&app, &key, &format!("/v1/enrollments/{three}")).await;
    assert_eq!(read["status"], "verified", "{read:#}");
    let mut reviewers: Vec<&str> = read["review"]["outcome"]["reviewers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reviewer_ref"].as_str().unwrap())
        .collect();
    reviewers.sort_unstable();
    assert_eq!(reviewers, vec!["rev-3", "rev-4"]);
}

async fn a_signed_unknown_goes_to_review_when_the_tenant_says_so(backend: Backend) {
    // The development checker's fixed answer: a signed `unknown` for every certificate.
    let mut options = AppOptions::new(backend);
    options.toml = format!(
        "[card]\ntrust_dir = \"{}\"\n[jlis]\nmode = \"static\"\nstatic_status = \"unknown\"\n",
        cards().hierarchy.trust_dir().display()
    );
    let app = spawn_app_with(options).await;
    let (_, key) = tenant_with(
        &app,
        TenantSettings {
            review_on_status_unknown: Some(true),
            ..Default::default()
        },
    )
    .await;
    let body = enroll(&app, &key, &cards().a, file(A_SELFIE)).await;
    assert_eq!(body["status"], "in_review", "{body:#}");
    assert_eq!(
        codes(&body["review"]["reasons"]),
        vec!["certificate_status_unknown"]
    );
    let id = body["id"].as_str().unwrap().to_string();
    // Without the setting: rejected as before.
    let default = enroll(&app, &app.api_key, &cards().a, file(A_SELFIE)).await;
    assert_eq!(default["status"], "rejected");
    assert_eq!(
        codes(&default["reasons"]),
        vec!["certificate_status_unknown"]
    );

    let response = decide(&app, &key, &id, approve("ops:alice")).await;
    assert_eq!(response.status(), 200);
    let read = get_json(&app, &key, &format!("/v1/enrollments/{id}")).await;
    assert_eq!(read["status"], "verified");
}

async fn evidence_is_shredded_by_retention_and_by_deletion(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let (tenant, key) = tenant_with(
        &app,
        TenantSettings {
            duplicate_check: Some(CheckMode::Review),
            review_evidence_retention_secs: Some(60),
            ..Default::default()
        },
    )
    .await;
    enroll(&app, &key, &cards().a, file(A_SELFIE)).await;
    let kept = enroll(&app, &key, &cards().a_other_identity, file(A_SELFIE)).await;
    let deleted = enroll(&app, &key, &cards().a_other_identity, file(A_LATER)).await;
    assert_eq!(kept["status"], "in_review", "{kept:#}");
    assert_eq!(deleted["status"], "in_review", "{deleted:#}");
    let (kept, deleted) = (
        kept["id"].as_str().unwrap().to_string(),
        deleted["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        rows_of(&app, CountedTable::ReviewEvidence, &tenant).await,
        4
    );

    // Deleting an enrollment in review takes its evidence.
    let response = app
        .client
        .delete(app.url(&format!("/v1/enrollments/{deleted}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        rows_of(&app, CountedTable::ReviewEvidence, &tenant).await,
        2
    );
    assert_problem(
        evidence(&app, &key, &deleted, "chip_photo").await,
        404,
        "not_found",
    )
    .await;

    // Before its cap, a retention run keeps it; after, it is gone (the enrollment still waits).
    let now = jpki_face::domain::now_millis();
    jpki_face::usecase::retention::run_once(&app.ctx.svc, now)
        .await
        .unwrap();
    assert_eq!(
        rows_of(&app, CountedTable::ReviewEvidence, &tenant).await,
        2
    );
    jpki_face::usecase::retention::run_once(&app.ctx.svc, now + 61_000)
        .await
        .unwrap();
    assert_eq!(
        rows_of(&app, CountedTable::ReviewEvidence, &tenant).await,
        0
    );
    assert_problem(
        evidence(&app, &key, &kept, "selfie").await,
        404,
        "not_found",
    )
    .await;
    let case = get_json(&app, &key, &format!("/v1/reviews/{kept}")).await;
    assert_eq!(case["evidence"], json!([]));
    assert_eq!(case["enrollment"]["status"], "in_review");
    assert!(audit(&app, &tenant)
        .await
        .iter()
        .any(|r| r.event == "retention.purged" && r.details.contains("review_evidence")));
}

async fn another_tenant_finds_nothing_on_any_review_route(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let (_, key) = tenant_with(
        &app,
        TenantSettings {
            duplicate_check: Some(CheckMode::Review),
            ..Default::default()
        },
    )
    .await;
    enroll(&app, &key, &cards().a, file(A_SELFIE)).await;
    let dup = enroll(&app, &key, &cards().a_other_identity, file(A_SELFIE)).await;
    assert_eq!(dup["status"], "in_review", "{dup:#}");
    let id = dup["id"].as_str().unwrap().to_string();

    let other = &app.api_key;
    assert_eq!(
        get_json(&app, other, "/v1/reviews").await["reviews"],
        json!([])
    );
    assert_problem(
        get(&app, other, &format!("/v1/reviews/{id}")).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        evidence(&app, other, &id, "chip_photo").await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        decide(&app, other, &id, approve("rev-1")).await,
        404,
        "not_found",
    )
    .await;
    // A verified enrollment never went to review: no case.
    let verified = enroll_person_a(&app).await;
    assert_problem(
        get(&app, other, &format!("/v1/reviews/{verified}")).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        decide(&app, other, &verified, approve("rev-1")).await,
        409,
        "review_already_decided",
    )
    .await;
    // A client token reaches none of it.
    let session = app.enrollment_session().await;
    let token = client_token(&session);
    assert_problem(get(&app, &token, "/v1/reviews").await, 403, "forbidden").await;
    assert_problem(
        decide(&app, &token, &id, approve("rev-1")).await,
        403,
        "forbidden",
    )
    .await;
    // The owner still decides.
    assert_eq!(
        decide(&app, &key, &id, approve("rev-1")).await.status(),
        200
    );
}
