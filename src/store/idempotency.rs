//! Idempotency keys: a key is reserved before the work runs and completed with the stored answer in
//! the work's own transaction.

use super::sql::{hash32, SqlStore};
use super::{StoreError, StoreResult};
use crate::domain::{EnrollmentId, Millis, TenantId};
use sqlx::AnyConnection;
use sqlx::Row;

/// Where an Idempotency-Key lives: the tenant, the credential that used it (an API key id or, for a
/// client token, its session) and the method + route. Keys of different scopes never meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub tenant_id: TenantId,
    /// `key:<api key id>` or `session:<session id>`, then `|`, then `POST /v1/…`.
    pub scope: String,
    pub key: String,
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct IdempotentResponse {
    pub status: u16,
    /// The answer, sealed (see `sealed_under`).
    pub body: Vec<u8>,
    /// `None`: sealed under the KEK. `Some(enrollment id)`: sealed under that enrollment's data key,
    /// so crypto-shredding the enrollment destroys it.
    pub sealed_under: Option<EnrollmentId>,
    /// The resource the answer created; deleting that resource deletes this answer.
    pub resource_id: Option<String>,
}

/// What a reservation found.
#[derive(Debug, Clone)]
pub enum Reservation {
    /// The key is ours: run the work, then complete it in the work's own transaction.
    Reserved,
    /// The key was used for this request before: here is the answer.
    Replay(IdempotentResponse),
    /// The key was used for a different request.
    Conflict,
    /// A request with this key is running now.
    InProgress { retry_after_ms: Millis },
}

/// The answer to store with the write it answers, in the same transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    pub scope: IdempotencyScope,
    pub request_hash: [u8; 32],
    pub response: IdempotentResponse,
    pub expires_at: Millis,
}

#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reserves an Idempotency-Key for a request with this fingerprint (see [`Reservation`]). A
    /// reservation older than `reserve_ms` belongs to a request that died and is taken over.
    async fn reserve_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        request_hash: &[u8; 32],
        now: Millis,
        reserve_ms: Millis,
        ttl_ms: Millis,
    ) -> StoreResult<Reservation>;
    /// Drops a reservation that decided nothing, so the client can retry (a completed answer stays).
    async fn release_idempotency_key(&self, scope: &IdempotencyScope) -> StoreResult<()>;
}

#[async_trait::async_trait]
impl IdempotencyStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn reserve_idempotency_key(
        &self,
        k: &IdempotencyScope,
        request_hash: &[u8; 32],
        now: Millis,
        reserve_ms: Millis,
        ttl_ms: Millis,
    ) -> StoreResult<Reservation> {
        let mut tx = self.begin().await?;
        // An expired answer frees its key.
        sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2 AND key = $3 AND expires_at <= $4")
            .bind(&k.tenant_id)
            .bind(&k.scope)
            .bind(&k.key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query("INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, state, reserved_until, created_at, expires_at) VALUES ($1, $2, $3, $4, 'in_progress', $5, $6, $7) ON CONFLICT (tenant_id, scope, key) DO NOTHING")
            .bind(&k.tenant_id)
            .bind(&k.scope)
            .bind(&k.key)
            .bind(request_hash.as_slice())
            .bind(now + reserve_ms)
            .bind(now)
            .bind(now + ttl_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 1 {
            tx.commit().await?;
            return Ok(Reservation::Reserved);
        }
        let sql = format!(
            "SELECT request_hash, state, reserved_until, status, body, sealed_under, resource_id FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2 AND key = $3{}",
            self.dialect.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(&k.tenant_id)
            .bind(&k.scope)
            .bind(&k.key)
            .fetch_one(&mut *tx)
            .await?;
        if hash32(row.try_get("request_hash")?)? != *request_hash {
            return Ok(Reservation::Conflict);
        }
        let state: String = row.try_get("state")?;
        if state == "done" {
            let status: Option<i64> = row.try_get("status")?;
            let body: Option<Vec<u8>> = row.try_get("body")?;
            let (Some(status), Some(body)) = (status, body) else {
                return Err(StoreError::Corrupt(
                    "completed idempotency key without answer".into(),
                ));
            };
            return Ok(Reservation::Replay(IdempotentResponse {
                status: u16::try_from(status).map_err(|_| StoreError::Corrupt("status".into()))?,
                body,
                sealed_under: row.try_get("sealed_under")?,
                resource_id: row.try_get("resource_id")?,
            }));
        }
        let reserved_until: Millis = row.try_get("reserved_until")?;
        if reserved_until > now {
            return Ok(Reservation::InProgress {
                retry_after_ms: reserved_until - now,
            });
        }
        // The request that reserved it died: take the key over.
        sqlx::query("UPDATE idempotency_keys SET reserved_until = $1 WHERE tenant_id = $2 AND scope = $3 AND key = $4 AND state = 'in_progress'")
            .bind(now + reserve_ms)
            .bind(&k.tenant_id)
            .bind(&k.scope)
            .bind(&k.key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Reservation::Reserved)
    }

    #[tracing::instrument(skip_all)]
    async fn release_idempotency_key(&self, k: &IdempotencyScope) -> StoreResult<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2 AND key = $3 AND state = 'in_progress'")
            .bind(&k.tenant_id)
            .bind(&k.scope)
            .bind(&k.key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Stores the idempotent answer inside the caller's transaction. A reservation that was taken over
/// after it expired is overwritten: the first request to commit answers.
pub(super) async fn complete_in(
    conn: &mut AnyConnection,
    c: &Completion,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, state, reserved_until, status, body, sealed_under, resource_id, created_at, expires_at) VALUES ($1, $2, $3, $4, 'done', $5, $6, $7, $8, $9, $5, $10) ON CONFLICT (tenant_id, scope, key) DO UPDATE SET state = 'done', status = excluded.status, body = excluded.body, sealed_under = excluded.sealed_under, resource_id = excluded.resource_id, expires_at = excluded.expires_at WHERE idempotency_keys.state = 'in_progress'")
        .bind(&c.scope.tenant_id)
        .bind(&c.scope.scope)
        .bind(&c.scope.key)
        .bind(c.request_hash.as_slice())
        .bind(now)
        .bind(i64::from(c.response.status))
        .bind(c.response.body.as_slice())
        .bind(&c.response.sealed_under)
        .bind(&c.response.resource_id)
        .bind(c.expires_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
