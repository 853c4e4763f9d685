//! Sessions: opened by the RP, used once by the app (its client token), consumed by the write that
//! uses them.

use super::audit::{self, AuditEvent};
use super::idempotency::{self, Completion};
use super::sql::{hash32, SqlStore};
use super::{StoreError, StoreResult};
use crate::domain::{EnrollmentId, Millis, Purpose, SessionId, TenantId};
use crate::redact::Secret;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub tenant_id: TenantId,
    pub purpose: Purpose,
    pub subject_ref: Option<String>,
    pub enrollment_id: Option<EnrollmentId>,
    /// The RP's free-form context (JSON text), e.g. a transaction reference.
    pub context: Option<String>,
    pub client_token_hash: [u8; 32],
    pub nonce: [u8; 32],
    /// The liveness challenge (JSON text), if any.
    pub liveness: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub tenant_id: TenantId,
    pub purpose: Purpose,
    pub subject_ref: Option<String>,
    pub enrollment_id: Option<EnrollmentId>,
    pub context: Option<String>,
    pub nonce: Secret<Vec<u8>>,
    pub liveness: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub consumed_at: Option<Millis>,
}

impl Session {
    pub fn is_usable(&self, now: Millis) -> bool {
        self.consumed_at.is_none() && now < self.expires_at
    }
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// One transaction: the session, the idempotent answer if any, the audit event.
    async fn create_session(
        &self,
        session: &NewSession,
        audit: &AuditEvent,
        answer: Option<&Completion>,
    ) -> StoreResult<()>;
    /// The session of a client token, with its stored token hash.
    async fn session_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<(Session, [u8; 32])>>;
    async fn get_session(
        &self,
        tenant_id: &TenantId,
        id: &SessionId,
    ) -> StoreResult<Option<Session>>;
}

const SESSION_COLUMNS: &str = "id, tenant_id, purpose, subject_ref, enrollment_id, context, nonce, liveness, created_at, expires_at, consumed_at, client_token_hash";

fn session_from(row: &AnyRow) -> StoreResult<(Session, [u8; 32])> {
    let purpose: String = row.try_get("purpose")?;
    let session = Session {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        purpose: Purpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown purpose {purpose:?}")))?,
        subject_ref: row.try_get("subject_ref")?,
        enrollment_id: row.try_get("enrollment_id")?,
        context: row.try_get("context")?,
        nonce: Secret::new(row.try_get("nonce")?),
        liveness: row.try_get("liveness")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        consumed_at: row.try_get("consumed_at")?,
    };
    Ok((session, hash32(row.try_get("client_token_hash")?)?))
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_session(
        &self,
        s: &NewSession,
        audit: &AuditEvent,
        answer: Option<&Completion>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO sessions (id, tenant_id, purpose, subject_ref, enrollment_id, context, client_token_hash, nonce, liveness, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&s.id)
            .bind(&s.tenant_id)
            .bind(s.purpose.as_str())
            .bind(&s.subject_ref)
            .bind(&s.enrollment_id)
            .bind(&s.context)
            .bind(s.client_token_hash.as_slice())
            .bind(s.nonce.as_slice())
            .bind(&s.liveness)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *tx)
            .await?;
        if let Some(answer) = answer {
            idempotency::complete_in(&mut tx, answer, s.created_at).await?;
        }
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn session_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<(Session, [u8; 32])>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE client_token_hash = $1");
        let row = sqlx::query(&sql)
            .bind(token_hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn get_session(
        &self,
        tenant_id: &TenantId,
        id: &SessionId,
    ) -> StoreResult<Option<Session>> {
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(session_from).transpose()?.map(|(s, _)| s))
    }
}

/// Marks the session used inside the caller's transaction and deletes the selfie kept with it; a
/// session already used (by a concurrent request) fails it with [`StoreError::SessionConsumed`].
pub(super) async fn consume_in(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    session_id: &SessionId,
    now: Millis,
) -> StoreResult<()> {
    let consumed = sqlx::query("UPDATE sessions SET consumed_at = $1 WHERE id = $2 AND tenant_id = $3 AND consumed_at IS NULL")
        .bind(now)
        .bind(session_id)
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    if consumed.rows_affected() != 1 {
        return Err(StoreError::SessionConsumed);
    }
    // A used session keeps nothing of the selfie step (used now, or replaced by the posted selfie).
    super::selfies::delete_in(conn, tenant_id, session_id).await?;
    Ok(())
}
