//! Tenants and their API keys.

use super::sql::{hash32, SqlStore};
use super::{StoreError, StoreResult};
use crate::domain::{Millis, TenantId};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub settings: TenantSettings,
    pub created_at: Millis,
}

/// Per-tenant choices that override the configuration's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<crate::liveness::LivenessMode>,
    /// Require the 入力補助AP records and bind them to the certificate and the 券面AP (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_hojo: Option<bool>,
    /// Scheduled status checks: seconds between two checks of one enrollment (`status_checks.interval_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_check_interval_secs: Option<u64>,
    /// Retention overrides (`[retention]`); `Some(0)` for `shred_inactive_after_secs` means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shred_inactive_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_retention_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_retention_secs: Option<u64>,
    /// 1:N duplicate check at enrollment (issue 21): off (default), flag, review (the enrollment goes
    /// `in_review`, issue 22) or reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_check: Option<crate::domain::search::CheckMode>,
    /// What a watchlist hit at enrollment does: flag (default), review (`in_review`) or reject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchlist_action: Option<crate::domain::search::CheckMode>,
    /// Target false positive identification rate of 1:N searches (`search.default_target_fpir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_target_fpir: Option<crate::domain::search::Rate>,
    /// What a masked selfie does: `reject` (a retake; the default), `flag` (recorded, the decision goes
    /// on), `review` (the enrollment goes `in_review`, issue 22), `off` (docs/face.md, "Mask check").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfie_mask: Option<crate::face::MaskMode>,
    /// Review (issue 22): a face score below the enrollment threshold but at or above the threshold
    /// of this measured FMR (e.g. 1e-3) goes to review instead of `face_mismatch`. Absent: no band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_band_fmr: Option<crate::domain::search::Rate>,
    /// A signed `unknown` from J-LIS at enrollment goes to review instead of rejecting (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_on_status_unknown: Option<bool>,
    /// An approve needs two approvals by different reviewers (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_four_eyes: Option<bool>,
    /// Review evidence is shredded after this long at the latest (`review.evidence_retention_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_evidence_retention_secs: Option<u64>,
}

/// How an API key to revoke is named.
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    Id(&'a str),
    Hash(&'a [u8; 32]),
}

#[async_trait::async_trait]
pub trait TenantStore: Send + Sync {
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn add_api_key(
        &self,
        key_id: &str,
        tenant_id: &TenantId,
        key_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<()>;
    /// Revokes by key id or key hash; returns whether a live key was revoked.
    async fn revoke_api_key(&self, key_id_or_hash: KeyRef<'_>, now: Millis) -> StoreResult<bool>;
    /// The live API key with this hash: (key id, tenant id, stored hash).
    async fn api_key_by_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> StoreResult<Option<(String, TenantId, [u8; 32])>>;
}

fn tenant_from(r: &AnyRow) -> StoreResult<Tenant> {
    let settings: String = r.try_get("settings")?;
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("tenant settings: {e}")))?,
        created_at: r.try_get("created_at")?,
    })
}

#[async_trait::async_trait]
impl TenantStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_tenant(&self, t: &Tenant) -> StoreResult<()> {
        let settings =
            serde_json::to_string(&t.settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("INSERT INTO tenants (id, name, settings, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(settings)
            .bind(t.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, settings, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query(
            "SELECT id, name, settings, created_at FROM tenants ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn add_api_key(
        &self,
        key_id: &str,
        tenant_id: &TenantId,
        key_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_id)
        .bind(tenant_id)
        .bind(key_hash.as_slice())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_api_key(&self, key: KeyRef<'_>, now: Millis) -> StoreResult<bool> {
        let query = match key {
            KeyRef::Id(id) => sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id.to_string()),
            KeyRef::Hash(h) => sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE key_hash = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(h.to_vec()),
        };
        Ok(query.execute(&self.pool).await?.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn api_key_by_hash(
        &self,
        key_hash: &[u8; 32],
    ) -> StoreResult<Option<(String, TenantId, [u8; 32])>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, key_hash FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("tenant_id")?,
                hash32(r.try_get("key_hash")?)?,
            ))
        })
        .transpose()
    }
}
