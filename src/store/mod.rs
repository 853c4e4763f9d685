//! Storage: one trait per aggregate (tenants, sessions, enrollments, verifications, idempotency keys,
//! the audit log, webhooks, the status-check schedule, retention), each next to its row types and its
//! SQL; [`Store`] is all of them, and handlers depend on `Arc<dyn Store>` only. One implementation,
//! [`SqlStore`], serves PostgreSQL (production replicas) and SQLite (the embedded zero-setup default).
//!
//! The store stores: business rules (the lockout, disabling a failing webhook endpoint) are decided
//! by the use cases, and the store applies their results atomically, by compare-and-set where a
//! concurrent writer could have changed what the decision was based on.
//!
//! Every read is scoped by tenant: a row of another tenant is indistinguishable from a missing one.
//! Writes that belong together (an enrollment, its templates, its audit event, its outbox events,
//! consuming the session, the idempotent answer) happen in one transaction.

mod audit;
mod console;
mod enrollments;
mod error;
mod evidence;
mod gallery;
mod idempotency;
mod ids;
mod operators;
mod retention;
mod reviews;
mod schedule;
mod selfies;
mod sessions;
mod sql;
mod tenants;
mod verifications;
mod webhooks;

pub use audit::{chain_hash, verify_chain, AuditEvent, AuditRow, AuditStore, ChainVerdict};
pub use console::{ApiKeyRow, ConsoleStore, EnrollmentFilter, EnrollmentSummary, LinkedAuditRow};
pub use enrollments::{
    EnrollmentRow, EnrollmentStore, NewEnrollment, StatusChange, StoredTemplate,
};
pub use error::{StoreError, StoreResult};
pub use evidence::SealedEvidence;
pub use gallery::{
    EnrollmentFace, FeedKind, FeedOp, GalleryChange, GalleryStore, NewWatchlistEntry, WatchlistRow,
};
pub use idempotency::{
    Completion, IdempotencyScope, IdempotencyStore, IdempotentResponse, Reservation,
};
pub use operators::{
    ConsoleSessionRow, NewConsoleSession, NewOperator, OperatorRow, OperatorStore,
};
pub use retention::{PurgeCounts, RetentionCutoffs, RetentionStore};
pub use reviews::{ApprovalRow, ApprovalWrite, ReviewStore, ReviewWrite};
pub use schedule::{ClaimedCheck, ScheduleStore};
pub use selfies::{KeptSelfieRow, SelfieStore, SelfieWrite};
pub use sessions::{NewSession, Session, SessionStore};
pub use sql::{DatabaseStore, Dialect, SqlStore};
pub use tenants::{KeyRef, Tenant, TenantSettings, TenantStore};
pub use verifications::{NewVerification, VerificationStore, VerificationWrite};
pub use webhooks::{
    AttemptOutcome, AttemptRecord, AttemptRow, ClaimedDelivery, DeliveryRow, DeliveryState,
    NewWebhookEndpoint, OutboxEvent, WebhookEndpointRow, WebhookStore,
};

use crate::domain::TenantId;
use crate::redact::Secret;
use std::sync::Arc;

/// The whole store: every aggregate's trait. Implemented for every type that implements them all.
pub trait Store:
    DatabaseStore
    + TenantStore
    + SessionStore
    + EnrollmentStore
    + VerificationStore
    + IdempotencyStore
    + AuditStore
    + WebhookStore
    + ScheduleStore
    + RetentionStore
    + GalleryStore
    + SelfieStore
    + ReviewStore
    + OperatorStore
    + ConsoleStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: DatabaseStore
        + TenantStore
        + SessionStore
        + EnrollmentStore
        + VerificationStore
        + IdempotencyStore
        + AuditStore
        + WebhookStore
        + ScheduleStore
        + RetentionStore
        + GalleryStore
        + SelfieStore
        + ReviewStore
        + OperatorStore
        + ConsoleStore
        + Send
        + Sync
        + 'static
{
}

/// Tables whose rows tests and the privacy check count (see [`inspect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountedTable {
    Sessions,
    Enrollments,
    Templates,
    Verifications,
    Audit,
    IdempotencyKeys,
    WebhookEvents,
    WebhookDeliveries,
    SessionSelfies,
    ReviewEvidence,
}

impl CountedTable {
    pub fn name(self) -> &'static str {
        match self {
            CountedTable::Sessions => "sessions",
            CountedTable::Enrollments => "enrollments",
            CountedTable::Templates => "face_templates",
            CountedTable::Verifications => "verifications",
            CountedTable::Audit => "audit_log",
            CountedTable::IdempotencyKeys => "idempotency_keys",
            CountedTable::WebhookEvents => "webhook_events",
            CountedTable::WebhookDeliveries => "webhook_deliveries",
            CountedTable::SessionSelfies => "session_selfies",
            CountedTable::ReviewEvidence => "review_evidence",
        }
    }
}

/// Read-only inspection for operators' checks and tests, on its own connection: not part of [`Store`],
/// so no request path can reach it.
pub mod inspect {
    use super::*;
    use sqlx::Row;

    /// Rows of `table` that belong to `tenant_id`.
    pub async fn count_rows(
        url: &str,
        table: CountedTable,
        tenant_id: &TenantId,
    ) -> StoreResult<i64> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE tenant_id = $1",
            table.name()
        );
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await?;
            let n = sqlx::query(&sql)
                .bind(tenant_id)
                .fetch_one(&pool)
                .await?
                .try_get("n")?;
            pool.close().await;
            Ok(n)
        } else {
            let pool = sqlx::PgPool::connect(url).await?;
            let n = sqlx::query(&sql)
                .bind(tenant_id)
                .fetch_one(&pool)
                .await?
                .try_get("n")?;
            pool.close().await;
            Ok(n)
        }
    }
}

/// Verifies the audit chain of one tenant.
pub async fn verify_audit_chain(
    store: &dyn Store,
    tenant_id: &TenantId,
) -> StoreResult<ChainVerdict> {
    Ok(verify_chain(&store.audit_rows(tenant_id).await?))
}

/// Opens the store named by the URL: `sqlite://…` or `postgres://…`.
pub async fn connect(
    url: &Secret<String>,
    max_connections: u32,
    acquire_timeout: std::time::Duration,
) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(
        SqlStore::connect(url.expose(), max_connections, acquire_timeout).await?,
    ))
}
