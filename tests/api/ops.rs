//! /healthz, /metrics and /openapi.json.

use crate::helpers::*;

crate::on_both_backends!(health_metrics_and_openapi);

async fn health_metrics_and_openapi(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["migrations"], "ok");

    app.enrollment_session().await;
    let _ = app.post_session("nope", &serde_json::json!({})).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/v1/sessions",status="201"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/sessions",status="401""#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency histogram present"
    );

    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/sessions",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/reviews",
        "/v1/reviews/{id}",
        "/v1/enrollments/{id}/review",
        "/v1/enrollments/{id}/evidence/{kind}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let responses = &doc["paths"]["/v1/sessions"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "404", "409", "413", "415"] {
        assert!(
            responses[status].is_object(),
            "POST /v1/sessions documents {status}"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let responses = &doc["paths"]["/v1/enrollments"]["post"]["responses"];
    for status in [
        "201", "400", "401", "403", "404", "409", "413", "415", "422", "503",
    ] {
        assert!(
            responses[status].is_object(),
            "POST /v1/enrollments documents {status}"
        );
    }
    // Result vocabularies are closed enums in the document.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["RevocationResult"]["enum"],
        serde_json::json!(["good", "revoked", "unknown", "not_checked"])
    );
    assert_eq!(
        schemas["EnrollmentStatus"]["enum"],
        serde_json::json!([
            "verified",
            "rejected",
            "revoked",
            "identity_changed",
            "status_unknown",
            "deleted",
            "in_review"
        ])
    );
    assert_eq!(
        schemas["VerificationDecision"]["enum"],
        serde_json::json!(["match", "no_match", "quality_failed", "liveness_failed"])
    );
    assert!(schemas["CardDataResult"]["enum"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("invalid_signature")));
}
