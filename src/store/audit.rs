//! The audit log: append-only and hash-chained per tenant. Each row commits to the previous row's
//! hash and its own content, so an edited, removed or reordered row breaks every hash after it.

use super::sql::{Dialect, SqlStore};
use super::StoreResult;
use crate::domain::{AuditKind, Millis, TenantId};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use sqlx::Row;

/// What happened, to which resource. `details` is JSON with ids and outcomes only, never personal data.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub tenant_id: TenantId,
    pub event: AuditKind,
    pub subject: String,
    pub details: serde_json::Value,
    pub at: Millis,
}

impl AuditEvent {
    pub fn new(
        tenant_id: &TenantId,
        event: AuditKind,
        subject: &str,
        details: serde_json::Value,
    ) -> Self {
        Self {
            tenant_id: tenant_id.clone(),
            event,
            subject: subject.to_string(),
            details,
            at: crate::domain::now_millis(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub tenant_id: TenantId,
    pub seq: i64,
    pub at: Millis,
    pub event: String,
    pub subject: String,
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// SHA-256 over the previous hash and the row's fields, each length-prefixed so that no two
/// different rows hash the same.
pub fn chain_hash(
    prev_hash: &[u8],
    tenant_id: &str,
    seq: i64,
    at: Millis,
    event: &str,
    subject: &str,
    details: &str,
) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"jpki-face/audit/v1");
    for field in [
        prev_hash,
        tenant_id.as_bytes(),
        &seq.to_be_bytes(),
        &at.to_be_bytes(),
        event.as_bytes(),
        subject.as_bytes(),
        details.as_bytes(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.finalize().to_vec()
}

/// The hash the first row of a tenant points back to.
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    Intact {
        rows: usize,
    },
    /// The first row (by seq) whose link or hash does not check.
    Broken {
        seq: i64,
    },
}

/// Checks the rows of one tenant, in seq order.
pub fn verify_chain(rows: &[AuditRow]) -> ChainVerdict {
    let mut prev: Vec<u8> = GENESIS.to_vec();
    for (i, row) in rows.iter().enumerate() {
        let expected = chain_hash(
            &prev,
            row.tenant_id.as_str(),
            row.seq,
            row.at,
            &row.event,
            &row.subject,
            &row.details,
        );
        if row.seq != i as i64 + 1 || row.prev_hash != prev || row.hash != expected {
            return ChainVerdict::Broken { seq: row.seq };
        }
        prev = row.hash.clone();
    }
    ChainVerdict::Intact { rows: rows.len() }
}

#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one event on its own (events of a change are appended by the change's own write).
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// The tenant's rows, in chain order.
    async fn audit_rows(&self, tenant_id: &TenantId) -> StoreResult<Vec<AuditRow>>;
}

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        append_in(&mut tx, self.dialect, event).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn audit_rows(&self, tenant_id: &TenantId) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query("SELECT tenant_id, seq, at, event, subject, details, prev_hash, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    tenant_id: r.try_get("tenant_id")?,
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    subject: r.try_get("subject")?,
                    details: r.try_get("details")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }
}

/// Appends `ev` to its tenant's chain inside the caller's transaction, serialised per tenant (see
/// [`super::sql::Dialect::audit_chain_lock`]).
pub(super) async fn append_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    ev: &AuditEvent,
) -> StoreResult<()> {
    if let Some(lock) = dialect.audit_chain_lock() {
        sqlx::query(lock)
            .bind(&ev.tenant_id)
            .fetch_all(&mut *conn)
            .await?;
    }
    let last = sqlx::query(
        "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(&ev.tenant_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (prev_seq, prev_hash): (i64, Vec<u8>) = match last {
        Some(row) => (row.try_get("seq")?, row.try_get("hash")?),
        None => (0, GENESIS.to_vec()),
    };
    let seq = prev_seq + 1;
    let details = ev.details.to_string();
    let hash = chain_hash(
        &prev_hash,
        ev.tenant_id.as_str(),
        seq,
        ev.at,
        ev.event.as_str(),
        &ev.subject,
        &details,
    );
    sqlx::query("INSERT INTO audit_log (tenant_id, seq, at, event, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&ev.tenant_id)
        .bind(seq)
        .bind(ev.at)
        .bind(ev.event.as_str())
        .bind(&ev.subject)
        .bind(details)
        .bind(prev_hash)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends every event of `events`, in order.
pub(super) async fn append_all_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    events: &[AuditEvent],
) -> StoreResult<()> {
    for ev in events {
        append_in(conn, dialect, ev).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRow> {
        let tenant = TenantId::new();
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let hash = chain_hash(&prev, tenant.as_str(), seq, seq * 10, "e", "s", "{}");
                let row = AuditRow {
                    tenant_id: tenant.clone(),
                    seq,
                    at: seq * 10,
                    event: "e".into(),
                    subject: "s".into(),
                    details: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), ChainVerdict::Intact { rows: 5 });
    }

    #[test]
    fn edits_and_removals_are_detected() {
        let mut rows = chain(5);
        rows[2].details = "{\"x\":1}".into();
        assert_eq!(verify_chain(&rows), ChainVerdict::Broken { seq: 3 });
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(verify_chain(&rows), ChainVerdict::Broken { seq: 3 });
    }
}
