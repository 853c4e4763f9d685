//! The upload reader of the enrollment and transaction endpoints (`jpki_face::http::upload::read`):
//! multipart/form-data and JSON bodies, raw or as patches of a valid multipart body.
#![no_main]
use axum::body::Body;
use axum::http::{header, Request};
use jpki_face::http::upload::{read, PartLimits};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common/mod.rs"]
mod common;

const BOUNDARY: &str = "fuzzBOUNDARYfuzz";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn multipart_sample() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| {
        let mut b = Vec::new();
        for (name, file, value) in [
            ("session_id", None, &b"ses_0123456789abcdef"[..]),
            ("card", Some("card.json"), &br#"{"kenmen":{"face":"AAAA"}}"#[..]),
            ("selfie", Some("selfie.jpg"), &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10][..]),
            ("liveness_frame", Some("f0.jpg"), &[0xFF, 0xD8, 0xFF, 0xD9][..]),
        ] {
            b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(value);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        b
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match mode % 3 {
        0 => ("application/json".to_string(), rest.to_vec()),
        1 => (format!("multipart/form-data; boundary={BOUNDARY}"), rest.to_vec()),
        _ => (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            common::patched(multipart_sample(), rest),
        ),
    };
    let request = Request::builder()
        .method("POST")
        .uri("/v1/enrollments")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("request");
    let limits = PartLimits {
        card_json: 64 * 1024,
        image: 256 * 1024,
        max_frames: 4,
    };
    if let Ok(upload) = runtime().block_on(read(request, limits)) {
        assert!(upload.liveness_frames.len() <= limits.max_frames);
        assert!(upload.selfie.as_ref().is_none_or(|s| s.len() <= limits.image));
        assert!(upload.card.as_ref().is_none_or(|c| c.len() <= limits.card_json));
    }
});
