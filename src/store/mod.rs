//! Storage: one trait, two real implementations (PostgreSQL for production replicas, SQLite as the
//! embedded zero-setup default). Handlers depend on [`Store`] only.
//!
//! Every read is scoped by tenant: a row of another tenant is indistinguishable from a missing one.
//! Writes that belong together (an enrollment, its templates, its audit event, consuming the
//! session) happen in one transaction.

mod audit;
mod ids;
mod sql;

pub use audit::{chain_hash, verify_chain, AuditEvent, AuditRow, ChainVerdict};
pub use sql::{PgStore, SqliteStore};

use crate::crypto::WrappedKey;
use crate::domain::{
    DeliveryId, EnrollmentId, EnrollmentStatus, EventId, Millis, Purpose, SessionId,
    TemplateSource, TenantId, VerificationDecision, VerificationId, WebhookId,
};
use crate::lockout::Lockout;
use crate::redact::Secret;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or asked us to retry (connection lost, pool exhausted,
    /// shutting down, serialisation failure): nothing was written; the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The session was consumed by a concurrent request.
    #[error("session already consumed")]
    SessionConsumed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database url (want sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The row the write depends on is gone (e.g. deleted concurrently).
    #[error("no such row")]
    NotFound,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if matches!(e, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) {
            // E.g. an id column whose value lost its prefix (see `ids`).
            StoreError::Corrupt(e.to_string())
        } else if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// Errors after which nothing was decided and a retry may succeed.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // PostgreSQL: class 08 connection exception, 57P0x shutdown / cannot connect now,
            // 40001 serialization failure, 40P01 deadlock. SQLite: 5 BUSY, 6 LOCKED (and extended codes).
            code.starts_with("08")
                || code.starts_with("57P0")
                || code == "40001"
                || code == "40P01"
                || code == "5"
                || code == "6"
                || code
                    .parse::<u32>()
                    .is_ok_and(|c| c & 0xff == 5 || c & 0xff == 6)
        }
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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
}

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

/// A face template as stored: sealed vector plus what it was made with.
#[derive(Debug, Clone)]
pub struct StoredTemplate {
    pub id: String,
    pub source: TemplateSource,
    pub model_id: String,
    pub model_hash: String,
    pub preprocessing_version: String,
    pub sealed: Secret<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct NewEnrollment {
    pub id: EnrollmentId,
    pub tenant_id: TenantId,
    pub session_id: SessionId,
    pub subject_ref: Option<String>,
    pub status: EnrollmentStatus,
    /// The public decision record (checks, reasons): no personal data.
    pub document: String,
    pub identity_sealed: Option<Vec<u8>>,
    pub revocation_sealed: Option<Vec<u8>>,
    pub wrapped_key: Option<WrappedKey>,
    pub templates: Vec<StoredTemplate>,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct EnrollmentRow {
    pub id: EnrollmentId,
    pub tenant_id: TenantId,
    pub session_id: SessionId,
    pub subject_ref: Option<String>,
    pub status: EnrollmentStatus,
    pub document: String,
    pub identity_sealed: Option<Secret<Vec<u8>>>,
    pub revocation_sealed: Option<Secret<Vec<u8>>>,
    pub wrapped_key: Option<WrappedKey>,
    pub failed_count: i64,
    pub failure_window_start: Option<Millis>,
    pub locked_until: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl EnrollmentRow {
    /// The lockout counters as stored.
    pub fn lockout(&self) -> Lockout {
        Lockout {
            failed_count: self.failed_count,
            failure_window_start: self.failure_window_start,
            locked_until: self.locked_until,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewVerification {
    pub id: VerificationId,
    pub tenant_id: TenantId,
    pub enrollment_id: EnrollmentId,
    pub session_id: Option<SessionId>,
    pub decision: VerificationDecision,
    pub document: String,
    pub created_at: Millis,
}

/// A status check's result for one enrollment: from the status it read to the one it decided, with the
/// re-rendered decision record.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub from: EnrollmentStatus,
    pub to: EnrollmentStatus,
    pub document: &'a str,
}

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

/// A verification with the lockout counters the use case computed for it (see
/// [`crate::lockout::LockoutPolicy::next`]). The store decides nothing: it writes `next` only if the
/// counters are still `seen` (compare-and-set), together with everything else, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct VerificationWrite<'a> {
    pub verification: &'a NewVerification,
    /// The counters `next` was computed from.
    pub seen: Lockout,
    pub next: Lockout,
    /// Appended to the audit chain in this order.
    pub audit: &'a [AuditEvent],
    pub answer: Option<&'a Completion>,
    pub events: &'a [OutboxEvent],
}

/// A webhook event, written to the outbox in the transaction of the change that caused it and fanned
/// out there to every enabled endpoint of the tenant subscribed to its type.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// `evt_…`: receivers de-duplicate by it.
    pub id: EventId,
    pub tenant_id: TenantId,
    pub event_type: String,
    /// The exact JSON body sent (ids and statuses only).
    pub payload: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub url: String,
    pub events: Vec<String>,
    /// The signing secret sealed under the KEK.
    pub secret_sealed: Vec<u8>,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct WebhookEndpointRow {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub url: String,
    pub events: Vec<String>,
    pub secret_sealed: Secret<Vec<u8>>,
    pub previous_secret_sealed: Option<Secret<Vec<u8>>>,
    pub previous_secret_expires_at: Option<Millis>,
    pub consecutive_failures: i64,
    pub disabled_at: Option<Millis>,
    pub disabled_reason: Option<String>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub endpoint_id: WebhookId,
    pub event_id: EventId,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i64,
    /// Attempts since the retry budget started (creation or the last manual retry).
    pub window_attempts: i64,
    pub window_start: Millis,
    pub next_attempt_at: Millis,
    pub created_at: Millis,
    pub delivered_at: Option<Millis>,
}

/// One attempt as recorded: never the receiver's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub n: i64,
    pub at: Millis,
    pub status_code: Option<i64>,
    pub error_class: Option<String>,
    pub duration_ms: i64,
}

/// A due delivery claimed by this worker (leased), with what it needs to send.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: DeliveryRow,
    pub payload: String,
    pub endpoint: WebhookEndpointRow,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry {
        next_attempt_at: Millis,
    },
    /// The retry budget is spent: the delivery failed.
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub tenant_id: TenantId,
    pub delivery_id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub attempt: AttemptRow,
    pub outcome: AttemptOutcome,
}

/// An enrollment whose scheduled status check is due, claimed (leased) by this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCheck {
    pub tenant_id: TenantId,
    pub enrollment_id: EnrollmentId,
    pub next_status_check_at: Millis,
}

/// Cut-off times (rows older are purged) of one tenant's retention run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Rejected enrollments (their decision records) created before this.
    pub rejected_before: Option<Millis>,
    /// Verification records created before this.
    pub verifications_before: Option<Millis>,
    /// Sessions expired before this that no enrollment or verification refers to.
    pub sessions_expired_before: Millis,
    /// Idempotency rows expired before this.
    pub idempotency_expired_before: Millis,
    /// Webhook events (and their deliveries) created before this, once no delivery is pending.
    pub webhook_events_before: Millis,
}

/// Rows one retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeCounts {
    pub rejected_enrollments: u64,
    pub verifications: u64,
    pub sessions: u64,
    pub idempotency_keys: u64,
    pub webhook_events: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.rejected_enrollments
            + self.verifications
            + self.sessions
            + self.idempotency_keys
            + self.webhook_events
    }
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> &'static str;
    async fn migrate(&self) -> StoreResult<()>;
    /// The database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;
    /// Every migration this binary knows is applied.
    async fn migrations_current(&self) -> StoreResult<bool>;

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

    async fn create_session(
        &self,
        session: &NewSession,
        audit: &AuditEvent,
        answer: Option<&Completion>,
    ) -> StoreResult<()>;
    async fn session_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<(Session, [u8; 32])>>;
    async fn get_session(
        &self,
        tenant_id: &TenantId,
        id: &SessionId,
    ) -> StoreResult<Option<Session>>;

    /// One transaction: consume the session (fails with `SessionConsumed` if it was), insert the
    /// enrollment and its templates, append the audit event, store the idempotent answer if any.
    async fn create_enrollment(
        &self,
        enrollment: &NewEnrollment,
        audit: &AuditEvent,
        answer: Option<&Completion>,
        events: &[OutboxEvent],
    ) -> StoreResult<()>;
    async fn get_enrollment(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Option<EnrollmentRow>>;
    async fn list_enrollments(
        &self,
        tenant_id: &TenantId,
        subject_ref: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentRow>>;
    async fn templates(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
    ) -> StoreResult<Vec<StoredTemplate>>;
    /// Compare-and-set: applies `change` only if the enrollment is still in `change.from` (and not
    /// deleted), with the audit event and the outbox events in the same transaction. `false`: nothing
    /// was written (deleted, or a concurrent check changed the status first: read it again).
    async fn update_enrollment_status(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        change: &StatusChange<'_>,
        audit: &AuditEvent,
        now: Millis,
        events: &[OutboxEvent],
    ) -> StoreResult<bool>;
    /// Crypto-shreds: drops the wrapped data key, the sealed records and the templates; keeps a
    /// tombstone row and appends the audit event. Returns false if there was nothing to delete.
    async fn delete_enrollment(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        audit: &AuditEvent,
        now: Millis,
        events: &[OutboxEvent],
    ) -> StoreResult<bool>;
    /// One transaction: compare-and-set of the enrollment's lockout counters from `w.seen` to
    /// `w.next` (the row is locked by the update until commit), then consume the session if any,
    /// insert the verification, append the audit events, store the idempotent answer and the outbox
    /// events. `false`: nothing was written (the counters changed since they were read, or the
    /// enrollment was deleted): read them again and recompute.
    async fn record_verification(&self, w: &VerificationWrite<'_>) -> StoreResult<bool>;

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

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    async fn audit_rows(&self, tenant_id: &TenantId) -> StoreResult<Vec<AuditRow>>;

    // Webhook endpoints (a tenant's own; every read is scoped by tenant).
    async fn create_webhook(&self, w: &NewWebhookEndpoint, audit: &AuditEvent) -> StoreResult<()>;
    async fn list_webhooks(&self, tenant_id: &TenantId) -> StoreResult<Vec<WebhookEndpointRow>>;
    async fn get_webhook(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
    ) -> StoreResult<Option<WebhookEndpointRow>>;
    /// Soft-deletes (deliveries stay visible to the audit); false if there was none.
    async fn delete_webhook(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Replaces the secret; the old one is kept (and signed with) until `previous_expires_at`.
    async fn rotate_webhook_secret(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
        secret_sealed: &[u8],
        previous_expires_at: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The endpoint's deliveries, newest first, each with its attempts (oldest first).
    async fn list_deliveries(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &WebhookId,
        limit: i64,
    ) -> StoreResult<Vec<(DeliveryRow, Vec<AttemptRow>)>>;
    /// A manual retry: the delivery is due now with a fresh retry budget, and its endpoint enabled
    /// again. `None` if there is none.
    async fn retry_delivery(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &WebhookId,
        delivery_id: &DeliveryId,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<Option<(DeliveryRow, Vec<AttemptRow>)>>;
    /// Claims up to `limit` due deliveries of enabled endpoints for `lease_ms` (SKIP LOCKED on
    /// PostgreSQL, so replicas never claim the same row).
    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt and its outcome, and counts the endpoint's failed deliveries in a row (a
    /// delivered one resets the count, a failed one adds one). Returns that count.
    async fn record_attempt(&self, r: &AttemptRecord) -> StoreResult<i64>;
    /// Disables an enabled endpoint, with its audit event, in one transaction, if its count of failed
    /// deliveries in a row is still `seen_failures` (a delivery or a manual retry since resets it).
    /// Returns whether it was disabled now.
    async fn disable_webhook(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
        seen_failures: i64,
        reason: &str,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool>;

    // Scheduled status checks.
    /// Verified (or status-unknown) enrollments that have no check scheduled yet.
    async fn unscheduled_status_checks(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<(TenantId, EnrollmentId)>>;
    /// Sets the first check time of an enrollment that has none (a concurrent replica may have).
    async fn schedule_status_check(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
        at: Millis,
    ) -> StoreResult<()>;
    /// Claims up to `limit` due checks for `lease_ms` (SKIP LOCKED on PostgreSQL).
    async fn claim_status_checks(
        &self,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedCheck>>;
    /// Ends a claimed check: the lease is dropped and the next check set.
    async fn finish_status_check(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
        next_at: Millis,
    ) -> StoreResult<()>;
    /// Checks due now and checks due before `overdue_before`.
    async fn status_check_backlog(
        &self,
        now: Millis,
        overdue_before: Millis,
    ) -> StoreResult<(i64, i64)>;

    // Retention.
    /// Live enrollments whose last verification (or creation) is older than `before`.
    async fn inactive_enrollments(
        &self,
        tenant_id: &TenantId,
        before: Millis,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentId>>;
    /// One transaction: purges what the cut-offs name and, if anything went, appends
    /// `retention.purged` with the counts to the audit chain.
    async fn purge(
        &self,
        tenant_id: &TenantId,
        cutoffs: &RetentionCutoffs,
        now: Millis,
    ) -> StoreResult<PurgeCounts>;
}

/// How an API key to revoke is named.
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    Id(&'a str),
    Hash(&'a [u8; 32]),
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
    let url = url.expose();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(url, max_connections, acquire_timeout).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            PgStore::connect(url, max_connections, acquire_timeout).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
