//! What a client uploaded to `POST /v1/enrollments` or `POST /v1/transactions/verify`, as the HTTP
//! layer read it (bounded per part while streaming; see `http::upload`). Nothing here is parsed yet.

use super::{UseCaseError, UseCaseResult};
use bytes::Bytes;

/// What a client uploaded (see `http::upload`). The card JSON stays raw: the card module parses it.
#[derive(Default)]
pub struct Upload {
    pub session_id: Option<String>,
    pub enrollment_id: Option<String>,
    pub card: Option<Bytes>,
    pub selfie: Option<Bytes>,
    pub liveness_frames: Vec<Bytes>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("session_id", &self.session_id)
            .field("enrollment_id", &self.enrollment_id)
            .field("card", &self.card.as_ref().map(|c| c.len()))
            .field("selfie", &self.selfie.as_ref().map(|s| s.len()))
            .field("liveness_frames", &self.liveness_frames.len())
            .finish()
    }
}

impl Upload {
    /// What the request asks for, for its Idempotency-Key fingerprint: the resolved session and
    /// enrollment, then the content (independent of multipart boundaries or JSON encoding).
    pub fn parts<'a>(&'a self, session_id: &'a str, enrollment_id: &'a str) -> Vec<&'a [u8]> {
        let mut parts: Vec<&[u8]> = vec![
            session_id.as_bytes(),
            enrollment_id.as_bytes(),
            self.card.as_deref().unwrap_or(b""),
            self.selfie.as_deref().unwrap_or(b""),
        ];
        parts.extend(self.liveness_frames.iter().map(|f| f.as_ref()));
        parts
    }

    pub fn require_selfie(&self) -> UseCaseResult<Bytes> {
        self.selfie
            .clone()
            .ok_or_else(|| UseCaseError::Malformed("missing part `selfie`".into()))
    }
}
