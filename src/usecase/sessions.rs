//! Sessions: opening one for the RP's backend, and the rules that make a session usable by an upload.

use super::idempotency::{self, Answer, Keyed};
use super::{Caller, Services, UseCaseError, UseCaseResult};
use crate::domain::{
    self, EnrollmentId, IssuedCredential, Millis, Purpose, SessionId, TenantId, CLIENT_TOKEN_PREFIX,
};
use crate::liveness::{Challenge, LivenessReport};
use crate::store::{AuditEvent, NewSession, Session};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

const MAX_SUBJECT_REF: usize = 256;
const MAX_CONTEXT_BYTES: usize = 4096;

/// `POST /v1/sessions`: one variant per purpose, told apart by the `purpose` member. Parsing is the
/// validation: a body that deserialises is a valid request, and this type is also what the OpenAPI
/// document shows.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "purpose", rename_all = "snake_case", deny_unknown_fields)]
pub enum CreateSession {
    /// An enrollment session.
    Enrollment {
        /// The RP's own reference for the customer.
        #[serde(default)]
        #[schema(value_type = Option<String>, min_length = 1, max_length = 256)]
        subject_ref: Option<SubjectRef>,
        #[serde(default)]
        context: Option<SessionContext>,
    },
    /// A transaction session: re-verifies the person of `enrollment_id`.
    Transaction {
        enrollment_id: EnrollmentId,
        #[serde(default)]
        context: Option<SessionContext>,
    },
}

impl CreateSession {
    fn purpose(&self) -> Purpose {
        match self {
            CreateSession::Enrollment { .. } => Purpose::Enrollment,
            CreateSession::Transaction { .. } => Purpose::Transaction,
        }
    }

    fn context(&self) -> Option<String> {
        match self {
            CreateSession::Enrollment { context, .. }
            | CreateSession::Transaction { context, .. } => context.as_ref().map(|c| c.0.clone()),
        }
    }
}

/// The RP's reference for a customer: 1-256 characters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubjectRef(String);

impl TryFrom<String> for SubjectRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_SUBJECT_REF {
            return Err(format!(
                "subject_ref must be 1-{MAX_SUBJECT_REF} characters"
            ));
        }
        Ok(Self(s))
    }
}

impl From<SubjectRef> for String {
    fn from(s: SubjectRef) -> String {
        s.0
    }
}

/// Free-form JSON object the RP wants kept with the session, e.g. `{"reference": "wire-2291"}`:
/// at most 4096 bytes serialised. Held as its serialised text.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct SessionContext(String);

impl<'de> Deserialize<'de> for SessionContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if !value.is_object() {
            return Err(serde::de::Error::custom("context must be a JSON object"));
        }
        let text = value.to_string();
        if text.len() > MAX_CONTEXT_BYTES {
            return Err(serde::de::Error::custom(format!(
                "context must serialise to at most {MAX_CONTEXT_BYTES} bytes"
            )));
        }
        Ok(Self(text))
    }
}

/// The answer of `POST /v1/sessions` (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedSession {
    pub id: domain::SessionId,
    pub purpose: Purpose,
    /// Bearer token for the mobile app; valid for this session only, until `expires_at`. Shown once.
    pub client_token: String,
    /// 32 random bytes, base64url: bound into what the card and the JPKI key sign.
    pub nonce: String,
    pub expires_at: String,
    /// The live-capture challenge: one `liveness_frame` per prompt, in order (kind `off`: none).
    pub liveness: Challenge,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<EnrollmentId>,
}

/// The rules of a usable session: the right purpose, not yet consumed, not expired.
pub fn check_usable(session: &Session, purpose: Purpose, now: Millis) -> UseCaseResult<()> {
    if session.purpose != purpose {
        return Err(UseCaseError::Forbidden(format!(
            "this session is for {}",
            session.purpose.as_str()
        )));
    }
    if session.consumed_at.is_some() {
        return Err(UseCaseError::SessionConsumed);
    }
    if now >= session.expires_at {
        return Err(UseCaseError::SessionExpired);
    }
    Ok(())
}

/// The session an upload names, before any state check: the client token's own, or `session_id`
/// with an API key. Only the id is resolved here, so an Idempotency-Key can be looked up first. A
/// named id that is no session id names no session of this tenant: 404, as for any unknown id.
pub fn session_id_for(caller: &Caller, named: Option<&str>) -> UseCaseResult<SessionId> {
    match caller {
        Caller::Client { session } => {
            if named.is_some_and(|id| id != session.id.as_str()) {
                return Err(UseCaseError::Forbidden(
                    "a client token acts only on its own session".into(),
                ));
            }
            Ok(session.id.clone())
        }
        Caller::Tenant { .. } => {
            // Server to server the session is named in the path (`POST /v1/sessions/{id}/enrollment`);
            // the `session_id` field of the app's operation is the deprecated form of that.
            let named = named.ok_or_else(|| {
                UseCaseError::Forbidden(
                    "with an API key, enroll through POST /v1/sessions/{id}/enrollment".into(),
                )
            })?;
            SessionId::parse(named).ok_or(UseCaseError::NotFound)
        }
    }
}

/// Loads the session (for an API key) and applies [`check_usable`].
pub async fn usable_session(
    svc: &Services,
    caller: &Caller,
    session_id: &SessionId,
    purpose: Purpose,
) -> UseCaseResult<Session> {
    let session = match caller {
        // Read by the authentication of this very request.
        Caller::Client { session } => (**session).clone(),
        Caller::Tenant { tenant_id, .. } => svc
            .store
            .get_session(tenant_id, session_id)
            .await?
            .ok_or(UseCaseError::NotFound)?,
    };
    check_usable(&session, purpose, domain::now_millis())?;
    Ok(session)
}

/// What a session's stored challenge asks for. A challenge that cannot be read (written by another
/// version, or corrupted) is not "no challenge": it fails the liveness check.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredChallenge {
    Readable(Challenge),
    Unreadable,
}

impl StoredChallenge {
    pub fn of(session: &Session) -> Self {
        match session.liveness.as_deref() {
            None => StoredChallenge::Readable(Challenge::off()),
            Some(json) => serde_json::from_str(json)
                .map(StoredChallenge::Readable)
                .unwrap_or(StoredChallenge::Unreadable),
        }
    }

    /// The liveness report when the frames have been measured (see [`super::faces`]).
    pub fn evaluate(&self, measure: impl FnOnce(&Challenge) -> LivenessReport) -> LivenessReport {
        match self {
            StoredChallenge::Readable(c) => measure(c),
            StoredChallenge::Unreadable => LivenessReport::unreadable_challenge(),
        }
    }

    pub fn kind(&self) -> crate::liveness::LivenessMode {
        match self {
            StoredChallenge::Readable(c) => c.kind,
            StoredChallenge::Unreadable => crate::liveness::LivenessMode::PoseSequence,
        }
    }
}

/// `POST /v1/sessions` with the raw body (for the Idempotency-Key fingerprint).
pub async fn open(
    svc: &Services,
    tenant_id: &TenantId,
    key_id: &str,
    request: CreateSession,
    raw_body: &[u8],
    idempotency_key: Option<String>,
) -> UseCaseResult<Answer> {
    let context = request.context();
    let purpose = request.purpose();
    let keyed = idempotency_key.map(|key| {
        Keyed::new(
            tenant_id,
            &format!("key:{key_id}"),
            "POST /v1/sessions",
            key,
            &[raw_body],
        )
    });
    idempotency::once(svc, keyed, |completion| async move {
        let (subject_ref, enrollment_id) = match &request {
            CreateSession::Enrollment { subject_ref, .. } => {
                (subject_ref.clone().map(String::from), None)
            }
            CreateSession::Transaction { enrollment_id, .. } => {
                let enrollment = svc
                    .store
                    .get_enrollment(tenant_id, enrollment_id)
                    .await?
                    .ok_or(UseCaseError::NotFound)?;
                if !enrollment.status.is_active() {
                    return Err(UseCaseError::EnrollmentInactive);
                }
                (None, Some(enrollment_id.clone()))
            }
        };
        let now = domain::now_millis();
        let ttl_ms = i64::try_from(svc.settings.sessions.ttl_secs * 1000).unwrap_or(600_000);
        let credential = IssuedCredential::new(CLIENT_TOKEN_PREFIX);
        let nonce = domain::new_nonce();
        let tenant = svc
            .store
            .get_tenant(tenant_id)
            .await?
            .ok_or(UseCaseError::NotFound)?;
        let mode = tenant
            .settings
            .liveness
            .unwrap_or(svc.settings.liveness.mode);
        let challenge = Challenge::for_mode(mode, &mut rand::rngs::OsRng);
        let session = NewSession {
            id: SessionId::new(),
            tenant_id: tenant_id.clone(),
            purpose,
            subject_ref: subject_ref.clone(),
            enrollment_id: enrollment_id.clone(),
            context,
            client_token_hash: credential.hash,
            nonce,
            liveness: Some(serde_json::to_string(&challenge).map_err(UseCaseError::internal)?),
            created_at: now,
            expires_at: now + ttl_ms,
        };
        let created = CreatedSession {
            id: session.id.clone(),
            purpose,
            client_token: credential.token.into_inner(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            expires_at: domain::rfc3339(session.expires_at),
            liveness: challenge,
            subject_ref,
            enrollment_id,
        };
        let answer = Answer::created(&created)?;
        let audit = AuditEvent::new(
            tenant_id,
            crate::domain::AuditKind::SessionCreated,
            session.id.as_str(),
            serde_json::json!({"purpose": purpose.as_str()}),
        );
        // The answer holds the client token: sealed under the KEK, kept for the key's lifetime.
        let stored =
            completion.map(|c| c.sealed_under_kek(svc, &answer, Some(session.id.as_str())));
        svc.store
            .create_session(&session, &audit, stored.as_ref())
            .await?;
        Ok(answer)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Secret;

    const SES_1: &str = "ses_00000000000000000000000000000001";
    const SES_2: &str = "ses_00000000000000000000000000000002";

    fn session(purpose: Purpose, consumed: Option<Millis>, expires_at: Millis) -> Session {
        Session {
            id: SessionId::parse(SES_1).unwrap(),
            tenant_id: TenantId::new(),
            purpose,
            subject_ref: None,
            enrollment_id: None,
            context: None,
            nonce: Secret::new(vec![0; 32]),
            liveness: None,
            created_at: 0,
            expires_at,
            consumed_at: consumed,
        }
    }

    #[test]
    fn a_session_is_usable_only_for_its_purpose_once_and_before_expiry() {
        let s = session(Purpose::Enrollment, None, 1_000);
        assert!(check_usable(&s, Purpose::Enrollment, 999).is_ok());
        assert!(matches!(
            check_usable(&s, Purpose::Transaction, 0),
            Err(UseCaseError::Forbidden(_))
        ));
        assert!(matches!(
            check_usable(&s, Purpose::Enrollment, 1_000),
            Err(UseCaseError::SessionExpired)
        ));
        let used = session(Purpose::Enrollment, Some(5), 1_000);
        assert!(matches!(
            check_usable(&used, Purpose::Enrollment, 10),
            Err(UseCaseError::SessionConsumed)
        ));
    }

    #[test]
    fn an_unreadable_challenge_fails_closed() {
        let mut s = session(Purpose::Enrollment, None, 1_000);
        s.liveness = Some(r#"{"kind":"blink_twice","prompts":["wink"]}"#.into());
        let challenge = StoredChallenge::of(&s);
        assert_eq!(challenge, StoredChallenge::Unreadable);
        let report = challenge.evaluate(|_| unreachable!("never measured"));
        assert!(!report.passed());
        assert_eq!(
            report.failed,
            vec!["liveness_challenge_unreadable".to_string()]
        );
        s.liveness = None;
        assert_eq!(
            StoredChallenge::of(&s),
            StoredChallenge::Readable(Challenge::off())
        );
    }

    #[test]
    fn a_client_token_names_only_its_own_session() {
        let caller = Caller::Client {
            session: Box::new(session(Purpose::Enrollment, None, 1)),
        };
        assert_eq!(session_id_for(&caller, None).unwrap().as_str(), SES_1);
        assert_eq!(
            session_id_for(&caller, Some(SES_1)).unwrap().as_str(),
            SES_1
        );
        assert!(matches!(
            session_id_for(&caller, Some(SES_2)),
            Err(UseCaseError::Forbidden(_))
        ));
        let backend = Caller::Tenant {
            tenant_id: TenantId::new(),
            key_id: "key_1".into(),
        };
        // The backend names the session in the path of its own operation.
        assert!(matches!(
            session_id_for(&backend, None),
            Err(UseCaseError::Forbidden(_))
        ));
        assert_eq!(
            session_id_for(&backend, Some(SES_2)).unwrap().as_str(),
            SES_2
        );
        assert!(
            matches!(
                session_id_for(&backend, Some("ses_2")),
                Err(UseCaseError::NotFound)
            ),
            "no session id: no such session"
        );
    }
}
