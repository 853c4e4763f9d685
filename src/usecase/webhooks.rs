//! Webhook endpoints of a tenant (`/v1/webhooks`), the events the flows emit, and the payload
//! format. Payloads carry ids, statuses and reason codes only, never personal data: no name,
//! address, birth date, certificate field or template, and not the RP's `subject_ref`.

use super::{Services, UseCaseError, UseCaseResult};
use crate::domain::{
    self, now_millis, DeliveryId, EnrollmentId, EnrollmentStatus, EventId, Millis, TenantId,
    WebhookId,
};
use crate::store::{
    AttemptRow, AuditEvent, DeliveryRow, DeliveryState, NewWebhookEndpoint, OutboxEvent,
    WebhookEndpointRow,
};
use crate::webhooks::{deliver::secret_context, sign, ssrf};
use serde::{Deserialize, Serialize};

/// The event types an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    /// An enrollment was decided `verified`.
    #[serde(rename = "enrollment.verified")]
    EnrollmentVerified,
    /// An enrollment was decided `rejected`.
    #[serde(rename = "enrollment.rejected")]
    EnrollmentRejected,
    /// A status check (scheduled or on demand) changed the enrollment's status.
    #[serde(rename = "enrollment.status_changed")]
    EnrollmentStatusChanged,
    /// The enrollment was deleted (by the RP or by retention).
    #[serde(rename = "enrollment.deleted")]
    EnrollmentDeleted,
    /// A failed verification locked the enrollment.
    #[serde(rename = "verification.locked")]
    VerificationLocked,
    /// An enrollment's selfie matched another active enrollment with another identity (issue 21).
    #[serde(rename = "enrollment.duplicate_face")]
    EnrollmentDuplicateFace,
    /// An enrollment's or a verification's selfie matched a watchlist entry (issue 21).
    #[serde(rename = "watchlist.hit")]
    WatchlistHit,
    /// An enrollment was decided `in_review`: it waits for a person (issue 22).
    #[serde(rename = "enrollment.in_review")]
    EnrollmentInReview,
    /// A reviewer decided an enrollment in review (`approve` → verified, `reject` → rejected).
    #[serde(rename = "enrollment.reviewed")]
    EnrollmentReviewed,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::EnrollmentVerified,
        EventType::EnrollmentRejected,
        EventType::EnrollmentStatusChanged,
        EventType::EnrollmentDeleted,
        EventType::VerificationLocked,
        EventType::EnrollmentDuplicateFace,
        EventType::WatchlistHit,
        EventType::EnrollmentInReview,
        EventType::EnrollmentReviewed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::EnrollmentVerified => "enrollment.verified",
            EventType::EnrollmentRejected => "enrollment.rejected",
            EventType::EnrollmentStatusChanged => "enrollment.status_changed",
            EventType::EnrollmentDeleted => "enrollment.deleted",
            EventType::VerificationLocked => "verification.locked",
            EventType::EnrollmentDuplicateFace => "enrollment.duplicate_face",
            EventType::WatchlistHit => "watchlist.hit",
            EventType::EnrollmentInReview => "enrollment.in_review",
            EventType::EnrollmentReviewed => "enrollment.reviewed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An outbox event with the documented payload `{"id","type","created_at","data"}`.
pub fn event(tenant_id: &TenantId, kind: EventType, data: serde_json::Value) -> OutboxEvent {
    event_at(tenant_id, kind, data, now_millis())
}

pub fn event_at(
    tenant_id: &TenantId,
    kind: EventType,
    data: serde_json::Value,
    at: Millis,
) -> OutboxEvent {
    let id = EventId::new();
    let payload = serde_json::json!({
        "id": id,
        "type": kind.as_str(),
        "created_at": domain::rfc3339(at),
        "data": data,
    });
    OutboxEvent {
        id,
        tenant_id: tenant_id.clone(),
        event_type: kind.as_str().to_string(),
        payload: payload.to_string(),
        created_at: at,
    }
}

/// `enrollment.status_changed`, when the status did change.
pub fn status_changed(
    tenant_id: &TenantId,
    enrollment_id: &EnrollmentId,
    previous: EnrollmentStatus,
    status: EnrollmentStatus,
    reason: Option<domain::Reason>,
    trigger: &str,
) -> Vec<OutboxEvent> {
    if previous == status {
        return Vec::new();
    }
    vec![event(
        tenant_id,
        EventType::EnrollmentStatusChanged,
        serde_json::json!({"enrollment_id": enrollment_id, "status": status,
                           "previous_status": previous, "reason": reason.map(|r| r.code().to_string()),
                           "trigger": trigger}),
    )]
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://host[:port][/path]` with a host name (in development also `http://` to 127.0.0.1,
    /// `[::1]` or `localhost`); production also refuses hosts that resolve to non-public addresses.
    /// The pattern is [`crate::webhooks::ssrf::URL_PATTERN`].
    #[schema(
        max_length = 2048,
        pattern = r"^(https://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9]*|http://(localhost|127\.0\.0\.1|\[::1\]))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[!-~]*)?$"
    )]
    pub url: String,
    /// At least one event type.
    #[schema(min_items = 1)]
    pub events: Vec<EventType>,
}

/// A webhook endpoint (the secret is shown only when created or rotated).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDocument {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<EventType>,
    /// False once disabled after failed deliveries in a row (`disabled_reason`).
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Until then the previous secret still signs too (a second signature).
    pub previous_secret_valid_until: Option<String>,
    pub created_at: String,
}

/// A signing secret in an answer: serialised (shown this once), never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShownSecret(pub String);

impl std::fmt::Debug for ShownSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `201` of `POST /v1/webhooks`: the endpoint and its signing secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    pub id: WebhookId,
    pub url: String,
    pub events: Vec<EventType>,
    pub enabled: bool,
    pub created_at: String,
    /// `whsec_<base64 of 32 bytes>`: the HMAC key is the decoded bytes.
    #[schema(value_type = String, pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: ShownSecret,
}

/// The answer of `POST /v1/webhooks/{id}/rotate-secret`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretRotated {
    pub id: WebhookId,
    #[schema(value_type = String, pattern = "^whsec_[A-Za-z0-9+/]{43}=$")]
    pub secret: ShownSecret,
    /// The previous secret signs too until then.
    pub previous_secret_valid_until: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookDocument>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

/// One attempt: what the receiver answered (status code) or why there was no answer; never its body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptDocument {
    pub n: i64,
    pub at: String,
    pub status_code: Option<i64>,
    /// `timeout`, `connect`, `http_status`, `redirect`, `refused_address`, `dns`, `request`.
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryDocument {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: Vec<AttemptDocument>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryDocument>,
}

fn render(row: &WebhookEndpointRow, now: Millis) -> UseCaseResult<WebhookDocument> {
    Ok(WebhookDocument {
        id: row.id.clone(),
        url: row.url.clone(),
        events: row
            .events
            .iter()
            .filter_map(|e| EventType::parse(e))
            .collect(),
        enabled: row.disabled_at.is_none(),
        disabled_reason: row.disabled_reason.clone(),
        previous_secret_valid_until: row
            .previous_secret_expires_at
            .filter(|&t| t > now)
            .map(domain::rfc3339),
        created_at: domain::rfc3339(row.created_at),
    })
}

fn render_delivery(d: &DeliveryRow, attempts: &[AttemptRow]) -> UseCaseResult<DeliveryDocument> {
    let corrupt = || UseCaseError::internal(anyhow::anyhow!("stored delivery"));
    Ok(DeliveryDocument {
        id: d.id.clone(),
        event_id: d.event_id.clone(),
        event_type: EventType::parse(&d.event_type).ok_or_else(corrupt)?,
        status: match d.state {
            DeliveryState::Pending => DeliveryStatus::Pending,
            DeliveryState::Delivered => DeliveryStatus::Delivered,
            DeliveryState::Failed => DeliveryStatus::Failed,
        },
        attempts: attempts
            .iter()
            .map(|a| AttemptDocument {
                n: a.n,
                at: domain::rfc3339(a.at),
                status_code: a.status_code,
                error: a.error_class.clone(),
                duration_ms: a.duration_ms,
            })
            .collect(),
        next_attempt_at: (d.state == DeliveryState::Pending)
            .then(|| domain::rfc3339(d.next_attempt_at)),
        delivered_at: d.delivered_at.map(domain::rfc3339),
        created_at: domain::rfc3339(d.created_at),
    })
}

pub async fn create(
    svc: &Services,
    tenant_id: &TenantId,
    req: CreateWebhook,
) -> UseCaseResult<WebhookCreated> {
    ssrf::check_url(&req.url, svc.settings.environment)
        .map_err(|e| UseCaseError::Malformed(format!("url: {e}")))?;
    if req.events.is_empty() {
        return Err(UseCaseError::Malformed(
            "events: at least one event type".into(),
        ));
    }
    let mut events: Vec<EventType> = Vec::new();
    for e in req.events {
        if !events.contains(&e) {
            events.push(e);
        }
    }
    let existing = svc.store.list_webhooks(tenant_id).await?;
    if existing.len() >= svc.settings.webhooks.max_endpoints_per_tenant {
        return Err(UseCaseError::LimitReached(format!(
            "at most {} webhook endpoints per tenant: delete one first",
            svc.settings.webhooks.max_endpoints_per_tenant
        )));
    }
    let id = WebhookId::new();
    let key = sign::new_key();
    let now = now_millis();
    let endpoint = NewWebhookEndpoint {
        id: id.clone(),
        tenant_id: tenant_id.clone(),
        url: req.url.clone(),
        events: events.iter().map(|e| e.as_str().to_string()).collect(),
        secret_sealed: svc
            .keys
            .seal_system(&secret_context(tenant_id, &id), key.as_slice()),
        created_at: now,
    };
    let audit = AuditEvent::new(
        tenant_id,
        crate::domain::AuditKind::WebhookCreated,
        id.as_str(),
        serde_json::json!({"events": endpoint.events}),
    );
    svc.store.create_webhook(&endpoint, &audit).await?;
    Ok(WebhookCreated {
        id,
        url: req.url,
        events,
        enabled: true,
        created_at: domain::rfc3339(now),
        secret: ShownSecret(sign::secret_text(key.as_slice())),
    })
}

pub async fn list(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<WebhookList> {
    let now = now_millis();
    Ok(WebhookList {
        webhooks: svc
            .store
            .list_webhooks(tenant_id)
            .await?
            .iter()
            .map(|w| render(w, now))
            .collect::<UseCaseResult<_>>()?,
    })
}

pub async fn get(
    svc: &Services,
    tenant_id: &TenantId,
    id: &WebhookId,
) -> UseCaseResult<WebhookDocument> {
    let row = svc
        .store
        .get_webhook(tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    render(&row, now_millis())
}

pub async fn delete(svc: &Services, tenant_id: &TenantId, id: &WebhookId) -> UseCaseResult<()> {
    let audit = AuditEvent::new(
        tenant_id,
        crate::domain::AuditKind::WebhookDeleted,
        id.as_str(),
        serde_json::json!({}),
    );
    if svc
        .store
        .delete_webhook(tenant_id, id, &audit, now_millis())
        .await?
    {
        Ok(())
    } else {
        Err(UseCaseError::NotFound)
    }
}

pub async fn rotate_secret(
    svc: &Services,
    tenant_id: &TenantId,
    id: &WebhookId,
) -> UseCaseResult<SecretRotated> {
    let key = sign::new_key();
    let until = now_millis() + (svc.settings.webhooks.secret_grace_secs as Millis) * 1000;
    let sealed = svc
        .keys
        .seal_system(&secret_context(tenant_id, id), key.as_slice());
    let audit = AuditEvent::new(
        tenant_id,
        crate::domain::AuditKind::WebhookSecretRotated,
        id.as_str(),
        serde_json::json!({"previous_valid_until": domain::rfc3339(until)}),
    );
    if !svc
        .store
        .rotate_webhook_secret(tenant_id, id, &sealed, until, &audit)
        .await?
    {
        return Err(UseCaseError::NotFound);
    }
    Ok(SecretRotated {
        id: id.clone(),
        secret: ShownSecret(sign::secret_text(key.as_slice())),
        previous_secret_valid_until: domain::rfc3339(until),
    })
}

pub async fn deliveries(
    svc: &Services,
    tenant_id: &TenantId,
    id: &WebhookId,
    limit: Option<i64>,
) -> UseCaseResult<DeliveryList> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(UseCaseError::Malformed(
            "limit must be between 1 and 200".into(),
        ));
    }
    if svc.store.get_webhook(tenant_id, id).await?.is_none() {
        return Err(UseCaseError::NotFound);
    }
    Ok(DeliveryList {
        deliveries: svc
            .store
            .list_deliveries(tenant_id, id, limit)
            .await?
            .iter()
            .map(|(d, a)| render_delivery(d, a))
            .collect::<UseCaseResult<_>>()?,
    })
}

/// A manual retry: due now, with a fresh retry budget. A pending delivery stays as it is.
pub async fn retry(
    svc: &Services,
    tenant_id: &TenantId,
    id: &WebhookId,
    delivery_id: &DeliveryId,
) -> UseCaseResult<DeliveryDocument> {
    retry_by(svc, tenant_id, id, delivery_id, None).await
}

/// As [`retry`]; from the console, the audit event names the operator who pressed the button.
pub async fn retry_by(
    svc: &Services,
    tenant_id: &TenantId,
    id: &WebhookId,
    delivery_id: &DeliveryId,
    operator: Option<&crate::domain::OperatorId>,
) -> UseCaseResult<DeliveryDocument> {
    let mut details = serde_json::json!({"webhook_id": id});
    if let Some(operator) = operator {
        details["operator_id"] = serde_json::json!(operator);
    }
    let audit = AuditEvent::new(
        tenant_id,
        crate::domain::AuditKind::WebhookDeliveryRetried,
        delivery_id.as_str(),
        details,
    );
    let (row, attempts) = svc
        .store
        .retry_delivery(tenant_id, id, delivery_id, &audit, now_millis())
        .await?
        .ok_or(UseCaseError::NotFound)?;
    render_delivery(&row, &attempts)
}
