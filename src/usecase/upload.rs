//! What a client uploaded, parsed: an enrollment always has its card JSON, a selfie step its selfie;
//! the selfie of an enrollment or a session's verify may instead be the one the selfie step kept. The HTTP layer reads multipart or JSON into these (bounded per part while streaming; see
//! `http::upload`), and they are also what the OpenAPI document shows for multipart bodies. The
//! card JSON stays raw here: the card module parses it.

use bytes::Bytes;

/// `multipart/form-data` of `POST /v1/enrollments` and `POST /v1/sessions/{id}/enrollment`.
#[derive(Default, utoipa::ToSchema)]
pub struct EnrollmentUpload {
    /// The card JSON (api.md).
    #[schema(value_type = String, format = Binary)]
    pub card: Bytes,
    /// JPEG, PNG or WebP. Leave it out to use the selfie this session accepted at
    /// `POST /v1/sessions/{id}/selfie`; when given, it is judged here and wins over the kept one.
    #[schema(value_type = Option<String>, format = Binary)]
    pub selfie: Option<Bytes>,
    /// One part per prompt of the session's liveness challenge, in order.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub liveness_frame: Vec<Bytes>,
    /// The session: from the path (backend) or the client token (app); the deprecated `session_id`
    /// part of `POST /v1/enrollments` with an API key lands here too.
    #[schema(ignore)]
    pub session_id: Option<String>,
}

/// `multipart/form-data` of `POST /v1/transactions/verify` (and, read the same way, of
/// `POST /v1/enrollments/{id}/verify`, whose document is [`SelfieUpload`]: it has no session, so its
/// selfie is required).
#[derive(Default, utoipa::ToSchema)]
pub struct VerifyUpload {
    /// JPEG, PNG or WebP. Leave it out to use the selfie this session accepted at
    /// `POST /v1/sessions/{id}/selfie`; when given, it is judged here and wins over the kept one.
    #[schema(value_type = Option<String>, format = Binary)]
    pub selfie: Option<Bytes>,
    /// One part per prompt of the session's liveness challenge, in order.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub liveness_frame: Vec<Bytes>,
    /// The enrollment: from the path (backend) or the session (app); the deprecated `enrollment_id`
    /// part of `POST /v1/transactions/verify` with an API key lands here too.
    #[schema(ignore)]
    pub enrollment_id: Option<String>,
}

/// `multipart/form-data` of the selfie step `POST /v1/sessions/{id}/selfie` (and the document of
/// `POST /v1/enrollments/{id}/verify`): a selfie and its liveness frames, nothing else.
#[derive(Default, utoipa::ToSchema)]
pub struct SelfieUpload {
    /// JPEG, PNG or WebP.
    #[schema(value_type = String, format = Binary)]
    pub selfie: Bytes,
    /// One part per prompt of the session's liveness challenge, in order.
    #[schema(value_type = Option<Vec<String>>, format = Binary)]
    pub liveness_frame: Vec<Bytes>,
}

macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl std::fmt::Debug for $t {
            // Sizes only: the parts are a card's signatures and a face.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($field), &self.$field.len()))*
                    .finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(EnrollmentUpload, card, liveness_frame);
redacted_debug!(VerifyUpload, liveness_frame);
redacted_debug!(SelfieUpload, selfie, liveness_frame);

/// What a request asks for, for its Idempotency-Key fingerprint: the resolved session and enrollment,
/// then the content (independent of multipart boundaries or JSON encoding). The layout is the one
/// every stored key was fingerprinted with: keep it.
pub fn fingerprint<'a>(
    session_id: &'a str,
    enrollment_id: &'a str,
    card: &'a [u8],
    selfie: &'a [u8],
    frames: &'a [Bytes],
) -> Vec<&'a [u8]> {
    let mut parts: Vec<&[u8]> = vec![
        session_id.as_bytes(),
        enrollment_id.as_bytes(),
        card,
        selfie,
    ];
    parts.extend(frames.iter().map(|f| f.as_ref()));
    parts
}
