//! Enrollment end to end over HTTP, with real test cards, a real `openssl ocsp` responder and the
//! real face models: the decision, what is stored, and the session rules.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::devcard::{mutate, Mutant};
use jpki_face::store::CountedTable;
use serde_json::{json, Value};

crate::on_both_backends!(
    same_person_is_verified_and_readable,
    another_persons_selfie_is_a_face_mismatch,
    revoked_certificates_are_rejected_with_their_reason,
    tampered_and_replayed_cards_are_rejected,
    validity_service_down_fails_closed_and_stores_nothing,
    session_rules_hold,
    parallel_enrollments_land_exactly_once,
);

async fn same_person_is_verified_and_readable(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let person = cards.a.clone();
    let session = app.enrollment_session().await;
    let card = cards.sign(&person, &session);
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["status"], "verified", "{body:#}");
    assert_eq!(body["reasons"], json!([]));
    assert!(body["id"].as_str().unwrap().starts_with("enr_"));
    assert_eq!(body["subject_ref"], "customer-1");
    let checks = &body["checks"];
    assert_eq!(checks["card_data"]["result"], "valid");
    assert_eq!(checks["card_present"]["result"], "valid");
    assert_eq!(checks["certificate"]["result"], "valid");
    assert_eq!(checks["revocation"]["result"], "good");
    assert_eq!(checks["revocation"]["method"], "ocsp");
    assert_eq!(checks["consistency"]["result"], "match");
    assert_eq!(checks["selfie_quality"]["result"], "pass");
    assert_eq!(checks["selfie_quality"]["faces"], 1);
    assert_eq!(checks["liveness"]["result"], "skipped");
    assert_eq!(checks["face_match"]["result"], "match");
    assert!(
        checks["face_match"]["score"].as_f64().unwrap()
            >= checks["face_match"]["threshold"].as_f64().unwrap()
    );
    assert!(checks["face_match"]["model"]
        .as_str()
        .unwrap()
        .contains('@'));
    assert_eq!(body["identity"]["name"], "山田\u{3000}太郎");
    assert_eq!(body["identity"]["birth_date"], "1990-01-02");
    assert_eq!(body["identity"]["sex"], "male");

    // The same document, with the identity decrypted, from GET and from the list.
    let id = body["id"].as_str().unwrap();
    let got: Value = app
        .client
        .get(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, body);
    let list: Value = app
        .client
        .get(app.url("/v1/enrollments?subject_ref=customer-1"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["enrollments"].as_array().unwrap().len(), 1);
    let none: Value = app
        .client
        .get(app.url("/v1/enrollments?subject_ref=someone-else"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["enrollments"], json!([]));
    // Two templates (selfie and chip photo) are stored, sealed.
    assert_eq!(app.count(CountedTable::Templates).await, 2);
    // Another tenant sees nothing.
    let (_, other_key) = app.other_tenant().await;
    let other = app
        .client
        .get(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_problem(other, 404, "not_found").await;
    // The client token cannot read enrollments.
    let by_token = app
        .client
        .get(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(client_token(&session))
        .send()
        .await
        .unwrap();
    assert_problem(by_token, 403, "forbidden").await;
}

async fn another_persons_selfie_is_a_face_mismatch(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let person = cards.b.clone();
    let session = app.enrollment_session().await;
    let card = cards.sign(&person, &session);
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_eq!(
        response.status(),
        201,
        "a decision that says no is not an error"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["reasons"], json!(["face_mismatch"]));
    assert_eq!(body["checks"]["face_match"]["result"], "no_match");
    assert_eq!(
        body["identity"],
        Value::Null,
        "no identity kept for a rejected enrollment"
    );
    assert_eq!(
        app.count(CountedTable::Templates).await,
        0,
        "no templates for a rejected enrollment"
    );
    assert_eq!(
        app.count(CountedTable::Enrollments).await,
        1,
        "the decision is kept"
    );
}

async fn revoked_certificates_are_rejected_with_their_reason(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    for (person, code, reason_name) in [
        (
            &cards.a_key_compromise,
            "certificate_revoked",
            "keyCompromise",
        ),
        (
            &cards.a_affiliation_changed,
            "identity_changed",
            "affiliationChanged",
        ),
    ] {
        let session = app.enrollment_session().await;
        let card = cards.sign(person, &session);
        let body: Value = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "rejected", "{body:#}");
        assert_eq!(body["reasons"], json!([code]));
        assert_eq!(body["checks"]["revocation"]["result"], "revoked");
        assert_eq!(body["checks"]["revocation"]["reason"], reason_name);
    }
}

async fn tampered_and_replayed_cards_are_rejected(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let person = cards.a.clone();

    // A flipped bit in the chip photo breaks the issuer's DF28 signature.
    let session = app.enrollment_session().await;
    let tampered = mutate(&cards.sign(&person, &session), Mutant::FlipPhotoBit).unwrap();
    let body: Value = post_enrollment(&app, &client_token(&session), &tampered, A_SELFIE, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["checks"]["card_data"]["result"], "invalid_signature");
    assert!(
        body["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("invalid_signature")),
        "{body:#}"
    );

    // Structurally broken data is a 422 that stores nothing; the session stays usable.
    let session = app.enrollment_session().await;
    let truncated = mutate(&cards.sign(&person, &session), Mutant::Truncated).unwrap();
    let response = post_enrollment(&app, &client_token(&session), &truncated, A_SELFIE, &[]).await;
    let problem = assert_problem(response, 422, "invalid_card_data").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("kenmen.face"),
        "{problem}"
    );

    // Signatures made for another session do not verify for this one.
    let other_session = app.enrollment_session().await;
    let replayed = cards.sign(&person, &other_session);
    let body: Value = post_enrollment(&app, &client_token(&session), &replayed, A_SELFIE, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(
        body["checks"]["card_present"]["result"],
        "invalid_signature"
    );
    assert_eq!(body["checks"]["certificate"]["result"], "invalid_signature");

    // The My Number is refused outright.
    let session = app.enrollment_session().await;
    let mut card = cards.sign(&person, &session);
    card["hojo"] = json!({"my_number": "123456789012"});
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_problem(response, 422, "my_number_not_accepted").await;
}

async fn validity_service_down_fails_closed_and_stores_nothing(backend: Backend) {
    let cards = cards();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = AppOptions::new(backend);
    options.toml = cards.toml(dead_port);
    let app = spawn_app_with(options).await;
    let person = cards.a.clone();
    let session = app.enrollment_session().await;
    let card = cards.sign(&person, &session);
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_eq!(response.headers().get("retry-after").unwrap(), "7");
    assert_problem(response, 503, "revocation_unavailable").await;
    assert_eq!(app.count(CountedTable::Enrollments).await, 0);
    assert_eq!(app.count(CountedTable::Templates).await, 0);
    let stored = app
        .ctx
        .svc
        .store
        .get_session(
            &app.tenant_id,
            &jpki_face::domain::SessionId::parse(session["id"].as_str().unwrap()).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(stored.consumed_at.is_none(), "the session can be retried");
}

async fn session_rules_hold(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let person = cards.a.clone();
    let session = app.enrollment_session().await;
    let card = cards.sign(&person, &session);
    let token = client_token(&session);
    assert_eq!(
        post_enrollment(&app, &token, &card, A_SELFIE, &[])
            .await
            .status(),
        201
    );
    // Single use.
    assert_problem(
        post_enrollment(&app, &token, &card, A_SELFIE, &[]).await,
        409,
        "session_consumed",
    )
    .await;
    // A token of one session cannot act on another.
    let other = app.enrollment_session().await;
    let response = post_enrollment(
        &app,
        &client_token(&other),
        &card,
        A_SELFIE,
        &[("session_id", session["id"].as_str().unwrap().to_string())],
    )
    .await;
    assert_problem(response, 403, "forbidden").await;
    // With the API key, the session is named by `session_id`; another tenant's session is unknown.
    let third = app.enrollment_session().await;
    let card3 = cards.sign(&person, &third);
    let (_, other_key) = app.other_tenant().await;
    let response = post_enrollment(
        &app,
        &other_key,
        &card3,
        A_SELFIE,
        &[("session_id", third["id"].as_str().unwrap().to_string())],
    )
    .await;
    assert_problem(response, 404, "not_found").await;
    let response = post_enrollment(
        &app,
        &app.api_key,
        &card3,
        A_SELFIE,
        &[("session_id", third["id"].as_str().unwrap().to_string())],
    )
    .await;
    assert_eq!(response.status(), 201);
    // A transaction session cannot enroll.
    let enrolled: Value = response.json().await.unwrap();
    let tx = open_session(
        &app,
        json!({"purpose": "transaction", "enrollment_id": enrolled["id"]}),
    )
    .await;
    assert_problem(
        post_enrollment(&app, &client_token(&tx), &card3, A_SELFIE, &[]).await,
        403,
        "forbidden",
    )
    .await;
    // Missing parts and wrong media types.
    let fresh = app.enrollment_session().await;
    let form = reqwest::multipart::Form::new().text("card", card3.to_string());
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(&fresh))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "malformed_request").await;
    let card_fresh = cards.sign(&person, &fresh);
    let form = reqwest::multipart::Form::new()
        .part(
            "card",
            reqwest::multipart::Part::text(card_fresh.to_string()),
        )
        .part(
            "selfie",
            reqwest::multipart::Part::bytes(b"GIF89a not an image we take".to_vec()),
        );
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(&fresh))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(response, 415, "unsupported_media_type").await;
    // The JSON variant with a base64 selfie works too.
    use base64::Engine;
    let selfie =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(photo(A_SELFIE)).unwrap());
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(&fresh))
        .json(&json!({"card": card_fresh, "selfie": selfie}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
}

async fn parallel_enrollments_land_exactly_once(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let person = cards.a.clone();
    let mut jobs = Vec::new();
    for _ in 0..20 {
        let session = app.enrollment_session().await;
        let card = cards.sign(&person, &session);
        jobs.push((session, card));
    }
    // Each session is also sent twice at once: exactly one of the pair may land.
    let requests = jobs.iter().flat_map(|(session, card)| {
        let token = session["client_token"].as_str().unwrap().to_string();
        [0, 1].map(|_| {
            let (app, token, card) = (&app, token.clone(), card.clone());
            async move {
                loop {
                    let response = post_enrollment(app, &token, &card, A_SELFIE, &[]).await;
                    // A full face queue answers 503 overloaded at once; a real client retries.
                    if response.status() == 503 {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                    return response.status().as_u16();
                }
            }
        })
    });
    let statuses = futures::future::join_all(requests).await;
    let created = statuses.iter().filter(|&&s| s == 201).count();
    let consumed = statuses.iter().filter(|&&s| s == 409).count();
    assert_eq!((created, consumed), (20, 20), "{statuses:?}");
    assert_eq!(app.count(CountedTable::Enrollments).await, 20);
    assert_eq!(app.count(CountedTable::Templates).await, 40);
    let chain = jpki_face::store::verify_audit_chain(app.ctx.svc.store.as_ref(), &app.tenant_id)
        .await
        .unwrap();
    assert!(
        matches!(chain, jpki_face::store::ChainVerdict::Intact { .. }),
        "{chain:?}"
    );
}
