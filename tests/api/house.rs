//! What the house issue changed at the API's edge: the server-to-server operations (ids in the path),
//! typed path ids, the metrics token, the per-address budget of failed authentications, the
//! work-conserving tenant limit, and an old stored decision record that still renders.

use crate::cards::*;
use crate::helpers::*;
use serde_json::{json, Value};

crate::on_both_backends!(
    the_backend_enrolls_and_verifies_through_its_own_operations,
    malformed_ids_in_paths_name_nothing,
    a_lone_tenant_is_never_rate_limited,
    an_address_with_many_failed_authentications_waits_before_the_database_is_asked,
    behind_a_trusted_proxy_the_budget_counts_the_forwarded_client,
    metrics_need_the_configured_token,
    a_decision_record_written_before_schema_versions_still_renders,
);

async fn the_backend_enrolls_and_verifies_through_its_own_operations(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    // The app's operation refuses an API key (it used to need a `session_id` field with it).
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let refused = post_enrollment(&app, &app.api_key, &card, A_SELFIE, &[]).await;
    assert_problem(refused, 403, "forbidden").await;
    // The same upload to the session's own path enrolls.
    let path = format!(
        "/v1/sessions/{}/enrollment",
        session["id"].as_str().unwrap()
    );
    let response = app
        .client
        .post(app.url(&path))
        .bearer_auth(&app.api_key)
        .multipart(enrollment_form(&card, A_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let enrolled: Value = response.json().await.unwrap();
    assert_eq!(enrolled["status"], "verified", "{enrolled:#}");
    let id = enrolled["id"].as_str().unwrap();
    // The id may not come twice.
    let session2 = app.enrollment_session().await;
    let card2 = cards.sign(&cards.a, &session2);
    let path2 = format!(
        "/v1/sessions/{}/enrollment",
        session2["id"].as_str().unwrap()
    );
    let twice = app
        .client
        .post(app.url(&path2))
        .bearer_auth(&app.api_key)
        .multipart(enrollment_form(
            &card2,
            A_SELFIE,
            &[("session_id", session2["id"].as_str().unwrap().to_string())],
        ))
        .send()
        .await
        .unwrap();
    assert_problem(twice, 400, "malformed_request").await;
    // A client token cannot use the backend's operation.
    let by_app = app
        .client
        .post(app.url(&path2))
        .bearer_auth(client_token(&session2))
        .multipart(enrollment_form(&card2, A_SELFIE, &[]))
        .send()
        .await
        .unwrap();
    assert_problem(by_app, 403, "forbidden").await;

    // Server-to-server verify: the enrollment in the path.
    let verify = app
        .client
        .post(app.url(&format!("/v1/enrollments/{id}/verify")))
        .bearer_auth(&app.api_key)
        .multipart(verify_form(A_LATER, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let body: Value = verify.json().await.unwrap();
    assert_eq!(body["decision"], "match", "{body:#}");
    assert_eq!(body["enrollment_id"], id);
    // The app's verify operation refuses an API key without the (deprecated) field.
    let refused = post_verify(&app, &app.api_key, A_LATER, &[]).await;
    assert_problem(refused, 403, "forbidden").await;
    // The deprecated form still works during the deprecation period.
    let legacy = post_verify(
        &app,
        &app.api_key,
        A_LATER,
        &[("enrollment_id", id.to_string())],
    )
    .await;
    assert_eq!(legacy.status(), 200);
}

async fn malformed_ids_in_paths_name_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/v1/enrollments/nope",
        "/v1/enrollments/enr_XYZ",
        "/v1/enrollments/ses_00000000000000000000000000000000",
        "/v1/webhooks/whk_%27%3B--",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        assert_problem(response, 404, "not_found").await;
    }
    let response = app
        .client
        .post(app.url("/v1/enrollments/enr_1/verify"))
        .bearer_auth(&app.api_key)
        .multipart(verify_form(A_LATER, &[]))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not_found").await;
}

async fn a_lone_tenant_is_never_rate_limited(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[server]\ntenant_rate_per_sec = 1.0\ntenant_burst = 2.0\n".into();
    let app = spawn_app_with(options).await;
    let body = json!({"purpose": "enrollment"});
    let burst = (0..20).map(|_| app.post_session(&app.api_key, &body));
    let statuses: Vec<u16> = futures::future::join_all(burst)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    // As soon as another tenant is active, fairness applies again.
    let (_, other_key) = app.other_tenant().await;
    assert_eq!(app.post_session(&other_key, &body).await.status(), 201);
    let flood = (0..20).map(|_| app.post_session(&app.api_key, &body));
    let limited = futures::future::join_all(flood)
        .await
        .iter()
        .filter(|r| r.status() == 429)
        .count();
    assert!(limited >= 15, "limited: {limited}");
}

async fn an_address_with_many_failed_authentications_waits_before_the_database_is_asked(
    backend: Backend,
) {
    let mut options = AppOptions::new(backend);
    options.toml = "[server]\nauth_failure_burst = 3.0\nauth_failures_per_sec = 0.01\n".into();
    let app = spawn_app_with(options).await;
    let body = json!({"purpose": "enrollment"});
    let bad = format!("jfk_live_{}", "A".repeat(43));
    for _ in 0..3 {
        assert_eq!(app.post_session(&bad, &body).await.status(), 401);
    }
    let limited = app.post_session(&bad, &body).await;
    assert!(limited.headers().get("retry-after").is_some());
    let problem = assert_problem(limited, 429, "rate_limited").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("failed authentications"));
    // The budget is the address's: from here even a good key waits.
    let good = app.post_session(&app.api_key, &body).await;
    assert_problem(good, 429, "rate_limited").await;
}

async fn behind_a_trusted_proxy_the_budget_counts_the_forwarded_client(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[server]\nauth_failure_burst = 2.0\nauth_failures_per_sec = 0.01\ntrusted_proxies = [\"127.0.0.1\"]\n".into();
    let app = spawn_app_with(options).await;
    let body = json!({"purpose": "enrollment"});
    let bad = format!("jfk_live_{}", "B".repeat(43));
    let post = |key: String, client: &'static str| {
        app.client
            .post(app.url("/v1/sessions"))
            .bearer_auth(key)
            .header("x-forwarded-for", client)
            .json(&body)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            post(bad.clone(), "203.0.113.9").await.unwrap().status(),
            401
        );
    }
    assert_problem(
        post(bad.clone(), "203.0.113.9").await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    // Another client behind the same balancer is not held up.
    assert_eq!(
        post(app.api_key.clone(), "198.51.100.7")
            .await
            .unwrap()
            .status(),
        201
    );
    // A client prepending an address cannot escape: the balancer's entry counts.
    assert_problem(
        post(bad, "198.51.100.7, 203.0.113.9").await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
}

async fn metrics_need_the_configured_token(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[server]\nmetrics_token = \"m3tr1cs-t0ken-for-tests\"\n".into();
    let app = spawn_app_with(options).await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("m3tr1cs-t0ken-for-testz")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("m3tr1cs-t0ken-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("http_requests_total"));
}

/// A `document` as the first version wrote it (no `schema` member), stored as a row.
const V1_DOCUMENT: &str = r#"{"reasons":["certificate_revoked"],"checks":{"card_data":{"result":"valid","issuer_key_id":"9000023/001"},"card_present":{"result":"valid"},"certificate":{"result":"valid","serial":null,"issuer":null,"not_after":null},"revocation":{"result":"revoked","method":"ocsp","checked_at":"2026-12-01T10:00:00.000Z","reason":"keyCompromise","revoked_at":"2026-11-30T09:00:00Z","responder":null},"consistency":{"result":"match","mismatched":[]},"hojo":null,"hojo_binding":{"result":"not_required","certificate_mismatched":[],"kenmen_mismatched":[]},"selfie_quality":null,"chip_photo_quality":null,"liveness":{"result":"not_evaluated","kind":"off"},"face_match":{"result":"not_compared","score":null,"threshold":0.3,"target_fmr":0.0001,"model":"sface@0ba9fbfa"}}}"#;

async fn a_decision_record_written_before_schema_versions_still_renders(backend: Backend) {
    let app = spawn_app(backend).await;
    let session_id = crate::store_contract::insert_session(&app, &app.tenant_id).await;
    let mut row =
        crate::store_contract::new_enrollment(&app, &app.tenant_id, &session_id, "rejected");
    row.document = V1_DOCUMENT.into();
    row.identity_sealed = None;
    row.wrapped_key = None;
    row.templates.clear();
    let audit = jpki_face::store::AuditEvent::new(
        &app.tenant_id,
        jpki_face::domain::AuditKind::EnrollmentCreated,
        row.id.as_str(),
        json!({}),
    );
    app.ctx
        .svc
        .store
        .create_enrollment(&row, &audit, None, &[])
        .await
        .unwrap();
    let response = app
        .client
        .get(app.url(&format!("/v1/enrollments/{}", row.id)))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["reasons"], json!(["certificate_revoked"]));
    assert_eq!(doc["checks"]["revocation"]["reason"], "keyCompromise");
}
