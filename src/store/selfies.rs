//! The selfie step's kept selfies: at most one per session, sealed under the session's own data key,
//! written only while the session is unconsumed (the session row is locked for that), deleted when the
//! session is consumed (`sessions::consume_in`) and by the retention run once the session expired.

use super::audit::{self, AuditEvent};
use super::idempotency::{self, Completion};
use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use crate::crypto::WrappedKey;
use crate::domain::{Millis, SessionId, TenantId};
use crate::redact::Secret;
use sqlx::Row;

/// A passing selfie as kept: sealed evidence and its wrapped data key.
#[derive(Debug, Clone)]
pub struct KeptSelfieRow {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub wrapped_key: WrappedKey,
    pub sealed: Secret<Vec<u8>>,
    pub created_at: Millis,
    /// The session's expiry: the row is purged after it.
    pub expires_at: Millis,
}

/// One selfie post: what it keeps (a passing selfie) or nothing (a retake), with its audit event and
/// idempotent answer.
#[derive(Debug)]
pub struct SelfieWrite<'a> {
    pub tenant_id: &'a TenantId,
    pub session_id: &'a SessionId,
    pub keep: Option<&'a KeptSelfieRow>,
    pub audit: &'a AuditEvent,
    pub answer: Option<&'a Completion>,
    pub now: Millis,
}

#[async_trait::async_trait]
pub trait SelfieStore: Send + Sync {
    /// One transaction: locks the session row and fails with [`StoreError::SessionConsumed`] if it
    /// was used (also by a request that committed while this one waited); replaces the kept selfie
    /// if `keep` is given; appends the audit event and stores the answer.
    async fn record_selfie(&self, write: &SelfieWrite<'_>) -> StoreResult<()>;
    /// The selfie kept with the session, if any.
    async fn kept_selfie(
        &self,
        tenant_id: &TenantId,
        session_id: &SessionId,
    ) -> StoreResult<Option<KeptSelfieRow>>;
}

#[async_trait::async_trait]
impl SelfieStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn record_selfie(&self, w: &SelfieWrite<'_>) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // A no-op write that takes the session row's lock (PostgreSQL; SQLite's immediate transaction
        // already serialises writers) and re-reads `consumed_at` after any concurrent consumer commits:
        // a selfie is never kept for a session that an enrollment or verify has used.
        let locked = sqlx::query("UPDATE sessions SET consumed_at = consumed_at WHERE id = $1 AND tenant_id = $2 AND consumed_at IS NULL")
            .bind(w.session_id)
            .bind(w.tenant_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() != 1 {
            return Err(StoreError::SessionConsumed);
        }
        if let Some(k) = w.keep {
            sqlx::query("DELETE FROM session_selfies WHERE session_id = $1 AND tenant_id = $2")
                .bind(&k.session_id)
                .bind(&k.tenant_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO session_selfies (session_id, tenant_id, kek_id, wrapped_dek, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&k.session_id)
                .bind(&k.tenant_id)
                .bind(&k.wrapped_key.kek_id)
                .bind(k.wrapped_key.blob.as_slice())
                .bind(k.sealed.expose().as_slice())
                .bind(k.created_at)
                .bind(k.expires_at)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(answer) = w.answer {
            idempotency::complete_in(&mut tx, answer, w.now).await?;
        }
        audit::append_in(&mut tx, self.dialect, w.audit).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn kept_selfie(
        &self,
        tenant_id: &TenantId,
        session_id: &SessionId,
    ) -> StoreResult<Option<KeptSelfieRow>> {
        let row = sqlx::query("SELECT session_id, tenant_id, kek_id, wrapped_dek, sealed, created_at, expires_at FROM session_selfies WHERE tenant_id = $1 AND session_id = $2")
            .bind(tenant_id)
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(KeptSelfieRow {
                session_id: r.try_get("session_id")?,
                tenant_id: r.try_get("tenant_id")?,
                wrapped_key: WrappedKey {
                    kek_id: r.try_get("kek_id")?,
                    blob: r.try_get("wrapped_dek")?,
                },
                sealed: Secret::new(r.try_get("sealed")?),
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }
}

/// Deletes the session's kept selfie inside the caller's transaction (the session is being consumed).
pub(super) async fn delete_in(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    session_id: &SessionId,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM session_selfies WHERE session_id = $1 AND tenant_id = $2")
        .bind(session_id)
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
