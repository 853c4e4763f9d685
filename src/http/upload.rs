//! Reading the uploads of the enrollment and verify operations: `multipart/form-data` (parts `card`,
//! `selfie`, `liveness_frame`…) or `application/json` with the images in base64. Every part has its
//! own size limit, checked while streaming, before anything is decoded; what comes out is the parsed
//! [`EnrollmentUpload`] or [`VerifyUpload`] (a missing or unexpected part is a 400 here).

use super::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;

pub use crate::usecase::upload::{EnrollmentUpload, SelfieUpload, VerifyUpload};

/// Per-part limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    pub card_json: usize,
    pub image: usize,
    pub max_frames: usize,
}

/// `application/json` of the enrollment operations: the images in base64.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentJson {
    /// The card JSON object (api.md).
    #[schema(value_type = Object)]
    pub card: Box<serde_json::value::RawValue>,
    /// Base64 of a JPEG, PNG or WebP. Leave it out to use the selfie this session accepted at
    /// `POST /v1/sessions/{id}/selfie`; when given, it wins over the kept one.
    #[serde(default)]
    pub selfie: Option<String>,
    /// Base64 images, one per prompt of the session's liveness challenge, in order.
    #[serde(default)]
    pub liveness_frames: Option<Vec<String>>,
    /// Deprecated (`POST /v1/enrollments` with an API key): the session.
    #[serde(default)]
    #[schema(ignore)]
    pub session_id: Option<String>,
}

/// `application/json` of the verify operations: the images in base64.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyJson {
    /// Base64 of a JPEG, PNG or WebP. Leave it out to use the selfie this session accepted at
    /// `POST /v1/sessions/{id}/selfie`; when given, it wins over the kept one.
    #[serde(default)]
    pub selfie: Option<String>,
    /// Base64 images, one per prompt of the session's liveness challenge, in order.
    #[serde(default)]
    pub liveness_frames: Option<Vec<String>>,
    /// Deprecated (`POST /v1/transactions/verify` with an API key): the enrollment.
    #[serde(default)]
    #[schema(ignore)]
    pub enrollment_id: Option<String>,
}

/// `application/json` of the selfie step (and the document of `POST /v1/enrollments/{id}/verify`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfieJson {
    /// Base64 of a JPEG, PNG or WebP.
    pub selfie: String,
    /// Base64 images, one per prompt of the session's liveness challenge, in order.
    #[serde(default)]
    pub liveness_frames: Option<Vec<String>>,
}

fn too_large(what: &str, limit: usize) -> ApiError {
    ApiError::payload_too_large(format!("`{what}` is larger than {limit} bytes"))
}

/// Which operation's parts are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Enrollment,
    Verify,
    /// The selfie step: `selfie` and `liveness_frame` only.
    Selfie,
}

/// The parts as they arrive, before the operation's shape is applied.
#[derive(Default)]
struct Parts {
    card: Option<Bytes>,
    selfie: Option<Bytes>,
    frames: Vec<Bytes>,
    /// `session_id` (enrollment) or `enrollment_id` (verify): the deprecated field of each.
    named_id: Option<String>,
}

impl Parts {
    fn selfie(&mut self) -> Result<Bytes, ApiError> {
        self.selfie
            .take()
            .ok_or_else(|| ApiError::malformed("missing part `selfie`"))
    }

    /// Liveness frames are judged with their selfie: without one they have nothing to go with.
    fn optional_selfie(&mut self) -> Result<Option<Bytes>, ApiError> {
        if self.selfie.is_none() && !self.frames.is_empty() {
            return Err(ApiError::malformed(
                "`liveness_frame` parts go with a `selfie` part (or with the selfie step)",
            ));
        }
        Ok(self.selfie.take())
    }
}

/// Reads an enrollment upload as multipart or JSON, according to its content type.
pub async fn read_enrollment(
    request: Request,
    limits: PartLimits,
) -> Result<EnrollmentUpload, ApiError> {
    let mut parts = read(request, limits, Shape::Enrollment).await?;
    Ok(EnrollmentUpload {
        card: parts
            .card
            .take()
            .ok_or_else(|| ApiError::malformed("missing part `card`"))?,
        selfie: parts.optional_selfie()?,
        liveness_frame: parts.frames,
        session_id: parts.named_id,
    })
}

/// Reads a verify upload as multipart or JSON, according to its content type.
pub async fn read_verify(request: Request, limits: PartLimits) -> Result<VerifyUpload, ApiError> {
    let mut parts = read(request, limits, Shape::Verify).await?;
    Ok(VerifyUpload {
        selfie: parts.optional_selfie()?,
        liveness_frame: parts.frames,
        enrollment_id: parts.named_id,
    })
}

/// Reads the selfie step's upload as multipart or JSON, according to its content type.
pub async fn read_selfie(request: Request, limits: PartLimits) -> Result<SelfieUpload, ApiError> {
    let mut parts = read(request, limits, Shape::Selfie).await?;
    Ok(SelfieUpload {
        selfie: parts.selfie()?,
        liveness_frame: parts.frames,
    })
}

async fn read(request: Request, limits: PartLimits, shape: Shape) -> Result<Parts, ApiError> {
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
        read_multipart(multipart, limits, shape).await
    } else if content_type.starts_with("application/json") {
        let body = Bytes::from_request(request, &()).await?;
        read_json(&body, limits, shape)
    } else {
        Err(ApiError::unsupported_media_type(
            "expected multipart/form-data or application/json",
        ))
    }
}

async fn read_multipart(
    mut multipart: Multipart,
    limits: PartLimits,
    shape: Shape,
) -> Result<Parts, ApiError> {
    let mut parts = Parts::default();
    let id_field = match shape {
        Shape::Enrollment => "session_id",
        Shape::Verify => "enrollment_id",
        // No id part: the session is in the path.
        Shape::Selfie => "",
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        let limit = match name.as_str() {
            "card" if shape == Shape::Enrollment => limits.card_json,
            "selfie" | "liveness_frame" => limits.image,
            other if !id_field.is_empty() && other == id_field => 256,
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
            "card" => set_once(&mut parts.card, data, "card")?,
            "selfie" => set_once(&mut parts.selfie, data, "selfie")?,
            "liveness_frame" => {
                if parts.frames.len() >= limits.max_frames {
                    // A count rule, not a size: the request is malformed.
                    return Err(ApiError::malformed(format!(
                        "at most {} liveness_frame parts",
                        limits.max_frames
                    )));
                }
                parts.frames.push(data);
            }
            field_name => {
                let text = String::from_utf8(data.to_vec())
                    .map_err(|_| ApiError::malformed(format!("`{field_name}` must be UTF-8")))?;
                set_once(&mut parts.named_id, text.trim().to_string(), field_name)?;
            }
        }
    }
    Ok(parts)
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

fn read_json(body: &[u8], limits: PartLimits, shape: Shape) -> Result<Parts, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::malformed(format!("invalid JSON body: {e}"));
    let (card, selfie, frames, named_id) = match shape {
        Shape::Enrollment => {
            let j: EnrollmentJson = serde_json::from_slice(body).map_err(invalid)?;
            let card = Bytes::from(j.card.get().as_bytes().to_vec());
            if card.len() > limits.card_json {
                return Err(too_large("card", limits.card_json));
            }
            (Some(card), j.selfie, j.liveness_frames, j.session_id)
        }
        Shape::Verify => {
            let j: VerifyJson = serde_json::from_slice(body).map_err(invalid)?;
            (None, j.selfie, j.liveness_frames, j.enrollment_id)
        }
        Shape::Selfie => {
            let j: SelfieJson = serde_json::from_slice(body).map_err(invalid)?;
            (None, Some(j.selfie), j.liveness_frames, None)
        }
    };
    let frames = frames.unwrap_or_default();
    if frames.len() > limits.max_frames {
        return Err(ApiError::malformed(format!(
            "at most {} liveness_frames",
            limits.max_frames
        )));
    }
    Ok(Parts {
        card,
        selfie: selfie
            .map(|s| decode_image(&s, "selfie", limits.image))
            .transpose()?,
        frames: frames
            .iter()
            .map(|f| decode_image(f, "liveness_frame", limits.image))
            .collect::<Result<_, _>>()?,
        named_id,
    })
}
