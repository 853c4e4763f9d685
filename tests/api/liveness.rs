//! Live-capture proof over HTTP: a random head-pose challenge per session, checked on the server
//! with real photos. A face turned one way and its mirror image make `face_left` / `face_right`
//! frames; a frontal photo makes `face_front`.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::liveness::LivenessMode;
use jpki_face::store::TenantSettings;
use serde_json::{json, Value};

crate::on_both_backends!(pose_sequence_liveness);

/// Person A turned to his left (yaw ≈ +33°), and frontal.
pub const A_TURNED: &str = "Pierce_Brosnan/Pierce_Brosnan_0010.jpg";
const A_FRONT: &str = "Pierce_Brosnan/Pierce_Brosnan_0006.jpg";
/// Someone else turned to her left (yaw ≈ +27°).
const B_TURNED: &str = "Laura_Bush/Laura_Bush_0028.jpg";

fn jpeg(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(photo(rel)).unwrap()
}

fn mirrored(rel: &str) -> Vec<u8> {
    jpeg(&image::load_from_memory(&read(rel)).unwrap().fliph())
}

/// The frame a well-behaved user takes for each prompt.
pub fn frame_for(prompt: &str, person_turned: &str) -> Vec<u8> {
    match prompt {
        "face_left" => read(person_turned),
        "face_right" => mirrored(person_turned),
        "face_front" => read(A_FRONT),
        other => panic!("no test photo for {other}"),
    }
}

async fn post_with_frames(
    app: &TestApp,
    session: &Value,
    card: &Value,
    frames: &[Vec<u8>],
) -> Value {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "card",
            reqwest::multipart::Part::text(card.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "selfie",
            reqwest::multipart::Part::bytes(read(A_SELFIE))
                .file_name("s.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
    for frame in frames {
        form = form.part(
            "liveness_frame",
            reqwest::multipart::Part::bytes(frame.clone())
                .file_name("f.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
    }
    let response = app
        .client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(session["client_token"].as_str().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        201,
        "a failed liveness is a decision, not an error"
    );
    response.json().await.unwrap()
}

/// A session whose prompts we have photos for: no `face_up`, no prompt twice.
pub async fn usable_session(app: &TestApp, key: &str) -> (Value, Vec<String>) {
    for _ in 0..200 {
        let session: Value = app
            .post_session(
                key,
                &json!({"purpose": "enrollment", "subject_ref": "live-1"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(session["liveness"]["kind"], "pose_sequence");
        let prompts: Vec<String> =
            serde_json::from_value(session["liveness"]["prompts"].clone()).unwrap();
        let mut unique = prompts.clone();
        unique.sort();
        unique.dedup();
        if unique.len() == prompts.len() && !prompts.iter().any(|p| p == "face_up") {
            return (session, prompts);
        }
    }
    panic!("no usable challenge in 200 sessions");
}

fn failed_codes(body: &Value) -> Vec<String> {
    serde_json::from_value(body["checks"]["liveness"]["failed"].clone()).unwrap_or_default()
}

async fn pose_sequence_liveness(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let settings = TenantSettings {
        liveness: Some(LivenessMode::PoseSequence),
        ..Default::default()
    };
    let (_, _, key) = jpki_face::usecase::tenants::create_tenant_with(
        app.ctx.svc.store.as_ref(),
        "live",
        settings,
    )
    .await
    .unwrap();
    let key = key.expose().clone();

    // The right frames in the right order pass.
    let (session, prompts) = usable_session(&app, &key).await;
    let frames: Vec<Vec<u8>> = prompts.iter().map(|p| frame_for(p, A_TURNED)).collect();
    let body = post_with_frames(&app, &session, &cards.sign(&cards.a, &session), &frames).await;
    assert_eq!(
        body["checks"]["liveness"]["result"], "pass",
        "{prompts:?} {:#}",
        body["checks"]["liveness"]
    );
    assert_eq!(body["status"], "verified", "{body:#}");
    let measured = body["checks"]["liveness"]["frames"].as_array().unwrap();
    assert_eq!(measured.len(), prompts.len());
    for (m, p) in measured.iter().zip(&prompts) {
        assert_eq!(m["prompt"], p.as_str());
        assert_eq!(m["pose_ok"], true);
    }

    // The same frames in the wrong order fail.
    let (session, prompts) = usable_session(&app, &key).await;
    let mut frames: Vec<Vec<u8>> = prompts.iter().map(|p| frame_for(p, A_TURNED)).collect();
    frames.reverse();
    let body = post_with_frames(&app, &session, &cards.sign(&cards.a, &session), &frames).await;
    assert_eq!(body["status"], "rejected");
    assert!(body["reasons"]
        .as_array()
        .unwrap()
        .contains(&json!("liveness_failed")));
    assert!(
        failed_codes(&body).contains(&"liveness_wrong_pose".to_string()),
        "{prompts:?} {:#}",
        body["checks"]["liveness"]
    );

    // One photo sent for every prompt (a still image re-sent) fails.
    let (session, prompts) = usable_session(&app, &key).await;
    let frames = vec![frame_for(&prompts[0], A_TURNED); prompts.len()];
    let body = post_with_frames(&app, &session, &cards.sign(&cards.a, &session), &frames).await;
    assert_eq!(body["status"], "rejected");
    assert!(
        failed_codes(&body).contains(&"liveness_duplicate_frame".to_string()),
        "{:#}",
        body["checks"]["liveness"]
    );

    // Frames of another person fail.
    let (session, prompts) = usable_session(&app, &key).await;
    let frames: Vec<Vec<u8>> = prompts
        .iter()
        .map(|p| {
            if p == "face_front" {
                read(A_FRONT)
            } else {
                frame_for(p, B_TURNED)
            }
        })
        .collect();
    let body = post_with_frames(&app, &session, &cards.sign(&cards.a, &session), &frames).await;
    assert_eq!(body["status"], "rejected");
    assert!(
        failed_codes(&body).contains(&"liveness_different_person".to_string()),
        "{:#}",
        body["checks"]["liveness"]
    );

    // A missing frame fails.
    let (session, prompts) = usable_session(&app, &key).await;
    let frames: Vec<Vec<u8>> = prompts
        .iter()
        .skip(1)
        .map(|p| frame_for(p, A_TURNED))
        .collect();
    let body = post_with_frames(&app, &session, &cards.sign(&cards.a, &session), &frames).await;
    assert_eq!(body["status"], "rejected");
    assert!(
        failed_codes(&body).contains(&"liveness_frame_count".to_string()),
        "{:#}",
        body["checks"]["liveness"]
    );
    // No frame is stored: only measurements are kept.
    assert!(!crate::store_contract::dump_database(&app)
        .await
        .contains("JFIF"));
}
