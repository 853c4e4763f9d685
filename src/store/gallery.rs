//! What the in-memory 1:N galleries are built from and kept current by: the sealed enrollment
//! templates (read for a start-up build, or one at a time), the watchlist entries, and the change
//! feed `gallery_changes` (ids and an operation, written in the transaction of each change).

use super::audit::{self, AuditEvent};
use super::sql::{Dialect, SqlStore};
use super::{StoreError, StoreResult, StoredTemplate};
use crate::crypto::WrappedKey;
use crate::domain::{EnrollmentId, EnrollmentStatus, Millis, TemplateSource, TenantId};
use crate::redact::Secret;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// What a feed row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    Enrollment,
    Watchlist,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Enrollment => "enrollment",
            FeedKind::Watchlist => "watchlist",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [FeedKind::Enrollment, FeedKind::Watchlist]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What happened: the subject may now be in a gallery (re-read it), or is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedOp {
    Upsert,
    Remove,
}

impl FeedOp {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedOp::Upsert => "upsert",
            FeedOp::Remove => "remove",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [FeedOp::Upsert, FeedOp::Remove]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One row of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryChange {
    pub seq: i64,
    pub tenant_id: TenantId,
    pub kind: FeedKind,
    pub subject_id: String,
    pub op: FeedOp,
}

/// A live enrollment's gallery material: its wrapped key, its sealed identity (for the duplicate
/// check's identity comparison, unsealed in memory only) and its sealed enrollment-selfie template.
#[derive(Debug, Clone)]
pub struct EnrollmentFace {
    pub tenant_id: TenantId,
    pub enrollment_id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub wrapped_key: WrappedKey,
    pub identity_sealed: Secret<Vec<u8>>,
    pub template: StoredTemplate,
}

/// A new watchlist entry: everything about the person sealed under the entry's own key.
#[derive(Debug, Clone)]
pub struct NewWatchlistEntry {
    pub id: String,
    pub tenant_id: TenantId,
    pub wrapped_key: WrappedKey,
    pub template_sealed: Vec<u8>,
    pub label_sealed: Vec<u8>,
    pub reason_sealed: Vec<u8>,
    pub model_id: String,
    pub model_hash: String,
    pub preprocessing_version: String,
    pub created_at: Millis,
}

/// A live watchlist entry as stored.
#[derive(Debug, Clone)]
pub struct WatchlistRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub wrapped_key: WrappedKey,
    pub template_sealed: Secret<Vec<u8>>,
    pub label_sealed: Secret<Vec<u8>>,
    pub reason_sealed: Secret<Vec<u8>>,
    pub model_id: String,
    pub model_hash: String,
    pub preprocessing_version: String,
    pub created_at: Millis,
}

#[async_trait::async_trait]
pub trait GalleryStore: Send + Sync {
    /// The lowest and highest sequence numbers in the feed (`None` when it is empty).
    async fn gallery_feed_bounds(&self) -> StoreResult<Option<(i64, i64)>>;
    /// Feed rows after `after`, oldest first, at most `limit`.
    async fn gallery_changes_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<GalleryChange>>;
    /// Drops feed rows written before `before`; returns how many.
    async fn prune_gallery_changes(&self, before: Millis) -> StoreResult<u64>;
    /// Every live enrollment with a key and an enrollment-selfie template, every tenant, sent to
    /// `out` in batches of `batch` as one query streams them (a start-up build; one pass, no paging).
    /// Returns how many were sent; stops early if the receiver is gone.
    async fn stream_enrollment_faces(
        &self,
        batch: usize,
        out: tokio::sync::mpsc::Sender<Vec<EnrollmentFace>>,
    ) -> StoreResult<u64>;
    /// One enrollment's gallery material, if it is live and has it.
    async fn enrollment_face(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Option<EnrollmentFace>>;
    /// One transaction: the entry, its audit event and its feed row.
    async fn create_watchlist_entry(
        &self,
        entry: &NewWatchlistEntry,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// A tenant's live entries, newest first, at most `limit`.
    async fn watchlist_entries(
        &self,
        tenant_id: &TenantId,
        limit: i64,
    ) -> StoreResult<Vec<WatchlistRow>>;
    async fn watchlist_entry(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> StoreResult<Option<WatchlistRow>>;
    /// Live entries of every tenant ordered by id after `after` (a page of a start-up build).
    async fn all_watchlist_entries(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<WatchlistRow>>;
    /// Crypto-shreds an entry (drops its wrapped key and sealed records; a tombstone remains) with
    /// its audit event and feed row. `false`: there was no live entry.
    async fn delete_watchlist_entry(
        &self,
        tenant_id: &TenantId,
        id: &str,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool>;
}

/// Appends a feed row inside the caller's transaction. Call it as the transaction's LAST statement
/// (after the audit append): on PostgreSQL it takes the feed's advisory lock, held until commit.
pub(super) async fn feed_in(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: &TenantId,
    kind: FeedKind,
    subject_id: &str,
    op: FeedOp,
    at: Millis,
) -> StoreResult<()> {
    if let Some(lock) = dialect.gallery_feed_lock() {
        sqlx::query(lock).fetch_all(&mut *conn).await?;
    }
    sqlx::query(
        "INSERT INTO gallery_changes (tenant_id, kind, subject_id, op, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(kind.as_str())
    .bind(subject_id)
    .bind(op.as_str())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const FACE_COLUMNS: &str = "e.tenant_id, e.id, e.status, e.kek_id, e.wrapped_dek, e.identity_sealed, t.id AS template_id, t.source, t.model_id, t.model_hash, t.preprocessing_version, t.sealed";
/// An enrollment in review is in no gallery until approved (issue 22).
const FACE_FROM: &str = "FROM enrollments e JOIN face_templates t ON t.tenant_id = e.tenant_id AND t.enrollment_id = e.id AND t.source = 'enrollment_selfie' WHERE e.deleted_at IS NULL AND e.wrapped_dek IS NOT NULL AND e.identity_sealed IS NOT NULL AND e.status <> 'in_review'";

fn face_from(r: &AnyRow) -> StoreResult<EnrollmentFace> {
    let status: String = r.try_get("status")?;
    let source: String = r.try_get("source")?;
    Ok(EnrollmentFace {
        tenant_id: r.try_get("tenant_id")?,
        enrollment_id: r.try_get("id")?,
        status: EnrollmentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown enrollment status {status:?}")))?,
        wrapped_key: WrappedKey {
            kek_id: r.try_get("kek_id")?,
            blob: r.try_get("wrapped_dek")?,
        },
        identity_sealed: Secret::new(r.try_get("identity_sealed")?),
        template: StoredTemplate {
            id: r.try_get("template_id")?,
            source: TemplateSource::parse(&source).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown template source {source:?}"))
            })?,
            model_id: r.try_get("model_id")?,
            model_hash: r.try_get("model_hash")?,
            preprocessing_version: r.try_get("preprocessing_version")?,
            sealed: Secret::new(r.try_get("sealed")?),
        },
    })
}

const WATCH_COLUMNS: &str = "id, tenant_id, kek_id, wrapped_dek, template_sealed, label_sealed, reason_sealed, model_id, model_hash, preprocessing_version, created_at";

fn watch_from(r: &AnyRow) -> StoreResult<WatchlistRow> {
    Ok(WatchlistRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        wrapped_key: WrappedKey {
            kek_id: r.try_get("kek_id")?,
            blob: r.try_get("wrapped_dek")?,
        },
        template_sealed: Secret::new(r.try_get("template_sealed")?),
        label_sealed: Secret::new(r.try_get("label_sealed")?),
        reason_sealed: Secret::new(r.try_get("reason_sealed")?),
        model_id: r.try_get("model_id")?,
        model_hash: r.try_get("model_hash")?,
        preprocessing_version: r.try_get("preprocessing_version")?,
        created_at: r.try_get("created_at")?,
    })
}

#[async_trait::async_trait]
impl GalleryStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn gallery_feed_bounds(&self) -> StoreResult<Option<(i64, i64)>> {
        let row = sqlx::query("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM gallery_changes")
            .fetch_one(&self.pool)
            .await?;
        let lo: Option<i64> = row.try_get("lo")?;
        let hi: Option<i64> = row.try_get("hi")?;
        Ok(lo.zip(hi))
    }

    #[tracing::instrument(skip_all)]
    async fn gallery_changes_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<GalleryChange>> {
        let rows = sqlx::query("SELECT seq, tenant_id, kind, subject_id, op FROM gallery_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let op: String = r.try_get("op")?;
                Ok(GalleryChange {
                    seq: r.try_get("seq")?,
                    tenant_id: r.try_get("tenant_id")?,
                    kind: FeedKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("feed kind {kind:?}")))?,
                    subject_id: r.try_get("subject_id")?,
                    op: FeedOp::parse(&op)
                        .ok_or_else(|| StoreError::Corrupt(format!("feed op {op:?}")))?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn prune_gallery_changes(&self, before: Millis) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM gallery_changes WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    #[tracing::instrument(skip_all)]
    async fn stream_enrollment_faces(
        &self,
        batch: usize,
        out: tokio::sync::mpsc::Sender<Vec<EnrollmentFace>>,
    ) -> StoreResult<u64> {
        use futures::TryStreamExt;
        // One statement streamed, not pages: a page's join re-reads the templates table each time,
        // which is quadratic in the gallery size.
        let sql = format!("SELECT {FACE_COLUMNS} {FACE_FROM}");
        let mut rows = sqlx::query(&sql).fetch(&self.pool);
        let (mut sent, mut page) = (0u64, Vec::with_capacity(batch));
        while let Some(row) = rows.try_next().await? {
            page.push(face_from(&row)?);
            if page.len() >= batch {
                sent += page.len() as u64;
                if out.send(std::mem::take(&mut page)).await.is_err() {
                    return Ok(sent);
                }
            }
        }
        if !page.is_empty() {
            sent += page.len() as u64;
            let _ = out.send(page).await;
        }
        Ok(sent)
    }

    #[tracing::instrument(skip_all)]
    async fn enrollment_face(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Option<EnrollmentFace>> {
        let sql = format!("SELECT {FACE_COLUMNS} {FACE_FROM} AND e.tenant_id = $1 AND e.id = $2");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(face_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn create_watchlist_entry(
        &self,
        e: &NewWatchlistEntry,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO watchlist_entries (id, tenant_id, kek_id, wrapped_dek, template_sealed, label_sealed, reason_sealed, model_id, model_hash, preprocessing_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&e.id)
            .bind(&e.tenant_id)
            .bind(&e.wrapped_key.kek_id)
            .bind(e.wrapped_key.blob.as_slice())
            .bind(e.template_sealed.as_slice())
            .bind(e.label_sealed.as_slice())
            .bind(e.reason_sealed.as_slice())
            .bind(&e.model_id)
            .bind(&e.model_hash)
            .bind(&e.preprocessing_version)
            .bind(e.created_at)
            .execute(&mut *tx)
            .await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        feed_in(
            &mut tx,
            self.dialect,
            &e.tenant_id,
            FeedKind::Watchlist,
            &e.id,
            FeedOp::Upsert,
            e.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn watchlist_entries(
        &self,
        tenant_id: &TenantId,
        limit: i64,
    ) -> StoreResult<Vec<WatchlistRow>> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watchlist_entries WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(watch_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn watchlist_entry(
        &self,
        tenant_id: &TenantId,
        id: &str,
    ) -> StoreResult<Option<WatchlistRow>> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watchlist_entries WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(watch_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn all_watchlist_entries(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<WatchlistRow>> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watchlist_entries WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(watch_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_watchlist_entry(
        &self,
        tenant_id: &TenantId,
        id: &str,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE watchlist_entries SET kek_id = NULL, wrapped_dek = NULL, template_sealed = NULL, label_sealed = NULL, reason_sealed = NULL, deleted_at = $1 WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(now)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        audit::append_in(&mut tx, self.dialect, audit).await?;
        feed_in(
            &mut tx,
            self.dialect,
            tenant_id,
            FeedKind::Watchlist,
            id,
            FeedOp::Remove,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
