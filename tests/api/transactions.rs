//! Transaction-time re-verification (出口対策), deletion, status checks, interrupted uploads and the
//! privacy of what is stored, over HTTP on both backends.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::devcard::CrlReason;
use jpki_face::store::CountedTable;
use serde_json::{json, Value};

crate::on_both_backends!(
    verify_matches_rejects_and_locks,
    delete_shreds_and_later_calls_404,
    status_check_after_revocation_deactivates,
    an_interrupted_upload_leaves_nothing,
    nothing_personal_is_stored_in_plaintext,
);

fn lockout_options(backend: Backend) -> AppOptions {
    let mut options = cards().app_options(backend);
    options
        .toml
        .push_str("[verification.lockout]\nmax_failures = 3\nwindow_secs = 600\nlock_secs = 120\n");
    options
}

/// A plain grey PNG: no face in it.
fn blank_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn verify_matches_rejects_and_locks(backend: Backend) {
    let app = spawn_app_with(lockout_options(backend)).await;
    let enrollment = enroll_person_a(&app).await;
    let tx = open_session(&app, json!({"purpose": "transaction", "enrollment_id": enrollment, "context": {"reference": "wire-2291", "amount_jpy": 500000}})).await;
    let token = tx["client_token"].as_str().unwrap();

    // The same person, a new photo: match, compared with both stored templates.
    let response = post_verify(&app, token, A_LATER, &[]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["decision"], "match", "{body:#}");
    assert!(body["id"].as_str().unwrap().starts_with("ver_"));
    assert_eq!(body["enrollment_id"], enrollment.as_str());
    assert!(body["score"].as_f64().unwrap() >= body["threshold"].as_f64().unwrap());
    assert_eq!(body["target_fmr"], 0.00001);
    let mut sources: Vec<String> = serde_json::from_value(body["compared_with"].clone()).unwrap();
    sources.sort();
    assert_eq!(sources, vec!["chip_photo", "enrollment_selfie"]);
    // The session is single-use.
    assert_problem(
        post_verify(&app, token, A_LATER, &[]).await,
        409,
        "session_consumed",
    )
    .await;

    // Server to server with the API key: someone else is a no_match.
    let id = ("enrollment_id", enrollment.clone());
    let body: Value = post_verify(&app, &app.api_key, B_SELFIE, std::slice::from_ref(&id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["decision"], "no_match", "{body:#}");
    assert!(body["score"].as_f64().unwrap() < body["threshold"].as_f64().unwrap());

    // A photo without a face decides nothing about the face and does not count towards the lock.
    let form = reqwest::multipart::Form::new()
        .text("enrollment_id", enrollment.clone())
        .part(
            "selfie",
            reqwest::multipart::Part::bytes(blank_png())
                .file_name("x.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let body: Value = app
        .client
        .post(app.url("/v1/transactions/verify"))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["decision"], "quality_failed");
    assert!(body["selfie_quality"]["failed"]
        .as_array()
        .unwrap()
        .contains(&json!("selfie_no_face")));

    // Two more non-matches reach max_failures = 3: the enrollment locks, even for the right person.
    for _ in 0..2 {
        let body: Value = post_verify(&app, &app.api_key, B_SELFIE, std::slice::from_ref(&id))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["decision"], "no_match");
    }
    let locked = post_verify(&app, &app.api_key, A_LATER, std::slice::from_ref(&id)).await;
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    assert_problem(locked, 423, "enrollment_locked").await;
    assert_eq!(
        app.count(CountedTable::Verifications).await,
        5,
        "the refused attempt is not recorded"
    );

    // Another tenant cannot verify against it.
    let (_, other_key) = app.other_tenant().await;
    assert_problem(
        post_verify(&app, &other_key, A_LATER, std::slice::from_ref(&id)).await,
        404,
        "not_found",
    )
    .await;
}

async fn delete_shreds_and_later_calls_404(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let enrollment = enroll_person_a(&app).await;
    let url = app.url(&format!("/v1/enrollments/{enrollment}"));
    let (_, other_key) = app.other_tenant().await;
    assert_problem(
        app.client
            .delete(&url)
            .bearer_auth(&other_key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let response = app
        .client
        .delete(&url)
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_problem(
        app.client
            .get(&url)
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.client
            .delete(&url)
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let verify = post_verify(
        &app,
        &app.api_key,
        A_LATER,
        &[("enrollment_id", enrollment.clone())],
    )
    .await;
    assert_problem(verify, 404, "not_found").await;
    let session = app
        .post_session(
            &app.api_key,
            &json!({"purpose": "transaction", "enrollment_id": enrollment}),
        )
        .await;
    assert_problem(session, 404, "not_found").await;
    assert_eq!(app.count(CountedTable::Templates).await, 0);
    let audit = app.ctx.svc.store.audit_rows(&app.tenant_id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.event == "enrollment.deleted" && r.subject == enrollment),
        "tombstone in the audit log"
    );
}

async fn status_check_after_revocation_deactivates(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let person = cards.spare();
    let session = app.enrollment_session().await;
    let card = cards.sign(&person, &session);
    let body: Value = post_enrollment(
        &app,
        session["client_token"].as_str().unwrap(),
        &card,
        A_SELFIE,
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    let id = body["id"].as_str().unwrap().to_string();
    let check_url = app.url(&format!("/v1/enrollments/{id}/status-check"));

    let fresh: Value = app
        .client
        .post(&check_url)
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["status"], "verified");
    assert_eq!(fresh["revocation"]["result"], "good");

    // The holder moves: J-LIS revokes the certificate with affiliationChanged.
    cards.revoke_now(&person, CrlReason::AffiliationChanged);
    let response = app
        .client
        .post(&check_url)
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let checked: Value = response.json().await.unwrap();
    assert_eq!(checked["status"], "identity_changed", "{checked:#}");
    assert_eq!(checked["revocation"]["result"], "revoked");
    assert_eq!(checked["revocation"]["reason"], "affiliationChanged");
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
    assert_eq!(got["status"], "identity_changed");
    assert!(got["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("identity_changed")));

    // An inactive enrollment cannot be re-verified.
    let verify = post_verify(
        &app,
        &app.api_key,
        A_LATER,
        &[("enrollment_id", id.clone())],
    )
    .await;
    assert_problem(verify, 409, "enrollment_inactive").await;
    let session = app
        .post_session(
            &app.api_key,
            &json!({"purpose": "transaction", "enrollment_id": id}),
        )
        .await;
    assert_problem(session, 409, "enrollment_inactive").await;
}

async fn an_interrupted_upload_leaves_nothing(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    // A client that sends the card and half a selfie, then drops the connection.
    let boundary = "jpkifaceboundary";
    let selfie = std::fs::read(photo(A_SELFIE)).unwrap();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"card\"\r\nContent-Type: application/json\r\n\r\n{card}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"selfie\"; filename=\"s.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    );
    let mut body = head.into_bytes();
    body.extend_from_slice(&selfie[..selfie.len() / 2]);
    let request = format!(
        "POST /v1/enrollments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        session["client_token"].as_str().unwrap(),
        body.len() + selfie.len()
    );
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
            .await
            .unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    } // dropped here, mid-body
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for table in [
        CountedTable::Enrollments,
        CountedTable::Templates,
        CountedTable::Verifications,
    ] {
        assert_eq!(app.count(table).await, 0, "{table:?}");
    }
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
    assert!(stored.consumed_at.is_none());
    // The session can still be used.
    let response = post_enrollment(
        &app,
        session["client_token"].as_str().unwrap(),
        &card,
        A_SELFIE,
        &[],
    )
    .await;
    assert_eq!(response.status(), 201);
}

async fn nothing_personal_is_stored_in_plaintext(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let body: Value = post_enrollment(
        &app,
        session["client_token"].as_str().unwrap(),
        &card,
        A_SELFIE,
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["status"], "verified");
    let enrollment = body["id"].as_str().unwrap().to_string();
    let tx = open_session(
        &app,
        json!({"purpose": "transaction", "enrollment_id": enrollment}),
    )
    .await;
    let verified: Value = post_verify(&app, tx["client_token"].as_str().unwrap(), A_LATER, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verified["decision"], "match");

    let dump = crate::store_contract::dump_database(&app).await;
    let cert_der = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(card["jpki"]["signing_certificate"].as_str().unwrap())
            .unwrap()
    };
    // What the enrollment answered with must not be in the database as such.
    let name = body["identity"]["name"].as_str().unwrap();
    let address = body["identity"]["address"].as_str().unwrap();
    for (what, needle) in [
        ("name", name.to_string()),
        (
            "family name",
            name.split('\u{3000}').next().unwrap().to_string(),
        ),
        ("address", address.to_string()),
        ("birth date", "1990-01-02".to_string()),
        ("birth date (card form)", "19900102".to_string()),
        (
            "certificate (base64)",
            card["jpki"]["signing_certificate"].as_str().unwrap()[..64].to_string(),
        ),
        (
            "certificate (lossy bytes)",
            String::from_utf8_lossy(&cert_der[200..260]).into_owned(),
        ),
        (
            "client token",
            session["client_token"].as_str().unwrap().to_string(),
        ),
        (
            "transaction token",
            tx["client_token"].as_str().unwrap().to_string(),
        ),
        ("API key", app.api_key.clone()),
        (
            "card signature",
            card["kenmen"]["card_signature"].as_str().unwrap()[..40].to_string(),
        ),
    ] {
        assert!(!dump.contains(&needle), "{what} found in the database");
    }
    // Templates: the stored bytes are ciphertext, not the template the engine computes for the selfie.
    let analysis = app
        .ctx
        .svc
        .face
        .analyze(
            std::fs::read(photo(A_SELFIE)).unwrap().into(),
            jpki_face::face::ImageKind::Selfie,
        )
        .await
        .unwrap();
    let plain = analysis.template.unwrap().to_bytes();
    let stored = app
        .ctx
        .svc
        .store
        .templates(
            &app.tenant_id,
            &jpki_face::domain::EnrollmentId::parse(&enrollment).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for t in &stored {
        assert!(
            !t.sealed
                .expose()
                .windows(32)
                .any(|w| plain.windows(32).any(|p| p == w)),
            "template stored in plaintext"
        );
    }
}
