//! `POST /v1/sessions`: fields and TTL as api.md, credentials, single tenant scope, idempotency.

use crate::helpers::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

crate::on_both_backends!(
    session_has_the_documented_fields_and_ttl,
    a_client_token_cannot_open_sessions,
    transaction_sessions_need_an_enrollment_of_this_tenant,
    idempotency_key_replays_or_conflicts,
    session_tokens_are_stored_only_as_hashes,
    sessions_carry_the_tenants_liveness_challenge,
);

async fn sessions_carry_the_tenants_liveness_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let off = app.enrollment_session().await;
    assert_eq!(off["liveness"]["kind"], "off");
    let settings = jpki_face::store::TenantSettings {
        liveness: Some(jpki_face::liveness::LivenessMode::PoseSequence),
        ..Default::default()
    };
    let (_, _, key) = jpki_face::usecase::tenants::create_tenant_with(
        app.ctx.svc.store.as_ref(),
        "strict",
        settings,
    )
    .await
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let body: serde_json::Value = app
            .post_session(key.expose(), &json!({"purpose": "enrollment"}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["liveness"]["kind"], "pose_sequence");
        let prompts: Vec<String> =
            serde_json::from_value(body["liveness"]["prompts"].clone()).unwrap();
        assert!((2..=4).contains(&prompts.len()), "{prompts:?}");
        assert!(prompts
            .iter()
            .all(|p| ["face_left", "face_right", "face_up", "face_front"].contains(&p.as_str())));
        assert!(prompts.windows(2).all(|w| w[0] != w[1]));
        assert!(body["liveness"]["prompt"]
            .as_str()
            .unwrap()
            .contains("then"));
        seen.insert(prompts);
    }
    assert!(seen.len() > 1, "challenges are random per session");
}

async fn session_has_the_documented_fields_and_ttl(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[sessions]\nttl_secs = 123\n".into();
    let app = spawn_app_with(options).await;
    let before = chrono::Utc::now();
    let response = app
        .post_session(
            &app.api_key,
            &json!({"purpose": "enrollment", "subject_ref": "customer-8812"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("ses_") && id.len() >= 4 + 24, "{id}");
    assert_eq!(body["purpose"], "enrollment");
    assert!(body["client_token"].as_str().unwrap().starts_with("jfc_"));
    let nonce = URL_SAFE_NO_PAD
        .decode(body["nonce"].as_str().unwrap())
        .expect("base64url nonce");
    assert_eq!(nonce.len(), 32);
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let ttl = (expires.with_timezone(&chrono::Utc) - before).num_seconds();
    assert!((121..=124).contains(&ttl), "ttl {ttl}");
    assert!(body["liveness"]["kind"].is_string());

    let again: serde_json::Value = app
        .post_session(&app.api_key, &json!({"purpose": "enrollment"}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(again["id"], body["id"]);
    assert_ne!(again["nonce"], body["nonce"]);
}

async fn a_client_token_cannot_open_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = app.enrollment_session().await;
    let token = session["client_token"].as_str().unwrap();
    let response = app
        .post_session(token, &json!({"purpose": "enrollment"}))
        .await;
    assert_problem(response, 403, "forbidden").await;
}

async fn transaction_sessions_need_an_enrollment_of_this_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .post_session(
            &app.api_key,
            &json!({"purpose": "transaction", "enrollment_id": "enr_00000000000000000000000000000000"}),
        )
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .post_session(&app.api_key, &json!({"purpose": "transaction"}))
        .await;
    assert_problem(response, 400, "malformed_request").await;

    // An enrollment of tenant A is invisible to tenant B.
    let enrollment_id =
        crate::store_contract::insert_enrollment(&app, &app.tenant_id, "verified").await;
    let response = app
        .post_session(
            &app.api_key,
            &json!({"purpose": "transaction", "enrollment_id": enrollment_id}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let (_, other_key) = app.other_tenant().await;
    let response = app
        .post_session(
            &other_key,
            &json!({"purpose": "transaction", "enrollment_id": enrollment_id}),
        )
        .await;
    assert_problem(response, 404, "not_found").await;

    // A rejected enrollment cannot be re-verified.
    let rejected = crate::store_contract::insert_enrollment(&app, &app.tenant_id, "rejected").await;
    let response = app
        .post_session(
            &app.api_key,
            &json!({"purpose": "transaction", "enrollment_id": rejected}),
        )
        .await;
    assert_problem(response, 409, "enrollment_inactive").await;
}

async fn idempotency_key_replays_or_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let send = |body: serde_json::Value| {
        app.client
            .post(app.url("/v1/sessions"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "order-77")
            .json(&body)
            .send()
    };
    let first = send(json!({"purpose": "enrollment", "subject_ref": "c-9"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let replay = send(json!({"purpose": "enrollment", "subject_ref": "c-9"}))
        .await
        .unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let replay: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(replay, first, "the first answer is replayed");
    let sessions = app.count(jpki_face::store::CountedTable::Sessions).await;
    assert_eq!(sessions, 1, "the retry created nothing");
    let conflict = send(json!({"purpose": "enrollment", "subject_ref": "c-10"}))
        .await
        .unwrap();
    assert_problem(conflict, 409, "idempotency_conflict").await;
}

async fn session_tokens_are_stored_only_as_hashes(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = app.enrollment_session().await;
    let token = session["client_token"].as_str().unwrap();
    let dump = crate::store_contract::dump_database(&app).await;
    assert!(!dump.contains(token), "client token in the database");
    assert!(!dump.contains(&app.api_key), "API key in the database");
    // The token authenticates for its session (here: it is a valid credential, just not for this route).
    let response = app
        .post_session(token, &json!({"purpose": "enrollment"}))
        .await;
    assert_eq!(response.status(), 403);
}
