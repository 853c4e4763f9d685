//! Webhooks: the tenant's endpoints, the outbox (events written in the transaction of the change that
//! caused them, with one delivery per subscribed endpoint), delivery claims and attempts. Whether an
//! endpoint is disabled after failed deliveries is decided by the delivery worker, not here.

use super::audit::{self, AuditEvent};
use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use crate::domain::{DeliveryId, EventId, Millis, TenantId, WebhookId};
use crate::redact::Secret;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

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

#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    // Endpoints (a tenant's own; every read is scoped by tenant).
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

    // Deliveries.
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
}

const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, events, secret_sealed, previous_secret_sealed, previous_secret_expires_at, consecutive_failures, disabled_at, disabled_reason, created_at";
const DELIVERY_COLUMNS: &str = "d.id, d.tenant_id, d.endpoint_id, d.event_id, e.type, d.state, d.attempts, d.window_attempts, d.window_start, d.next_attempt_at, d.created_at, d.delivered_at";

fn events_of(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))
}

fn webhook_from(r: &AnyRow) -> StoreResult<WebhookEndpointRow> {
    Ok(WebhookEndpointRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        url: r.try_get("url")?,
        events: events_of(&r.try_get::<String, _>("events")?)?,
        secret_sealed: Secret::new(r.try_get("secret_sealed")?),
        previous_secret_sealed: r
            .try_get::<Option<Vec<u8>>, _>("previous_secret_sealed")?
            .map(Secret::new),
        previous_secret_expires_at: r.try_get("previous_secret_expires_at")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        disabled_at: r.try_get("disabled_at")?,
        disabled_reason: r.try_get("disabled_reason")?,
        created_at: r.try_get("created_at")?,
    })
}

fn delivery_from(r: &AnyRow) -> StoreResult<DeliveryRow> {
    let state: String = r.try_get("state")?;
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("type")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
        attempts: r.try_get("attempts")?,
        window_attempts: r.try_get("window_attempts")?,
        window_start: r.try_get("window_start")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

async fn attempts_in(
    conn: &mut AnyConnection,
    delivery_id: &DeliveryId,
) -> StoreResult<Vec<AttemptRow>> {
    sqlx::query("SELECT n, at, status_code, error_class, duration_ms FROM webhook_attempts WHERE delivery_id = $1 ORDER BY n")
        .bind(delivery_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|a| {
            Ok(AttemptRow {
                n: a.try_get("n")?,
                at: a.try_get("at")?,
                status_code: a.try_get("status_code")?,
                error_class: a.try_get("error_class")?,
                duration_ms: a.try_get("duration_ms")?,
            })
        })
        .collect()
}

/// The outbox: the event, and one pending delivery per enabled endpoint of the tenant that
/// subscribed to its type, inside the caller's transaction. No subscriber: nothing is written.
pub(super) async fn outbox_in(conn: &mut AnyConnection, events: &[OutboxEvent]) -> StoreResult<()> {
    for ev in events {
        let rows = sqlx::query("SELECT id, events FROM webhook_endpoints WHERE tenant_id = $1 AND disabled_at IS NULL AND deleted_at IS NULL ORDER BY id")
            .bind(&ev.tenant_id)
            .fetch_all(&mut *conn)
            .await?;
        let mut targets: Vec<WebhookId> = Vec::new();
        for r in &rows {
            let subscribed = events_of(&r.try_get::<String, _>("events")?)?;
            if subscribed.contains(&ev.event_type) {
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
                .bind(DeliveryId::new())
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

#[async_trait::async_trait]
impl WebhookStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_webhook(&self, w: &NewWebhookEndpoint, audit: &AuditEvent) -> StoreResult<()> {
        let events =
            serde_json::to_string(&w.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn list_webhooks(&self, tenant_id: &TenantId) -> StoreResult<Vec<WebhookEndpointRow>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id");
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(webhook_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn get_webhook(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
    ) -> StoreResult<Option<WebhookEndpointRow>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(webhook_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_webhook(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool> {
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
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_webhook_secret(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
        secret_sealed: &[u8],
        previous_expires_at: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
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
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn disable_webhook(
        &self,
        tenant_id: &TenantId,
        id: &WebhookId,
        seen_failures: i64,
        reason: &str,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<bool> {
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
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn list_deliveries(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &WebhookId,
        limit: i64,
    ) -> StoreResult<Vec<(DeliveryRow, Vec<AttemptRow>)>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.tenant_id = $1 AND d.endpoint_id = $2 ORDER BY d.created_at DESC, d.id LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(endpoint_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut conn = self.pool.acquire().await?;
        for r in &rows {
            let d = delivery_from(r)?;
            let attempts = attempts_in(&mut conn, &d.id).await?;
            out.push((d, attempts));
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all)]
    async fn retry_delivery(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &WebhookId,
        delivery_id: &DeliveryId,
        audit: &AuditEvent,
        now: Millis,
    ) -> StoreResult<Option<(DeliveryRow, Vec<AttemptRow>)>> {
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
            audit::append_in(&mut tx, self.dialect, audit).await?;
        }
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.tenant_id = $1 AND d.endpoint_id = $2 AND d.id = $3 AND d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE tenant_id = $1 AND deleted_at IS NULL)");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(endpoint_id)
            .bind(delivery_id)
            .fetch_optional(&mut *tx)
            .await?;
        let row = match row.as_ref().map(delivery_from).transpose()? {
            Some(d) => {
                let attempts = attempts_in(&mut tx, &d.id).await?;
                Some((d, attempts))
            }
            None => None,
        };
        tx.commit().await?;
        Ok(row)
    }

    #[tracing::instrument(skip_all)]
    async fn claim_deliveries(
        &self,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        // One attempt in flight per endpoint (across replicas): a slow or dead receiver holds
        // one slot, not the whole worker, and its deliveries go out roughly in order.
        const DUE: &str = "state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL AND deleted_at IS NULL) AND endpoint_id NOT IN (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending' AND lease_until > $1)";
        // A cheap look first: an idle poll takes no write lock.
        let peek = format!("SELECT id FROM webhook_deliveries WHERE {DUE} LIMIT 1");
        if sqlx::query(&peek)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT id, endpoint_id FROM webhook_deliveries WHERE {DUE} ORDER BY next_attempt_at, id LIMIT $2{}",
            self.dialect.skip_locked()
        );
        let mut endpoints = std::collections::HashSet::new();
        let mut ids: Vec<DeliveryId> = Vec::new();
        for r in sqlx::query(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?
        {
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
            let delivery = delivery_from(&row)?;
            let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhook_endpoints WHERE id = $1");
            let endpoint = sqlx::query(&sql)
                .bind(&delivery.endpoint_id)
                .fetch_one(&self.pool)
                .await?;
            claimed.push(ClaimedDelivery {
                payload: row.try_get("payload")?,
                endpoint: webhook_from(&endpoint)?,
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
        let count = match r.outcome {
            AttemptOutcome::Delivered => Some("consecutive_failures = 0"),
            AttemptOutcome::Retry { .. } => None,
            AttemptOutcome::GiveUp => Some("consecutive_failures = consecutive_failures + 1"),
        };
        if let Some(set) = count {
            sqlx::query(&format!(
                "UPDATE webhook_endpoints SET {set} WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(&r.tenant_id)
            .bind(&r.endpoint_id)
            .execute(&mut *tx)
            .await?;
        }
        let failures = sqlx::query(
            "SELECT consecutive_failures FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
        )
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
}
