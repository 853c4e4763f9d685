//! Storage: one trait, two real implementations (PostgreSQL for production replicas, SQLite as the
//! embedded zero-setup default). Handlers depend on [`Store`] only.
//!
//! Every read is scoped by tenant: a row of another tenant is indistinguishable from a missing one.
//! Writes that belong together (an enrollment, its templates, its audit event, consuming the
//! session) happen in one transaction.

mod audit;
mod sql;

pub use audit::{chain_hash, verify_chain, AuditEvent, AuditRow, ChainVerdict};
pub use sql::{PgStore, SqliteStore};

use crate::crypto::WrappedKey;
use crate::domain::{Millis, Purpose};
use crate::redact::Secret;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The session was consumed by a concurrent request.
    #[error("session already consumed")]
    SessionConsumed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database url (want sqlite:// or postgres://)")]
    UnsupportedUrl,
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub settings: TenantSettings,
    pub created_at: Millis,
}

/// Per-tenant choices that override the configuration's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<crate::liveness::LivenessMode>,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub tenant_id: String,
    pub purpose: Purpose,
    pub subject_ref: Option<String>,
    pub enrollment_id: Option<String>,
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
    pub id: String,
    pub tenant_id: String,
    pub purpose: Purpose,
    pub subject_ref: Option<String>,
    pub enrollment_id: Option<String>,
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
    pub source: String,
    pub model_id: String,
    pub model_hash: String,
    pub preprocessing_version: String,
    pub sealed: Secret<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct NewEnrollment {
    pub id: String,
    pub tenant_id: String,
    pub session_id: String,
    pub subject_ref: Option<String>,
    pub status: String,
    /// The public decision document (checks, reasons): no personal data.
    pub document: String,
    pub identity_sealed: Option<Vec<u8>>,
    pub revocation_sealed: Option<Vec<u8>>,
    pub wrapped_key: Option<WrappedKey>,
    pub templates: Vec<StoredTemplate>,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct EnrollmentRow {
    pub id: String,
    pub tenant_id: String,
    pub session_id: String,
    pub subject_ref: Option<String>,
    pub status: String,
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

#[derive(Debug, Clone)]
pub struct NewVerification {
    pub id: String,
    pub tenant_id: String,
    pub enrollment_id: String,
    pub session_id: Option<String>,
    pub decision: String,
    pub document: String,
    pub created_at: Millis,
}

/// The lockout counters of an enrollment after a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub failed_count: i64,
    pub failure_window_start: Option<Millis>,
    pub locked_until: Option<Millis>,
}

#[derive(Debug, Clone)]
pub struct IdempotentResponse {
    pub request_hash: [u8; 32],
    pub status: u16,
    /// The answer, sealed under the KEK (it may hold a client token or identity).
    pub body: Vec<u8>,
    /// The resource the answer created; deleting that resource deletes this answer.
    pub resource_id: Option<String>,
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
    async fn get_tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn add_api_key(
        &self,
        key_id: &str,
        tenant_id: &str,
        key_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<()>;
    /// Revokes by key id or key hash; returns whether a live key was revoked.
    async fn revoke_api_key(&self, key_id_or_hash: KeyRef<'_>, now: Millis) -> StoreResult<bool>;
    /// The tenant of a live API key with this hash.
    async fn tenant_for_api_key(
        &self,
        key_hash: &[u8; 32],
    ) -> StoreResult<Option<(String, [u8; 32])>>;

    async fn create_session(&self, session: &NewSession, audit: &AuditEvent) -> StoreResult<()>;
    async fn session_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<(Session, [u8; 32])>>;
    async fn get_session(&self, tenant_id: &str, id: &str) -> StoreResult<Option<Session>>;

    /// One transaction: consume the session (fails with `SessionConsumed` if it was), insert the
    /// enrollment and its templates, append the audit event.
    async fn create_enrollment(
        &self,
        enrollment: &NewEnrollment,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn get_enrollment(&self, tenant_id: &str, id: &str)
        -> StoreResult<Option<EnrollmentRow>>;
    async fn list_enrollments(
        &self,
        tenant_id: &str,
        subject_ref: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentRow>>;
    async fn templates(
        &self,
        tenant_id: &str,
        enrollment_id: &str,
    ) -> StoreResult<Vec<StoredTemplate>>;
    async fn update_enrollment_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: &str,
        document: &str,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Crypto-shreds: drops the wrapped data key, the sealed records and the templates; keeps a
    /// tombstone row and appends the audit event. Returns false if there was nothing to delete.
    async fn delete_enrollment(
        &self,
        tenant_id: &str,
        id: &str,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool>;
    /// One transaction: consume the session if any, insert the verification, set the lockout
    /// counters, append the audit event.
    async fn record_verification(
        &self,
        v: &NewVerification,
        lockout: Lockout,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    async fn count_rows(&self, table: CountedTable, tenant_id: &str) -> StoreResult<i64>;

    async fn idempotent_response(
        &self,
        tenant_id: &str,
        key: &str,
        now: Millis,
    ) -> StoreResult<Option<IdempotentResponse>>;
    /// Keeps the first answer for a key; a concurrent second writer is ignored.
    async fn save_idempotent_response(
        &self,
        tenant_id: &str,
        key: &str,
        response: &IdempotentResponse,
        now: Millis,
        ttl_ms: Millis,
    ) -> StoreResult<()>;

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    async fn audit_rows(&self, tenant_id: &str) -> StoreResult<Vec<AuditRow>>;
}

/// How an API key to revoke is named.
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    Id(&'a str),
    Hash(&'a [u8; 32]),
}

/// Tables whose rows tests and the privacy check count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountedTable {
    Sessions,
    Enrollments,
    Templates,
    Verifications,
    Audit,
}

impl CountedTable {
    fn name(self) -> &'static str {
        match self {
            CountedTable::Sessions => "sessions",
            CountedTable::Enrollments => "enrollments",
            CountedTable::Templates => "face_templates",
            CountedTable::Verifications => "verifications",
            CountedTable::Audit => "audit_log",
        }
    }
}

/// Verifies the audit chain of one tenant.
pub async fn verify_audit_chain(store: &dyn Store, tenant_id: &str) -> StoreResult<ChainVerdict> {
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
