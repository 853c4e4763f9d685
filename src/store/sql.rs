//! The two SQL implementations of [`Store`]. The schema and the SQL are the same on both backends
//! (`$n` parameters, Unix-millisecond times, `RETURNING`-free statements), so the implementation is
//! written once, as a macro instantiated per backend; only three things differ and are passed in:
//! how a write transaction begins, how the per-tenant audit chain is serialised, and the migrator.

use super::audit::{chain_hash, GENESIS};
use super::*;
use crate::crypto::WrappedKey;
use sqlx::Row;
use std::str::FromStr;
use std::time::Duration;

pub struct PgStore {
    pool: sqlx::PgPool,
}

pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl PgStore {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

impl SqliteStore {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> StoreResult<Self> {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

fn hash32(bytes: Vec<u8>) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

fn enrollment_status(s: &str) -> StoreResult<EnrollmentStatus> {
    EnrollmentStatus::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown enrollment status {s:?}")))
}

fn template_source(s: &str) -> StoreResult<TemplateSource> {
    TemplateSource::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown template source {s:?}")))
}

fn purpose(s: &str) -> StoreResult<Purpose> {
    Purpose::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown purpose {s:?}")))
}

fn tenant_from<R: Row>(r: &R) -> StoreResult<Tenant>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let settings: String = r.try_get("settings")?;
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Corrupt(format!("tenant settings: {e}")))?,
        created_at: r.try_get("created_at")?,
    })
}

const SESSION_COLUMNS: &str = "id, tenant_id, purpose, subject_ref, enrollment_id, context, nonce, liveness, created_at, expires_at, consumed_at, client_token_hash";
const ENROLLMENT_COLUMNS: &str = "id, tenant_id, session_id, subject_ref, status, document, identity_sealed, revocation_sealed, kek_id, wrapped_dek, failed_count, failure_window_start, locked_until, created_at, updated_at";

const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, events, secret_sealed, previous_secret_sealed, previous_secret_expires_at, consecutive_failures, disabled_at, disabled_reason, created_at";
const DELIVERY_COLUMNS: &str = "d.id, d.tenant_id, d.endpoint_id, d.event_id, e.type, d.state, d.attempts, d.window_attempts, d.window_start, d.next_attempt_at, d.created_at, d.delivered_at";

fn events_of(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))
}

macro_rules! sql_store {
    ($store:ident, $db:ty, begin = $begin:expr, audit_lock = $audit_lock:expr, for_update = $for_update:expr, skip_locked = $skip_locked:expr, migrator = $migrator:expr, name = $name:expr) => {
        impl $store {
            async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, $db>> {
                Ok(self.pool.begin_with($begin).await?)
            }

            fn session_from(row: &<$db as sqlx::Database>::Row) -> StoreResult<(Session, [u8; 32])> {
                let session = Session {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    purpose: purpose(&row.try_get::<String, _>("purpose")?)?,
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

            fn enrollment_from(row: &<$db as sqlx::Database>::Row) -> StoreResult<EnrollmentRow> {
                let kek_id: Option<String> = row.try_get("kek_id")?;
                let wrapped: Option<Vec<u8>> = row.try_get("wrapped_dek")?;
                Ok(EnrollmentRow {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    session_id: row.try_get("session_id")?,
                    subject_ref: row.try_get("subject_ref")?,
                    status: enrollment_status(&row.try_get::<String, _>("status")?)?,
                    document: row.try_get("document")?,
                    identity_sealed: row.try_get::<Option<Vec<u8>>, _>("identity_sealed")?.map(Secret::new),
                    revocation_sealed: row.try_get::<Option<Vec<u8>>, _>("revocation_sealed")?.map(Secret::new),
                    wrapped_key: match (kek_id, wrapped) {
                        (Some(kek_id), Some(blob)) => Some(WrappedKey { kek_id, blob }),
                        _ => None,
                    },
                    failed_count: row.try_get("failed_count")?,
                    failure_window_start: row.try_get("failure_window_start")?,
                    locked_until: row.try_get("locked_until")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            /// Marks the session used; a session already used (by a concurrent request) fails the transaction.
            async fn consume_session_in(conn: &mut <$db as sqlx::Database>::Connection, tenant_id: &TenantId, session_id: &SessionId, now: Millis) -> StoreResult<()> {
                let consumed = sqlx::query("UPDATE sessions SET consumed_at = $1 WHERE id = $2 AND tenant_id = $3 AND consumed_at IS NULL")
                    .bind(now)
                    .bind(session_id)
                    .bind(tenant_id)
                    .execute(&mut *conn)
                    .await?;
                if consumed.rows_affected() != 1 {
                    return Err(StoreError::SessionConsumed);
                }
                Ok(())
            }

            /// Stores the idempotent answer inside the caller's transaction. A reservation that was
            /// taken over after it expired is overwritten: the first request to commit answers.
            async fn complete_idempotency_in(conn: &mut <$db as sqlx::Database>::Connection, c: &Completion, now: Millis) -> StoreResult<()> {
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

            /// The outbox: the event, and one pending delivery per enabled endpoint of the tenant that
            /// subscribed to its type, inside the caller's transaction. No subscriber: nothing is written.
            async fn outbox_in(conn: &mut <$db as sqlx::Database>::Connection, events: &[OutboxEvent]) -> StoreResult<()> {
                for ev in events {
                    let rows = sqlx::query("SELECT id, events FROM webhook_endpoints WHERE tenant_id = $1 AND disabled_at IS NULL AND deleted_at IS NULL ORDER BY id")
                        .bind(&ev.tenant_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let mut targets: Vec<WebhookId> = Vec::new();
                    for r in &rows {
                        let subscribed: Vec<String> = events_of(&r.try_get::<String, _>("events")?)?;
                        if subscribed.iter().any(|t| *t == ev.event_type) {
                            targets.push(r.try_get("id")?);
                        }
                    }
                    if targets.is_empty() {
                        continue;
                    }
                    sqlx::query("INSERT INTO webhook_events (id, tenant_id, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&ev.id)
                        .bind(&ev.tenant_id)
                        .bind(&ev.event_type)
                        .bind(&ev.payload)
                        .bind(ev.created_at)
                        .execute(&mut *conn)
                        .await?;
                    for endpoint in targets {
                        sqlx::query("INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, state, attempts, window_attempts, window_start, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, 0, $5, $5, $5)")
                            .bind(crate::domain::DeliveryId::new())
                            .bind(&ev.tenant_id)
                            .bind(endpoint)
                            .bind(&ev.id)
                            .bind(ev.created_at)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            }

            fn webhook_from(r: &<$db as sqlx::Database>::Row) -> StoreResult<WebhookEndpointRow> {
                Ok(WebhookEndpointRow {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    url: r.try_get("url")?,
                    events: events_of(&r.try_get::<String, _>("events")?)?,
                    secret_sealed: Secret::new(r.try_get("secret_sealed")?),
                    previous_secret_sealed: r.try_get::<Option<Vec<u8>>, _>("previous_secret_sealed")?.map(Secret::new),
                    previous_secret_expires_at: r.try_get("previous_secret_expires_at")?,
                    consecutive_failures: r.try_get("consecutive_failures")?,
                    disabled_at: r.try_get("disabled_at")?,
                    disabled_reason: r.try_get("disabled_reason")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            async fn attempts_in(conn: &mut <$db as sqlx::Database>::Connection, delivery_id: &DeliveryId) -> StoreResult<Vec<AttemptRow>> {
                sqlx::query("SELECT n, at, status_code, error_class, duration_ms FROM webhook_attempts WHERE delivery_id = $1 ORDER BY n")
                    .bind(delivery_id)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|a| Ok(AttemptRow {
                        n: a.try_get("n")?,
                        at: a.try_get("at")?,
                        status_code: a.try_get("status_code")?,
                        error_class: a.try_get("error_class")?,
                        duration_ms: a.try_get("duration_ms")?,
                    }))
                    .collect()
            }

                        fn delivery_from(r: &<$db as sqlx::Database>::Row) -> StoreResult<DeliveryRow> {
                let state: String = r.try_get("state")?;
                Ok(DeliveryRow {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("type")?,
                    state: DeliveryState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
                    attempts: r.try_get("attempts")?,
                    window_attempts: r.try_get("window_attempts")?,
                    window_start: r.try_get("window_start")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    created_at: r.try_get("created_at")?,
                    delivered_at: r.try_get("delivered_at")?,
                })
            }

            async fn append_audit_in(conn: &mut <$db as sqlx::Database>::Connection, ev: &AuditEvent) -> StoreResult<()> {
                let lock: Option<&str> = $audit_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).bind(&ev.tenant_id).execute(&mut *conn).await?;
                }
                let last = sqlx::query("SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1")
                    .bind(&ev.tenant_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let (prev_seq, prev_hash): (i64, Vec<u8>) = match last {
                    Some(row) => (row.try_get("seq")?, row.try_get("hash")?),
                    None => (0, GENESIS.to_vec()),
                };
                let seq = prev_seq + 1;
                let details = ev.details.to_string();
                let hash = chain_hash(&prev_hash, ev.tenant_id.as_str(), seq, ev.at, &ev.event, &ev.subject, &details);
                sqlx::query("INSERT INTO audit_log (tenant_id, seq, at, event, subject, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(&ev.tenant_id)
                    .bind(seq)
                    .bind(ev.at)
                    .bind(&ev.event)
                    .bind(&ev.subject)
                    .bind(details)
                    .bind(prev_hash)
                    .bind(hash)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            #[tracing::instrument(skip_all)]
            async fn migrate(&self) -> StoreResult<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrations_current(&self) -> StoreResult<bool> {
                let applied: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<i64, _>("version"))
                    .collect::<Result<_, _>>()?;
                Ok($migrator.iter().all(|m| applied.contains(&m.version)))
            }

            #[tracing::instrument(skip_all)]
            async fn create_tenant(&self, t: &Tenant) -> StoreResult<()> {
                let settings = serde_json::to_string(&t.settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
                let rows = sqlx::query("SELECT id, name, settings, created_at FROM tenants ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(tenant_from).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn add_api_key(&self, key_id: &str, tenant_id: &TenantId, key_hash: &[u8; 32], now: Millis) -> StoreResult<()> {
                sqlx::query("INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)")
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
                    KeyRef::Id(id) => sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL").bind(now).bind(id.to_string()),
                    KeyRef::Hash(h) => sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_hash = $2 AND revoked_at IS NULL").bind(now).bind(h.to_vec()),
                };
                Ok(query.execute(&self.pool).await?.rows_affected() > 0)
            }

            #[tracing::instrument(skip_all)]
            async fn api_key_by_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<(String, TenantId, [u8; 32])>> {
                let row = sqlx::query("SELECT id, tenant_id, key_hash FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                    .bind(key_hash.as_slice())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Ok((r.try_get("id")?, r.try_get("tenant_id")?, hash32(r.try_get("key_hash")?)?))).transpose()
            }

            #[tracing::instrument(skip_all)]
            async fn create_session(&self, s: &NewSession, audit: &AuditEvent, answer: Option<&Completion>) -> StoreResult<()> {
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
                    Self::complete_idempotency_in(&mut tx, answer, s.created_at).await?;
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn session_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<(Session, [u8; 32])>> {
                let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE client_token_hash = $1");
                let row = sqlx::query(&sql).bind(token_hash.as_slice()).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::session_from).transpose()
            }

            #[tracing::instrument(skip_all)]
            async fn get_session(&self, tenant_id: &TenantId, id: &SessionId) -> StoreResult<Option<Session>> {
                let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE tenant_id = $1 AND id = $2");
                let row = sqlx::query(&sql).bind(tenant_id).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.as_ref().map(Self::session_from).transpose()?.map(|(s, _)| s))
            }

            #[tracing::instrument(skip_all)]
            async fn create_enrollment(&self, e: &NewEnrollment, audit: &AuditEvent, answer: Option<&Completion>, events: &[OutboxEvent]) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                Self::consume_session_in(&mut tx, &e.tenant_id, &e.session_id, e.created_at).await?;
                let (kek_id, wrapped) = match &e.wrapped_key {
                    Some(w) => (Some(w.kek_id.clone()), Some(w.blob.clone())),
                    None => (None, None),
                };
                sqlx::query("INSERT INTO enrollments (id, tenant_id, session_id, subject_ref, status, document, identity_sealed, revocation_sealed, kek_id, wrapped_dek, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)")
                    .bind(&e.id)
                    .bind(&e.tenant_id)
                    .bind(&e.session_id)
                    .bind(&e.subject_ref)
                    .bind(e.status.as_str())
                    .bind(&e.document)
                    .bind(&e.identity_sealed)
                    .bind(&e.revocation_sealed)
                    .bind(kek_id)
                    .bind(wrapped)
                    .bind(e.created_at)
                    .execute(&mut *tx)
                    .await?;
                for t in &e.templates {
                    sqlx::query("INSERT INTO face_templates (id, tenant_id, enrollment_id, source, model_id, model_hash, preprocessing_version, sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                        .bind(&t.id)
                        .bind(&e.tenant_id)
                        .bind(&e.id)
                        .bind(t.source.as_str())
                        .bind(&t.model_id)
                        .bind(&t.model_hash)
                        .bind(&t.preprocessing_version)
                        .bind(t.sealed.expose().as_slice())
                        .bind(e.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(answer) = answer {
                    Self::complete_idempotency_in(&mut tx, answer, e.created_at).await?;
                }
                Self::outbox_in(&mut tx, events).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn get_enrollment(&self, tenant_id: &TenantId, id: &EnrollmentId) -> StoreResult<Option<EnrollmentRow>> {
                let sql = format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL");
                let row = sqlx::query(&sql).bind(tenant_id).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::enrollment_from).transpose()
            }

            #[tracing::instrument(skip_all)]
            async fn list_enrollments(&self, tenant_id: &TenantId, subject_ref: Option<&str>, limit: i64) -> StoreResult<Vec<EnrollmentRow>> {
                let sql = format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE tenant_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR subject_ref = $2) ORDER BY created_at DESC, id LIMIT $3");
                let rows = sqlx::query(&sql).bind(tenant_id).bind(subject_ref).bind(limit).fetch_all(&self.pool).await?;
                rows.iter().map(Self::enrollment_from).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn templates(&self, tenant_id: &TenantId, enrollment_id: &EnrollmentId) -> StoreResult<Vec<StoredTemplate>> {
                let rows = sqlx::query("SELECT id, source, model_id, model_hash, preprocessing_version, sealed FROM face_templates WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY source, id")
                    .bind(tenant_id)
                    .bind(enrollment_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(StoredTemplate {
                            id: r.try_get("id")?,
                            source: template_source(&r.try_get::<String, _>("source")?)?,
                            model_id: r.try_get("model_id")?,
                            model_hash: r.try_get("model_hash")?,
                            preprocessing_version: r.try_get("preprocessing_version")?,
                            sealed: Secret::new(r.try_get("sealed")?),
                        })
                    })
                    .collect()
            }

            #[tracing::instrument(skip_all)]
            async fn update_enrollment_status(&self, tenant_id: &TenantId, id: &EnrollmentId, change: &StatusChange<'_>, audit: &AuditEvent, now: Millis, events: &[OutboxEvent]) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE enrollments SET status = $1, document = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND deleted_at IS NULL AND status = $6")
                    .bind(change.to.as_str())
                    .bind(change.document)
                    .bind(now)
                    .bind(tenant_id)
                    .bind(id)
                    .bind(change.from.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                Self::outbox_in(&mut tx, events).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn delete_enrollment(&self, tenant_id: &TenantId, id: &EnrollmentId, audit: &AuditEvent, now: Millis, events: &[OutboxEvent]) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE enrollments SET status = 'deleted', document = '{}', subject_ref = NULL, identity_sealed = NULL, revocation_sealed = NULL, kek_id = NULL, wrapped_dek = NULL, deleted_at = $1, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL")
                    .bind(now)
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                for statement in [
                    "DELETE FROM face_templates WHERE tenant_id = $1 AND enrollment_id = $2",
                    "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND (resource_id = $2 OR sealed_under = $2)",
                    // What the RP said about the person when opening the sessions goes with the enrollment.
                    "UPDATE sessions SET subject_ref = NULL, context = NULL WHERE tenant_id = $1 AND (enrollment_id = $2 OR id IN (SELECT session_id FROM enrollments WHERE tenant_id = $1 AND id = $2))",
                ] {
                    sqlx::query(statement).bind(tenant_id).bind(id).execute(&mut *tx).await?;
                }
                Self::outbox_in(&mut tx, events).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn record_verification(&self, w: &VerificationWrite<'_>) -> StoreResult<bool> {
                let v = w.verification;
                let now = v.created_at;
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE enrollments SET failed_count = $1, failure_window_start = $2, locked_until = $3, updated_at = $4 WHERE tenant_id = $5 AND id = $6 AND deleted_at IS NULL AND failed_count = $7 AND failure_window_start IS NOT DISTINCT FROM $8 AND locked_until IS NOT DISTINCT FROM $9")
                    .bind(w.next.failed_count)
                    .bind(w.next.failure_window_start)
                    .bind(w.next.locked_until)
                    .bind(now)
                    .bind(&v.tenant_id)
                    .bind(&v.enrollment_id)
                    .bind(w.seen.failed_count)
                    .bind(w.seen.failure_window_start)
                    .bind(w.seen.locked_until)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                if let Some(session_id) = &v.session_id {
                    Self::consume_session_in(&mut tx, &v.tenant_id, session_id, now).await?;
                }
                sqlx::query("INSERT INTO verifications (id, tenant_id, enrollment_id, session_id, decision, document, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&v.id)
                    .bind(&v.tenant_id)
                    .bind(&v.enrollment_id)
                    .bind(&v.session_id)
                    .bind(v.decision.as_str())
                    .bind(&v.document)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(answer) = w.answer {
                    Self::complete_idempotency_in(&mut tx, answer, now).await?;
                }
                for audit in w.audit {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                Self::outbox_in(&mut tx, w.events).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn reserve_idempotency_key(&self, k: &IdempotencyScope, request_hash: &[u8; 32], now: Millis, reserve_ms: Millis, ttl_ms: Millis) -> StoreResult<Reservation> {
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
                let sql = format!("SELECT request_hash, state, reserved_until, status, body, sealed_under, resource_id FROM idempotency_keys WHERE tenant_id = $1 AND scope = $2 AND key = $3{}", $for_update);
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
                        return Err(StoreError::Corrupt("completed idempotency key without answer".into()));
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
                    return Ok(Reservation::InProgress { retry_after_ms: reserved_until - now });
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

            #[tracing::instrument(skip_all)]
            async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                Self::append_audit_in(&mut tx, event).await?;
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

            #[tracing::instrument(skip_all)]
            async fn create_webhook(&self, w: &NewWebhookEndpoint, audit: &AuditEvent) -> StoreResult<()> {
                let events = serde_json::to_string(&w.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let mut tx = self.begin().await?;
                sqlx::query("INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&w.id)
                    .bind(&w.tenant_id)
                    .bind(&w.url)
                    .bind(events)
                    .bind(w.secret_sealed.as_slice())
                    .bind(w.created_at)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn list_webhooks(&self, tenant_id: &TenantId) -> StoreResult<Vec<WebhookEndpointRow>> {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id");
                let rows = sqlx::query(&sql).bind(tenant_id).fetch_all(&self.pool).await?;
                rows.iter().map(Self::webhook_from).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn get_webhook(&self, tenant_id: &TenantId, id: &WebhookId) -> StoreResult<Option<WebhookEndpointRow>> {
                let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL");
                let row = sqlx::query(&sql).bind(tenant_id).bind(id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::webhook_from).transpose()
            }

            #[tracing::instrument(skip_all)]
            async fn delete_webhook(&self, tenant_id: &TenantId, id: &WebhookId, audit: &AuditEvent, now: Millis) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE webhook_endpoints SET deleted_at = $1, secret_sealed = $2, previous_secret_sealed = NULL WHERE tenant_id = $3 AND id = $4 AND deleted_at IS NULL")
                    .bind(now)
                    .bind(Vec::<u8>::new())
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                // What was still to be sent to it is not sent any more.
                sqlx::query("UPDATE webhook_deliveries SET state = 'failed', lease_until = NULL WHERE tenant_id = $1 AND endpoint_id = $2 AND state = 'pending'")
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn rotate_webhook_secret(&self, tenant_id: &TenantId, id: &WebhookId, secret_sealed: &[u8], previous_expires_at: Millis, audit: &AuditEvent) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, previous_secret_expires_at = $1, secret_sealed = $2 WHERE tenant_id = $3 AND id = $4 AND deleted_at IS NULL")
                    .bind(previous_expires_at)
                    .bind(secret_sealed)
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn list_deliveries(&self, tenant_id: &TenantId, endpoint_id: &WebhookId, limit: i64) -> StoreResult<Vec<(DeliveryRow, Vec<AttemptRow>)>> {
                let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.tenant_id = $1 AND d.endpoint_id = $2 ORDER BY d.created_at DESC, d.id LIMIT $3");
                let rows = sqlx::query(&sql).bind(tenant_id).bind(endpoint_id).bind(limit).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                let mut conn = self.pool.acquire().await?;
                for r in &rows {
                    let d = Self::delivery_from(r)?;
                    let attempts = Self::attempts_in(&mut conn, &d.id).await?;
                    out.push((d, attempts));
                }
                Ok(out)
            }

            #[tracing::instrument(skip_all)]
            async fn retry_delivery(&self, tenant_id: &TenantId, endpoint_id: &WebhookId, delivery_id: &DeliveryId, audit: &AuditEvent, now: Millis) -> StoreResult<Option<(DeliveryRow, Vec<AttemptRow>)>> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, window_start = $1, window_attempts = 0, lease_until = NULL WHERE tenant_id = $2 AND endpoint_id = $3 AND id = $4 AND state <> 'pending' AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE tenant_id = $2 AND deleted_at IS NULL)")
                    .bind(now)
                    .bind(tenant_id)
                    .bind(endpoint_id)
                    .bind(delivery_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    // Retrying by hand says the receiver is back: its endpoint is enabled again.
                    sqlx::query("UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, consecutive_failures = 0 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL")
                        .bind(tenant_id)
                        .bind(endpoint_id)
                        .execute(&mut *tx)
                        .await?;
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.id = $3 AND d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE tenant_id = $1 AND deleted_at IS NULL)");
                let row = sqlx::query(&sql).bind(tenant_id).bind(endpoint_id).bind(delivery_id).fetch_optional(&mut *tx).await?;
                let row = match row.as_ref().map(Self::delivery_from).transpose()? {
                    Some(d) => {
                        let attempts = Self::attempts_in(&mut tx, &d.id).await?;
                        Some((d, attempts))
                    }
                    None => None,
                };
                tx.commit().await?;
                Ok(row)
            }

            #[tracing::instrument(skip_all)]
            async fn claim_deliveries(&self, now: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<ClaimedDelivery>> {
                // One attempt in flight per endpoint (across replicas): a slow or dead receiver holds
                // one slot, not the whole worker, and its deliveries go out roughly in order.
                const DUE: &str = "state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL AND deleted_at IS NULL) AND endpoint_id NOT IN (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending' AND lease_until > $1)";
                // A cheap look first: an idle poll takes no write lock.
                let peek = format!("SELECT id FROM webhook_deliveries WHERE {DUE} LIMIT 1");
                if sqlx::query(&peek).bind(now).fetch_optional(&self.pool).await?.is_none() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin().await?;
                let sql = format!("SELECT id, endpoint_id FROM webhook_deliveries WHERE {DUE} ORDER BY next_attempt_at, id LIMIT $2{}", $skip_locked);
                let mut endpoints = std::collections::HashSet::new();
                let mut ids: Vec<DeliveryId> = Vec::new();
                for r in sqlx::query(&sql).bind(now).bind(limit).fetch_all(&mut *tx).await? {
                    if endpoints.insert(r.try_get::<WebhookId, _>("endpoint_id")?) {
                        ids.push(r.try_get("id")?);
                    }
                }
                for id in &ids {
                    sqlx::query("UPDATE webhook_deliveries SET lease_until = $1 WHERE id = $2")
                        .bind(now + lease_ms)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                let mut claimed = Vec::with_capacity(ids.len());
                for id in ids {
                    let sql = format!("SELECT {DELIVERY_COLUMNS}, e.payload FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1");
                    let row = sqlx::query(&sql).bind(&id).fetch_one(&self.pool).await?;
                    let delivery = Self::delivery_from(&row)?;
                    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE id = $1");
                    let endpoint = sqlx::query(&sql).bind(&delivery.endpoint_id).fetch_one(&self.pool).await?;
                    claimed.push(ClaimedDelivery {
                        payload: row.try_get("payload")?,
                        endpoint: Self::webhook_from(&endpoint)?,
                        delivery,
                    });
                }
                Ok(claimed)
            }

            #[tracing::instrument(skip_all)]
            async fn record_attempt(&self, r: &AttemptRecord) -> StoreResult<i64> {
                let mut tx = self.begin().await?;
                let a = &r.attempt;
                sqlx::query("INSERT INTO webhook_attempts (delivery_id, n, at, status_code, error_class, duration_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, n) DO NOTHING")
                    .bind(&r.delivery_id)
                    .bind(a.n)
                    .bind(a.at)
                    .bind(a.status_code)
                    .bind(&a.error_class)
                    .bind(a.duration_ms)
                    .execute(&mut *tx)
                    .await?;
                let (state, next, delivered_at) = match r.outcome {
                    AttemptOutcome::Delivered => ("delivered", a.at, Some(a.at)),
                    AttemptOutcome::Retry { next_attempt_at } => ("pending", next_attempt_at, None),
                    AttemptOutcome::GiveUp => ("failed", a.at, None),
                };
                sqlx::query("UPDATE webhook_deliveries SET state = $1, attempts = $2, window_attempts = window_attempts + 1, next_attempt_at = $3, delivered_at = $4, lease_until = NULL WHERE id = $5")
                    .bind(state)
                    .bind(a.n)
                    .bind(next)
                    .bind(delivered_at)
                    .bind(&r.delivery_id)
                    .execute(&mut *tx)
                    .await?;
                match r.outcome {
                    AttemptOutcome::Delivered => {
                        sqlx::query("UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE tenant_id = $1 AND id = $2")
                            .bind(&r.tenant_id)
                            .bind(&r.endpoint_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    AttemptOutcome::Retry { .. } => {}
                    AttemptOutcome::GiveUp => {
                        sqlx::query("UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE tenant_id = $1 AND id = $2")
                            .bind(&r.tenant_id)
                            .bind(&r.endpoint_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let failures: i64 = sqlx::query("SELECT consecutive_failures FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
                    .bind(&r.tenant_id)
                    .bind(&r.endpoint_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get("consecutive_failures"))
                    .transpose()?
                    .unwrap_or(0);
                tx.commit().await?;
                Ok(failures)
            }

            #[tracing::instrument(skip_all)]
            async fn disable_webhook(&self, tenant_id: &TenantId, id: &WebhookId, seen_failures: i64, reason: &str, audit: &AuditEvent, now: Millis) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let n = sqlx::query("UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2 WHERE tenant_id = $3 AND id = $4 AND disabled_at IS NULL AND consecutive_failures = $5")
                    .bind(now)
                    .bind(reason)
                    .bind(tenant_id)
                    .bind(id)
                    .bind(seen_failures)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all)]
            async fn unscheduled_status_checks(&self, limit: i64) -> StoreResult<Vec<(TenantId, EnrollmentId)>> {
                let rows = sqlx::query("SELECT tenant_id, id FROM enrollments WHERE status IN ('verified', 'status_unknown') AND deleted_at IS NULL AND next_status_check_at IS NULL ORDER BY created_at, id LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("tenant_id")?, r.try_get("id")?))).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn schedule_status_check(&self, tenant_id: &TenantId, enrollment_id: &EnrollmentId, at: Millis) -> StoreResult<()> {
                sqlx::query("UPDATE enrollments SET next_status_check_at = $1 WHERE tenant_id = $2 AND id = $3 AND next_status_check_at IS NULL")
                    .bind(at)
                    .bind(tenant_id)
                    .bind(enrollment_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn claim_status_checks(&self, now: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<ClaimedCheck>> {
                const DUE: &str = "status IN ('verified', 'status_unknown') AND deleted_at IS NULL AND next_status_check_at <= $1 AND (status_check_lease_until IS NULL OR status_check_lease_until <= $1)";
                let peek = format!("SELECT id FROM enrollments WHERE {DUE} LIMIT 1");
                if sqlx::query(&peek).bind(now).fetch_optional(&self.pool).await?.is_none() {
                    return Ok(Vec::new());
                }
                let mut tx = self.begin().await?;
                let sql = format!("SELECT tenant_id, id, next_status_check_at FROM enrollments WHERE {DUE} ORDER BY next_status_check_at, id LIMIT $2{}", $skip_locked);
                let claimed: Vec<ClaimedCheck> = sqlx::query(&sql)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| Ok(ClaimedCheck {
                        tenant_id: r.try_get("tenant_id")?,
                        enrollment_id: r.try_get("id")?,
                        next_status_check_at: r.try_get("next_status_check_at")?,
                    }))
                    .collect::<StoreResult<_>>()?;
                for c in &claimed {
                    sqlx::query("UPDATE enrollments SET status_check_lease_until = $1 WHERE tenant_id = $2 AND id = $3")
                        .bind(now + lease_ms)
                        .bind(&c.tenant_id)
                        .bind(&c.enrollment_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(claimed)
            }

            #[tracing::instrument(skip_all)]
            async fn finish_status_check(&self, tenant_id: &TenantId, enrollment_id: &EnrollmentId, next_at: Millis) -> StoreResult<()> {
                sqlx::query("UPDATE enrollments SET next_status_check_at = $1, status_check_lease_until = NULL WHERE tenant_id = $2 AND id = $3")
                    .bind(next_at)
                    .bind(tenant_id)
                    .bind(enrollment_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(skip_all)]
            async fn status_check_backlog(&self, now: Millis, overdue_before: Millis) -> StoreResult<(i64, i64)> {
                let row = sqlx::query("SELECT COALESCE(SUM(CASE WHEN next_status_check_at <= $1 THEN 1 ELSE 0 END), 0) AS due, COALESCE(SUM(CASE WHEN next_status_check_at <= $2 THEN 1 ELSE 0 END), 0) AS overdue FROM enrollments WHERE status IN ('verified', 'status_unknown') AND deleted_at IS NULL")
                    .bind(now)
                    .bind(overdue_before)
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_get("due")?, row.try_get("overdue")?))
            }

            #[tracing::instrument(skip_all)]
            async fn inactive_enrollments(&self, tenant_id: &TenantId, before: Millis, limit: i64) -> StoreResult<Vec<EnrollmentId>> {
                let rows = sqlx::query("SELECT e.id FROM enrollments e WHERE e.tenant_id = $1 AND e.deleted_at IS NULL AND e.wrapped_dek IS NOT NULL AND e.created_at < $2 AND NOT EXISTS (SELECT 1 FROM verifications v WHERE v.tenant_id = $1 AND v.enrollment_id = e.id AND v.created_at >= $2) ORDER BY e.created_at, e.id LIMIT $3")
                    .bind(tenant_id)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
            }

            #[tracing::instrument(skip_all)]
            async fn purge(&self, tenant_id: &TenantId, c: &RetentionCutoffs, now: Millis) -> StoreResult<PurgeCounts> {
                let mut tx = self.begin().await?;
                let mut counts = PurgeCounts::default();
                if let Some(before) = c.verifications_before {
                    counts.verifications = sqlx::query("DELETE FROM verifications WHERE tenant_id = $1 AND created_at < $2")
                        .bind(tenant_id).bind(before).execute(&mut *tx).await?.rows_affected();
                }
                if let Some(before) = c.rejected_before {
                    // A rejected enrollment holds no personal data: its decision record is the row.
                    let doomed = "SELECT id FROM enrollments WHERE tenant_id = $1 AND status = 'rejected' AND created_at < $2 AND id NOT IN (SELECT enrollment_id FROM verifications WHERE tenant_id = $1)";
                    sqlx::query(&format!("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND resource_id IN ({doomed})"))
                        .bind(tenant_id).bind(before).execute(&mut *tx).await?;
                    counts.rejected_enrollments = sqlx::query(&format!("DELETE FROM enrollments WHERE tenant_id = $1 AND id IN ({doomed})"))
                        .bind(tenant_id).bind(before).execute(&mut *tx).await?.rows_affected();
                }
                counts.idempotency_keys = sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND expires_at < $2")
                    .bind(tenant_id).bind(c.idempotency_expired_before).execute(&mut *tx).await?.rows_affected();
                // A session stays while an enrollment, a verification or a live idempotent answer
                // (its replay names the session) refers to it.
                counts.sessions = sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND expires_at < $2 AND id NOT IN (SELECT session_id FROM enrollments WHERE tenant_id = $1) AND id NOT IN (SELECT session_id FROM verifications WHERE tenant_id = $1 AND session_id IS NOT NULL) AND id NOT IN (SELECT resource_id FROM idempotency_keys WHERE tenant_id = $1 AND resource_id IS NOT NULL)")
                    .bind(tenant_id).bind(c.sessions_expired_before).execute(&mut *tx).await?.rows_affected();
                let old_events = "SELECT id FROM webhook_events WHERE tenant_id = $1 AND created_at < $2 AND id NOT IN (SELECT event_id FROM webhook_deliveries WHERE tenant_id = $1 AND state = 'pending')";
                sqlx::query(&format!("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND event_id IN ({old_events})"))
                    .bind(tenant_id).bind(c.webhook_events_before).execute(&mut *tx).await?;
                counts.webhook_events = sqlx::query(&format!("DELETE FROM webhook_events WHERE tenant_id = $1 AND id IN ({old_events})"))
                    .bind(tenant_id).bind(c.webhook_events_before).execute(&mut *tx).await?.rows_affected();
                if counts.total() > 0 {
                    let audit = AuditEvent {
                        tenant_id: tenant_id.clone(),
                        event: "retention.purged".into(),
                        subject: tenant_id.to_string(),
                        details: serde_json::json!({"counts": counts}),
                        at: now,
                    };
                    Self::append_audit_in(&mut tx, &audit).await?;
                }
                tx.commit().await?;
                Ok(counts)
            }
        }
    };
}

// Postgres: plain BEGIN (READ COMMITTED); claims of due work skip rows another replica has locked.
// Postgres: plain BEGIN (READ COMMITTED); a transaction-scoped advisory lock per tenant serialises
// audit appends so two replicas never fork the chain.
sql_store!(
    PgStore,
    sqlx::Postgres,
    begin = "BEGIN",
    audit_lock = Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
    for_update = " FOR UPDATE",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    migrator = PG_MIGRATOR,
    name = "postgres"
);
// SQLite: BEGIN IMMEDIATE takes the single write lock up front, which serialises writers (and so
// the audit chain) and avoids the deadlock of two deferred transactions upgrading at once.
sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    begin = "BEGIN IMMEDIATE",
    audit_lock = None,
    for_update = "",
    skip_locked = "",
    migrator = SQLITE_MIGRATOR,
    name = "sqlite"
);
