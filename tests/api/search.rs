//! 1:N face search (issue 21) over HTTP on both backends: the duplicate check at enrollment, the
//! watchlist on enrollment and verify, `POST /v1/faces/search`, what a client token cannot learn,
//! and a shredded enrollment that is never found again, here and on a second instance sharing the
//! database.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::devcard::PersonId;
use jpki_face::domain::search::CheckMode;
use jpki_face::store::TenantSettings;
use serde_json::{json, Value};
use std::time::Duration;

crate::on_both_backends!(
    a_duplicate_face_with_another_identity_is_flagged_with_the_first_id,
    reject_mode_rejects_a_duplicate,
    a_shredded_enrollment_is_never_found_again_here_or_on_a_second_instance,
    watchlist_hits_on_enrollment_and_on_verify,
    a_client_token_cannot_search_list_or_learn_ids,
);

/// Test options: the feed polled often, so a second instance follows within a fraction of a second.
fn options(backend: Backend) -> AppOptions {
    let mut options = cards().app_options(backend);
    options.toml.push_str("[search]\npoll_interval_ms = 100\n");
    // Events are written to the outbox (a subscriber exists) but nobody delivers them.
    options
        .toml
        .push_str("[webhooks]\nworker_enabled = false\n");
    options
}

/// Subscribes the tenant to the 1:N events, so they are written to the outbox.
async fn subscribe(app: &TestApp, key: &str) {
    let response = app
        .client
        .post(app.url("/v1/webhooks"))
        .bearer_auth(key)
        .json(&json!({"url": "http://127.0.0.1:9/hook",
                      "events": ["enrollment.duplicate_face", "watchlist.hit"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// A tenant with these settings on `app`; returns its API key.
async fn tenant_with(app: &TestApp, settings: TenantSettings) -> String {
    let (_, _, key) =
        jpki_face::usecase::tenants::create_tenant_with(app.ctx.svc.store.as_ref(), "t", settings)
            .await
            .unwrap();
    key.expose().clone()
}

async fn session(app: &TestApp, key: &str, body: Value) -> Value {
    let response = app.post_session(key, &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Enrolls `person`'s card with `selfie` through the app (client token); returns the answer.
async fn enroll_as_client(app: &TestApp, key: &str, person: &PersonId, selfie: &str) -> Value {
    let s = session(app, key, json!({"purpose": "enrollment"})).await;
    let card = cards().sign(person, &s);
    let response = post_enrollment(app, &client_token(&s), &card, selfie, &[]).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Enrolls through the RP's backend (API key, `POST /v1/sessions/{id}/enrollment`).
async fn enroll_as_backend(app: &TestApp, key: &str, person: &PersonId, selfie: &str) -> Value {
    let s = session(app, key, json!({"purpose": "enrollment"})).await;
    let card = cards().sign(person, &s);
    let url = app.url(&format!(
        "/v1/sessions/{}/enrollment",
        s["id"].as_str().unwrap()
    ));
    let response = app
        .client
        .post(url)
        .bearer_auth(key)
        .multipart(enrollment_form(&card, selfie, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn search(app: &TestApp, key: &str, selfie: &str) -> Value {
    let response = app
        .client
        .post(app.url("/v1/faces/search"))
        .bearer_auth(key)
        .multipart(verify_form(selfie, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn candidate_ids(found: &Value) -> Vec<String> {
    found["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["enrollment_id"].as_str().unwrap().to_string())
        .collect()
}

fn reasons(doc: &Value) -> Vec<String> {
    serde_json::from_value(doc["reasons"].clone()).unwrap_or_default()
}

/// Event types written to the tenant's webhook outbox.
async fn outbox_types(app: &TestApp) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    let rows = sqlx::query("SELECT type FROM webhook_events ORDER BY created_at")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>("type")).collect()
}

/// Waits (bounded) until `cond` holds for a search on `app`; returns the last answer.
async fn eventually(app: &TestApp, key: &str, cond: impl Fn(&[String]) -> bool) -> Value {
    for _ in 0..300 {
        let found = search(app, key, A_SELFIE).await;
        if cond(&candidate_ids(&found)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the second instance never caught up");
}

async fn a_duplicate_face_with_another_identity_is_flagged_with_the_first_id(backend: Backend) {
    let app = spawn_app_with(options(backend)).await;
    let key = tenant_with(
        &app,
        TenantSettings {
            duplicate_check: Some(CheckMode::Flag),
            ..Default::default()
        },
    )
    .await;
    subscribe(&app, &key).await;
    let c = cards();
    let first = enroll_as_client(&app, &key, &c.a, A_SELFIE).await;
    assert_eq!(first["status"], "verified", "{first:#}");
    assert_eq!(first["checks"]["duplicate_face"]["result"], "clear");
    let first_id = first["id"].as_str().unwrap().to_string();

    // The same person again (same name and birth date; here the same card): no duplicate.
    let again = enroll_as_client(&app, &key, &c.a, A_LATER).await;
    assert_eq!(again["status"], "verified", "{again:#}");
    assert!(reasons(&again).is_empty(), "{again:#}");
    assert_eq!(again["checks"]["duplicate_face"]["result"], "clear");

    // The same face behind a card of another identity, through the RP's backend: flagged, with ids.
    let second = enroll_as_backend(&app, &key, &c.a_other_identity, A_SELFIE).await;
    assert_eq!(
        second["status"], "verified",
        "flag keeps the status: {second:#}"
    );
    assert_eq!(reasons(&second), vec!["duplicate_face"]);
    let check = &second["checks"]["duplicate_face"];
    assert_eq!(check["result"], "hit");
    assert_eq!(check["mode"], "flag");
    let ids: Vec<&str> = check["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["enrollment_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&first_id.as_str()), "{check:#}");
    assert!(ids.contains(&again["id"].as_str().unwrap()), "{check:#}");
    assert_eq!(check["candidates"][0]["rank"], 1);

    // Through the app (client token): the reason, never the other ids.
    let third = enroll_as_client(&app, &key, &c.a_other_identity, A_SELFIE).await;
    assert_eq!(reasons(&third), vec!["duplicate_face"]);
    assert_eq!(third["checks"]["duplicate_face"]["result"], "hit");
    assert!(third["checks"]["duplicate_face"]
        .get("candidates")
        .is_none());
    let text = third.to_string();
    assert!(
        !text.contains(&first_id),
        "a client token learnt another enrollment's id"
    );
    assert!(!text.contains(second["id"].as_str().unwrap()));
    // The RP's backend reads them.
    let third_id = third["id"].as_str().unwrap();
    let read: Value = app
        .client
        .get(app.url(&format!("/v1/enrollments/{third_id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(read["checks"]["duplicate_face"]["candidates"]
        .to_string()
        .contains(&first_id));
    // A webhook event per flagged enrollment, and the audit event names the other enrollments.
    let types = outbox_types(&app).await;
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "enrollment.duplicate_face")
            .count(),
        2,
        "{types:?}"
    );
    let tenant = app
        .ctx
        .svc
        .store
        .api_key_by_hash(&jpki_face::domain::credential_hash(&key))
        .await
        .unwrap()
        .unwrap()
        .1;
    let audit = app.ctx.svc.store.audit_rows(&tenant).await.unwrap();
    assert!(audit
        .iter()
        .any(|r| r.subject == third_id && r.details.contains(&first_id)));
}

async fn reject_mode_rejects_a_duplicate(backend: Backend) {
    let app = spawn_app_with(options(backend)).await;
    let key = tenant_with(
        &app,
        TenantSettings {
            duplicate_check: Some(CheckMode::Reject),
            ..Default::default()
        },
    )
    .await;
    let c = cards();
    let first = enroll_as_client(&app, &key, &c.a, A_SELFIE).await;
    assert_eq!(first["status"], "verified");
    let second = enroll_as_backend(&app, &key, &c.a_other_identity, A_SELFIE).await;
    assert_eq!(second["status"], "rejected", "{second:#}");
    assert_eq!(reasons(&second), vec!["duplicate_face"]);
    assert_eq!(second["identity"], Value::Null, "nothing personal is kept");
    // A rejected enrollment keeps no template: it is in no gallery.
    let found = search(&app, &key, A_SELFIE).await;
    assert_eq!(candidate_ids(&found), vec![first["id"].as_str().unwrap()]);
}

async fn a_shredded_enrollment_is_never_found_again_here_or_on_a_second_instance(backend: Backend) {
    let one = spawn_app_with(options(backend)).await;
    let key = one.api_key.clone();
    let doomed = enroll_card(&one, &cards().a).await;

    // A second instance on the same database builds its gallery from the sealed templates.
    let mut second = options(backend);
    second.db_url = Some(one.db_url.clone());
    second.kek = Some(one.kek.clone());
    let two = spawn_app_with(second).await;
    let found = search(&two, &key, A_SELFIE).await;
    assert_eq!(found["result"], "searched");
    assert_eq!(candidate_ids(&found), vec![doomed.clone()], "{found:#}");
    assert!(found["candidates"][0]["score"].as_f64().unwrap() > 0.9);
    assert!(found["gallery_size"].as_u64().unwrap() >= 1);

    // A new enrollment on the first reaches the second through the feed.
    let kept = enroll_card(&one, &cards().a).await;
    eventually(&two, &key, |ids| ids.contains(&kept)).await;

    // Shredded on the first: gone there at once, and from the second within a poll or two.
    let response = one
        .client
        .delete(one.url(&format!("/v1/enrollments/{doomed}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let here = search(&one, &key, A_SELFIE).await;
    assert!(!candidate_ids(&here).contains(&doomed), "{here:#}");
    let there = eventually(&two, &key, |ids| !ids.contains(&doomed)).await;
    assert_eq!(candidate_ids(&there), vec![kept.clone()]);
    // And never again: a later search, and a third instance built after the deletion.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!candidate_ids(&search(&two, &key, A_SELFIE).await).contains(&doomed));
    let mut third = options(backend);
    third.db_url = Some(one.db_url.clone());
    third.kek = Some(one.kek.clone());
    let three = spawn_app_with(third).await;
    assert_eq!(
        candidate_ids(&search(&three, &key, A_SELFIE).await),
        vec![kept]
    );
    // Another tenant of the same database sees none of it.
    let (_, other) = one.other_tenant().await;
    assert!(candidate_ids(&search(&two, &other, A_SELFIE).await).is_empty());
}

fn b64(path: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(photo(path)).unwrap())
}

async fn watchlist_hits_on_enrollment_and_on_verify(backend: Backend) {
    let app = spawn_app_with(options(backend)).await;
    let key = app.api_key.clone();
    subscribe(&app, &key).await;
    let label = "詐欺グループ A-17";
    let response = app
        .client
        .post(app.url("/v1/watchlist"))
        .bearer_auth(&key)
        .json(&json!({"photo": b64(A_LATER), "label": label, "reason": "mule account 2026-11"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let entry: Value = response.json().await.unwrap();
    let entry_id = entry["id"].as_str().unwrap().to_string();
    assert!(entry_id.starts_with("wle_"));
    assert_eq!(entry["label"], label);
    let listed: Value = app
        .client
        .get(app.url("/v1/watchlist"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["entries"][0]["id"], entry_id.as_str());
    assert_eq!(listed["entries"][0]["reason"], "mule account 2026-11");

    // Enrollment through the app: the reason, never the entry or its label.
    let enrolled = enroll_as_client(&app, &key, &cards().a, A_SELFIE).await;
    assert_eq!(
        enrolled["status"], "verified",
        "flag by default: {enrolled:#}"
    );
    assert_eq!(reasons(&enrolled), vec!["watchlist_hit"]);
    assert_eq!(enrolled["checks"]["watchlist"]["result"], "hit");
    let text = enrolled.to_string();
    assert!(!text.contains(&entry_id) && !text.contains(label), "{text}");
    let enrollment_id = enrolled["id"].as_str().unwrap();
    let read: Value = app
        .client
        .get(app.url(&format!("/v1/enrollments/{enrollment_id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["checks"]["watchlist"]["entries"][0]["entry_id"],
        entry_id.as_str()
    );
    assert!(
        !read.to_string().contains(label),
        "labels stay in /v1/watchlist"
    );

    // A verify through the app: still a match, flagged, without the entry.
    let tx = open_session(
        &app,
        json!({"purpose": "transaction", "enrollment_id": enrollment_id}),
    )
    .await;
    let response = post_verify(&app, &client_token(&tx), A_SELFIE, &[]).await;
    assert_eq!(response.status(), 200);
    let verified: Value = response.json().await.unwrap();
    assert_eq!(verified["decision"], "match");
    assert_eq!(reasons(&verified), vec!["watchlist_hit"]);
    assert!(!verified.to_string().contains(&entry_id));
    // The RP's backend sees the entry id.
    let response = app
        .client
        .post(app.url(&format!("/v1/enrollments/{enrollment_id}/verify")))
        .bearer_auth(&key)
        .multipart(verify_form(A_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    let verified: Value = response.json().await.unwrap();
    assert_eq!(
        verified["watchlist"]["entries"][0]["entry_id"],
        entry_id.as_str()
    );
    let types = outbox_types(&app).await;
    assert_eq!(
        types.iter().filter(|t| *t == "watchlist.hit").count(),
        3,
        "{types:?}"
    );

    // Sealed at rest: the label is nowhere in clear.
    {
        use sqlx::Row;
        let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
        let row =
            sqlx::query("SELECT label_sealed, reason_sealed FROM watchlist_entries WHERE id = $1")
                .bind(&entry_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        for col in ["label_sealed", "reason_sealed"] {
            let blob: Vec<u8> = row.get(col);
            assert!(!blob.windows(6).any(|w| w == &label.as_bytes()[..6]));
            assert!(!String::from_utf8_lossy(&blob).contains("mule"));
        }
        pool.close().await;
    }

    // Deleted (shredded): no more hits, and 404 after.
    let response = app
        .client
        .delete(app.url(&format!("/v1/watchlist/{entry_id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_problem(
        app.client
            .get(app.url(&format!("/v1/watchlist/{entry_id}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let after = enroll_as_client(&app, &key, &cards().a, A_SELFIE).await;
    assert!(reasons(&after).is_empty(), "{after:#}");
    assert_eq!(after["checks"]["watchlist"]["result"], "clear");
}

async fn a_client_token_cannot_search_list_or_learn_ids(backend: Backend) {
    let app = spawn_app_with(options(backend)).await;
    let enrollment = enroll_person_a(&app).await;
    let s = app.enrollment_session().await;
    let token = client_token(&s);
    let response = app
        .client
        .post(app.url("/v1/faces/search"))
        .bearer_auth(&token)
        .multipart(verify_form(A_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 403, "forbidden").await;
    assert!(!body.to_string().contains(&enrollment));
    for path in [
        "/v1/watchlist".to_string(),
        format!("/v1/watchlist/wle_{}", "0".repeat(32)),
    ] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_problem(response, 403, "forbidden").await;
    }
    let response = app
        .client
        .post(app.url("/v1/watchlist"))
        .bearer_auth(&token)
        .json(&json!({"photo": b64(A_LATER), "label": "x", "reason": "y"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
    // Bad input to the API key's search is refused before any face work.
    let response = app
        .client
        .post(app.url("/v1/faces/search?limit=0"))
        .bearer_auth(&app.api_key)
        .multipart(verify_form(A_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "malformed_request").await;
    let response = app
        .client
        .post(app.url("/v1/faces/search"))
        .bearer_auth(&app.api_key)
        .multipart(verify_form(
            A_SELFIE,
            &[("enrollment_id", enrollment.clone())],
        ))
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "malformed_request").await;
}
