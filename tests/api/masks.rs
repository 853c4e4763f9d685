//! The selfie mask check (issue 25) over HTTP on both backends: a synthetic masked selfie (a mask
//! texture from `make models` pasted along the face's landmarks, made at test time from a calibration
//! photo read by path, never stored) is refused with `selfie_mask` at enrollment and at a transaction
//! verify; the same face unmasked passes; a tenant in `flag` mode gets the decision with the reason
//! recorded in `selfie_quality.flagged`; `off` ignores it.

use crate::cards::*;
use crate::helpers::*;
use bytes::Bytes;
use jpki_face::face::{synthetic_mask, ImageKind, MaskMode};
use jpki_face::store::TenantSettings;
use jpki_face::usecase::tenants::create_tenant_with;
use serde_json::{json, Value};
use std::path::PathBuf;

crate::on_both_backends!(
    a_masked_selfie_is_refused_with_selfie_mask_and_the_same_face_unmasked_passes,
    flag_mode_records_the_mask_and_the_decision_goes_on,
    off_mode_ignores_the_mask,
    the_selfie_step_asks_for_a_retake_of_a_masked_selfie,
);

/// `rel` (a calibration photo) with a mask pasted on, as PNG bytes.
pub(crate) async fn masked(rel: &str) -> Vec<u8> {
    let bytes = std::fs::read(photo(rel)).unwrap();
    let analysis = shared_face_engine()
        .analyze(Bytes::from(bytes.clone()), ImageKind::Selfie)
        .await
        .expect("analysed");
    let face = analysis.face.expect("a face in the unmasked photo");
    let texture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/mask-textures/mask_blue.jpg");
    let texture = image::open(&texture)
        .expect("mask textures: run make models")
        .to_rgb8();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let out = synthetic_mask::put_on(&img, &face.landmarks, &texture).expect("a mask");
    let mut png = std::io::Cursor::new(Vec::new());
    out.write_to(&mut png, image::ImageFormat::Png).unwrap();
    png.into_inner()
}

fn selfie_part(png: Vec<u8>) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(png)
        .file_name("selfie.png")
        .mime_str("image/png")
        .unwrap()
}

/// An enrollment of person A's card with the given selfie bytes, by a session of `key`'s tenant.
async fn enroll_with(app: &TestApp, key: &str, selfie: Vec<u8>) -> Value {
    let response = app
        .post_session(
            key,
            &json!({"purpose": "enrollment", "subject_ref": "masked-1"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let session: Value = response.json().await.unwrap();
    let card = cards().sign(&cards().a, &session);
    let form = reqwest::multipart::Form::new()
        .part(
            "card",
            reqwest::multipart::Part::text(card.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part("selfie", selfie_part(selfie));
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(client_token(&session))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// A server-to-server verify of `enrollment` with the given selfie bytes.
async fn verify_with(app: &TestApp, key: &str, enrollment: &str, selfie: Vec<u8>) -> Value {
    let form = reqwest::multipart::Form::new().part("selfie", selfie_part(selfie));
    let response = app
        .client
        .post(app.url(&format!("/v1/enrollments/{enrollment}/verify")))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn tenant_key(app: &TestApp, mode: MaskMode) -> String {
    let (_, _, key) = create_tenant_with(
        app.ctx.svc.store.as_ref(),
        "mask-tenant",
        TenantSettings {
            selfie_mask: Some(mode),
            ..TenantSettings::default()
        },
    )
    .await
    .unwrap();
    key.expose().clone()
}

fn codes(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

async fn a_masked_selfie_is_refused_with_selfie_mask_and_the_same_face_unmasked_passes(
    backend: Backend,
) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    // Masked: rejected with selfie_mask (the default mode is reject: a retake).
    let body = enroll_with(&app, &app.api_key, masked(A_SELFIE).await).await;
    assert_eq!(body["status"], "rejected", "{body:#}");
    assert!(
        codes(&body["reasons"]).contains(&"selfie_mask".to_string()),
        "{body:#}"
    );
    let q = &body["checks"]["selfie_quality"];
    assert_eq!(q["result"], "fail");
    assert!(codes(&q["failed"]).contains(&"selfie_mask".to_string()));
    assert!(q["mask"].as_f64().unwrap() > 0.4, "{q:#}");
    // The chip photo is never checked for a mask.
    assert!(
        body["checks"]["chip_photo_quality"]["mask"].is_null(),
        "{body:#}"
    );

    // The same face unmasked: verified, no mask.
    let unmasked = std::fs::read(photo(A_SELFIE)).unwrap();
    let body = enroll_with(&app, &app.api_key, unmasked).await;
    assert_eq!(body["status"], "verified", "{body:#}");
    let q = &body["checks"]["selfie_quality"];
    assert!(q["mask"].as_f64().unwrap() < 0.4, "{q:#}");
    let enrollment = body["id"].as_str().unwrap().to_string();

    // A transaction verify with a masked selfie: quality_failed with selfie_mask, nothing compared.
    let v = verify_with(&app, &app.api_key, &enrollment, masked(A_LATER).await).await;
    assert_eq!(v["decision"], "quality_failed", "{v:#}");
    assert!(codes(&v["selfie_quality"]["failed"]).contains(&"selfie_mask".to_string()));
    assert!(v["score"].is_null());
    // Unmasked: a match.
    let later = std::fs::read(photo(A_LATER)).unwrap();
    let v = verify_with(&app, &app.api_key, &enrollment, later).await;
    assert_eq!(v["decision"], "match", "{v:#}");
    assert!(v["selfie_quality"]["flagged"].is_null(), "{v:#}");
}

async fn flag_mode_records_the_mask_and_the_decision_goes_on(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let key = tenant_key(&app, MaskMode::Flag).await;
    // Enrollment with a masked selfie: not refused for the mask; the mask is recorded.
    let body = enroll_with(&app, &key, masked(A_SELFIE).await).await;
    assert!(
        !codes(&body["reasons"]).contains(&"selfie_mask".to_string()),
        "{body:#}"
    );
    let q = &body["checks"]["selfie_quality"];
    assert_eq!(codes(&q["flagged"]), vec!["selfie_mask"], "{q:#}");
    assert!(!codes(&q["failed"]).contains(&"selfie_mask".to_string()));
    // The face was compared (a score, whatever it is).
    assert!(
        body["checks"]["face_match"]["score"].is_number(),
        "{body:#}"
    );

    // A verify against an unmasked enrollment: decided on the face, the mask recorded.
    let unmasked = std::fs::read(photo(A_SELFIE)).unwrap();
    let body = enroll_with(&app, &key, unmasked).await;
    assert_eq!(body["status"], "verified", "{body:#}");
    let enrollment = body["id"].as_str().unwrap().to_string();
    let v = verify_with(&app, &key, &enrollment, masked(A_LATER).await).await;
    assert!(
        v["decision"] == "match" || v["decision"] == "no_match",
        "{v:#}"
    );
    assert!(v["score"].is_number());
    assert_eq!(codes(&v["selfie_quality"]["flagged"]), vec!["selfie_mask"]);
    assert_eq!(v["selfie_quality"]["result"], "pass");
    // The same upload under the default tenant (reject) is refused: the mode is per tenant.
    let default = enroll_person_a(&app).await;
    let v = verify_with(&app, &app.api_key, &default, masked(A_LATER).await).await;
    assert_eq!(v["decision"], "quality_failed", "{v:#}");
}

async fn off_mode_ignores_the_mask(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let key = tenant_key(&app, MaskMode::Off).await;
    let unmasked = std::fs::read(photo(A_SELFIE)).unwrap();
    let body = enroll_with(&app, &key, unmasked).await;
    assert_eq!(body["status"], "verified", "{body:#}");
    let enrollment = body["id"].as_str().unwrap().to_string();
    let v = verify_with(&app, &key, &enrollment, masked(A_LATER).await).await;
    assert_ne!(v["decision"], "quality_failed", "{v:#}");
    let q = &v["selfie_quality"];
    assert!(q["flagged"].is_null() && !codes(&q["failed"]).contains(&"selfie_mask".to_string()));
    // The score is still reported.
    assert!(q["mask"].as_f64().unwrap() > 0.4, "{q:#}");
}

/// The selfie step (item 7) judges with the same path: a masked selfie is a retake naming
/// `selfie_mask` and nothing is kept; the same face unmasked passes and is kept.
async fn the_selfie_step_asks_for_a_retake_of_a_masked_selfie(backend: Backend) {
    let app = spawn_app_with(cards().app_options(backend)).await;
    let session = app.enrollment_session().await;
    let post = |selfie: Vec<u8>| {
        let form = reqwest::multipart::Form::new().part("selfie", selfie_part(selfie));
        app.client
            .post(app.url(&format!(
                "/v1/sessions/{}/selfie",
                session["id"].as_str().unwrap()
            )))
            .bearer_auth(client_token(&session))
            .multipart(form)
            .send()
    };
    let response = post(masked(A_SELFIE).await).await.unwrap();
    assert_eq!(response.status(), 200);
    let verdict: Value = response.json().await.unwrap();
    assert_eq!(verdict["result"], "retake", "{verdict:#}");
    assert!(
        verdict["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("selfie_mask")),
        "{verdict:#}"
    );
    assert_eq!(
        app.count(jpki_face::store::CountedTable::SessionSelfies)
            .await,
        0
    );
    let unmasked = std::fs::read(photo(A_SELFIE)).unwrap();
    let response = post(unmasked).await.unwrap();
    assert_eq!(response.status(), 200);
    let verdict: Value = response.json().await.unwrap();
    assert_eq!(verdict["result"], "pass", "{verdict:#}");
    assert_eq!(
        app.count(jpki_face::store::CountedTable::SessionSelfies)
            .await,
        1
    );
}
