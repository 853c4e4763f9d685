//! Unauthenticated, malformed, oversize and wrong-content-type requests get their documented codes.

use crate::helpers::*;
use serde_json::json;

crate::on_both_backends!(
    every_auth_failure_is_the_same_401,
    bad_bodies_get_their_codes,
    unknown_routes_are_problems_too
);

async fn every_auth_failure_is_the_same_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"purpose": "enrollment"});
    let url = app.url("/v1/sessions");
    let mut details = Vec::new();
    let no_header = app.client.post(&url).json(&body).send().await.unwrap();
    details.push(assert_problem(no_header, 401, "unauthenticated").await["detail"].clone());
    for bearer in [
        "jfk_live_not-a-real-key",
        "jfc_not-a-real-token",
        "garbage",
        "",
    ] {
        let response = app.post_session(bearer, &body).await;
        details.push(assert_problem(response, 401, "unauthenticated").await["detail"].clone());
    }
    let basic = app
        .client
        .post(&url)
        .basic_auth("u", Some("p"))
        .json(&body)
        .send()
        .await
        .unwrap();
    details.push(assert_problem(basic, 401, "unauthenticated").await["detail"].clone());

    // A revoked key, and an expired client token.
    let (key_id, key) =
        jpki_face::usecase::tenants::create_api_key(app.ctx.svc.store.as_ref(), &app.tenant_id)
            .await
            .unwrap();
    assert_eq!(app.post_session(key.expose(), &body).await.status(), 201);
    assert!(app
        .ctx
        .svc
        .store
        .revoke_api_key(
            jpki_face::store::KeyRef::Id(&key_id),
            jpki_face::domain::now_millis()
        )
        .await
        .unwrap());
    details.push(
        assert_problem(
            app.post_session(key.expose(), &body).await,
            401,
            "unauthenticated",
        )
        .await["detail"]
            .clone(),
    );

    let mut short = AppOptions::new(backend);
    short.toml = "[sessions]\nttl_secs = 1\n".into();
    let short = spawn_app_with(short).await;
    let session = short.enrollment_session().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = short
        .post_session(session["client_token"].as_str().unwrap(), &body)
        .await;
    details.push(assert_problem(expired, 401, "unauthenticated").await["detail"].clone());

    assert!(
        details.windows(2).all(|w| w[0] == w[1]),
        "one answer for every failure: {details:?}"
    );
}

async fn bad_bodies_get_their_codes(backend: Backend) {
    let mut options = AppOptions::new(backend);
    options.toml = "[server]\nbody_limit_bytes = 2048\n".into();
    let app = spawn_app_with(options).await;
    let url = app.url("/v1/sessions");
    let post = |body: String, content_type: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&app.api_key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        post("{not json".into(), "application/json").await.unwrap(),
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        post("{}".into(), "application/json").await.unwrap(),
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        post(r#"{"purpose":"nonsense"}"#.into(), "application/json")
            .await
            .unwrap(),
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        post(
            r#"{"purpose":"enrollment","surprise":1}"#.into(),
            "application/json",
        )
        .await
        .unwrap(),
        400,
        "malformed_request",
    )
    .await;
    assert_problem(
        post(r#"{"purpose":"enrollment"}"#.into(), "text/plain")
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let big = format!(
        r#"{{"purpose":"enrollment","subject_ref":"{}"}}"#,
        "x".repeat(4096)
    );
    assert_problem(
        post(big, "application/json").await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    // Nothing was created by any of them.
    let sessions = app.count(jpki_face::store::CountedTable::Sessions).await;
    assert_eq!(sessions, 0);
}

async fn unknown_routes_are_problems_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not_found").await;
    let response = app
        .client
        .get(app.url("/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method_not_allowed").await;
    // A sane incoming request id is echoed.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "client-trace-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "client-trace-0001"
    );
}
