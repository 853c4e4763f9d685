//! Reading the uploads of `POST /v1/enrollments` and `POST /v1/transactions/verify`:
//! `multipart/form-data` (parts `card`, `selfie`, `liveness_frame`…, and the text fields
//! `session_id` / `enrollment_id`) or `application/json` with the images in base64.
//! Every part has its own size limit, checked while streaming, before anything is decoded.

use super::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Per-part limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    pub card_json: usize,
    pub image: usize,
    pub max_frames: usize,
}

pub use crate::usecase::upload::Upload;

/// `multipart/form-data` of `POST /v1/enrollments` (documentation of the parts).
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct EnrollmentMultipart {
    /// The card JSON (api.md).
    #[schema(value_type = String, format = Binary)]
    pub card: Vec<u8>,
    /// JPEG, PNG or WebP.
    #[schema(value_type = String, format = Binary)]
    pub selfie: Vec<u8>,
    /// One per prompt of the session's liveness challenge, in order.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub liveness_frame: Option<Vec<Vec<u8>>>,
    /// Required with an API key; with a client token only its own session.
    pub session_id: Option<String>,
}

/// `application/json` of `POST /v1/enrollments`: the images in base64.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct EnrollmentJson {
    /// The card JSON object (api.md).
    #[schema(value_type = Object)]
    pub card: serde_json::Value,
    /// Base64 of a JPEG, PNG or WebP.
    pub selfie: String,
    pub liveness_frames: Option<Vec<String>>,
    /// Required with an API key; with a client token only its own session.
    pub session_id: Option<String>,
}

/// `multipart/form-data` of `POST /v1/transactions/verify`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct VerifyMultipart {
    #[schema(value_type = String, format = Binary)]
    pub selfie: Vec<u8>,
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub liveness_frame: Option<Vec<Vec<u8>>>,
    /// Required with an API key; refused with a client token (the session names the enrollment).
    pub enrollment_id: Option<String>,
}

/// `application/json` of `POST /v1/transactions/verify`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct VerifyJson {
    /// Base64 of a JPEG, PNG or WebP.
    pub selfie: String,
    pub liveness_frames: Option<Vec<String>>,
    /// Required with an API key; refused with a client token (the session names the enrollment).
    pub enrollment_id: Option<String>,
}

fn too_large(what: &str, limit: usize) -> ApiError {
    ApiError::payload_too_large(format!("`{what}` is larger than {limit} bytes"))
}

/// Reads the request as multipart or JSON, according to its content type.
pub async fn read(request: Request, limits: PartLimits) -> Result<Upload, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::malformed(e.body_text()))?;
        read_multipart(multipart, limits).await
    } else if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, &()).await?;
        read_json(&body, limits)
    } else {
        Err(ApiError::unsupported_media_type(
            "expected multipart/form-data or application/json",
        ))
    }
}

async fn read_multipart(mut multipart: Multipart, limits: PartLimits) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        let limit = match name.as_str() {
            "card" => limits.card_json,
            "selfie" | "liveness_frame" => limits.image,
            "session_id" | "enrollment_id" => 256,
            other => return Err(ApiError::malformed(format!("unexpected part `{other}`"))),
        };
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if data.len() + chunk.len() > limit {
                return Err(too_large(&name, limit));
            }
            data.extend_from_slice(&chunk);
        }
        let data = Bytes::from(data);
        match name.as_str() {
            "card" => set_once(&mut upload.card, data, "card")?,
            "selfie" => set_once(&mut upload.selfie, data, "selfie")?,
            "liveness_frame" => {
                if upload.liveness_frames.len() >= limits.max_frames {
                    return Err(ApiError::payload_too_large(format!(
                        "at most {} liveness_frame parts",
                        limits.max_frames
                    )));
                }
                upload.liveness_frames.push(data);
            }
            field_name => {
                let text = String::from_utf8(data.to_vec())
                    .map_err(|_| ApiError::malformed(format!("`{field_name}` must be UTF-8")))?;
                let slot = if field_name == "session_id" {
                    &mut upload.session_id
                } else {
                    &mut upload.enrollment_id
                };
                set_once(slot, text.trim().to_string(), field_name)?;
            }
        }
    }
    Ok(upload)
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::malformed(format!("part `{name}` given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("the request body is larger than the configured limit")
    } else {
        ApiError::malformed(format!("unreadable multipart body: {}", e.body_text()))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonUpload {
    session_id: Option<String>,
    enrollment_id: Option<String>,
    card: Option<Box<serde_json::value::RawValue>>,
    selfie: Option<String>,
    #[serde(default)]
    liveness_frames: Vec<String>,
}

fn decode_image(b64: &str, name: &str, limit: usize) -> Result<Bytes, ApiError> {
    // base64 inflates by 4/3: refuse before decoding what cannot fit.
    if b64.len() / 4 * 3 > limit + 3 {
        return Err(too_large(name, limit));
    }
    let bytes = STANDARD
        .decode(b64.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim().trim_end_matches('=')))
        .map_err(|_| ApiError::malformed(format!("`{name}` is not valid base64")))?;
    if bytes.len() > limit {
        return Err(too_large(name, limit));
    }
    Ok(Bytes::from(bytes))
}

fn read_json(body: &[u8], limits: PartLimits) -> Result<Upload, ApiError> {
    let parsed: JsonUpload = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))?;
    let card = parsed
        .card
        .map(|raw| Bytes::from(raw.get().as_bytes().to_vec()));
    if card.as_ref().is_some_and(|c| c.len() > limits.card_json) {
        return Err(too_large("card", limits.card_json));
    }
    if parsed.liveness_frames.len() > limits.max_frames {
        return Err(ApiError::payload_too_large(format!(
            "at most {} liveness_frames",
            limits.max_frames
        )));
    }
    Ok(Upload {
        session_id: parsed.session_id,
        enrollment_id: parsed.enrollment_id,
        card,
        selfie: parsed
            .selfie
            .as_deref()
            .map(|s| decode_image(s, "selfie", limits.image))
            .transpose()?,
        liveness_frames: parsed
            .liveness_frames
            .iter()
            .map(|f| decode_image(f, "liveness_frame", limits.image))
            .collect::<Result<_, _>>()?,
    })
}
