//! What the back-office console shows and changes (issue 22), tenant-scoped like every use case:
//! the dashboard's figures, the enrollment list (filters, keyset pages with an opaque cursor), an
//! enrollment's page with its audit trail checked link by link, API keys made and revoked, the
//! tenant's settings. The pages themselves are in `http::console`; who may call what is decided there.

use crate::domain::{
    self, new_id, now_millis, prefix, AuditKind, EnrollmentId, EnrollmentStatus, IssuedCredential,
    Millis, OperatorId, TenantId, API_KEY_PREFIX,
};
use crate::redact::Secret;
use crate::store::{
    chain_hash, ApiKeyRow, AuditEvent, EnrollmentFilter, EnrollmentSummary, TenantSettings,
};
use crate::usecase::enrollment::record::StoredDecision;
use crate::usecase::{Services, UseCaseError, UseCaseResult};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Rows per page of the enrollment list.
pub const PAGE_SIZE: i64 = 50;
/// How many of the newest enrollments the score chart draws.
pub const SCORE_SAMPLE: i64 = 1000;
/// Pending deliveries are counted up to this (the dashboard says "at least").
pub const BACKLOG_CAP: i64 = 10_000;
const DAY_MS: Millis = 86_400_000;

/// The dashboard's figures.
pub struct Dashboard {
    /// Newest day first: `(day as YYYY-MM-DD, [(status, n)])`, every day of the window present.
    pub days: Vec<(String, Vec<(String, i64)>)>,
    /// Face scores of the newest enrollments that have one.
    pub scores: Vec<f64>,
    /// The enrollment threshold those scores were judged against (the newest one's).
    pub threshold: Option<f64>,
    pub pending_deliveries: i64,
}

pub async fn dashboard(
    svc: &Services,
    tenant_id: &TenantId,
    days: i64,
) -> UseCaseResult<Dashboard> {
    let today = now_millis().div_euclid(DAY_MS);
    let from_day = today - days + 1;
    let counts = svc.store.daily_counts(tenant_id, from_day).await?;
    let days = (from_day..=today)
        .rev()
        .map(|day| {
            let of_day = counts
                .iter()
                .filter(|(d, _, _)| *d == day)
                .map(|(_, status, n)| (status.clone(), *n))
                .collect();
            (day_label(day), of_day)
        })
        .collect();
    let recent = svc.store.recent_scores(tenant_id, SCORE_SAMPLE).await?;
    let threshold = recent.first().map(|(_, t)| *t);
    let scores = recent.into_iter().map(|(s, _)| s).collect();
    Ok(Dashboard {
        days,
        scores,
        threshold,
        pending_deliveries: svc.store.pending_deliveries(tenant_id, BACKLOG_CAP).await?,
    })
}

fn day_label(day: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(day * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Start of a `YYYY-MM-DD` day (UTC), in milliseconds.
pub fn parse_day(s: &str) -> Option<Millis> {
    let date = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// The list's filters as the console takes them (dates as `YYYY-MM-DD`, `to` inclusive).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<EnrollmentStatus>,
    pub reason: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// From the session, never from a URL.
    pub subject_ref: Option<Secret<String>>,
    pub after: Option<String>,
}

pub struct ListedEnrollment {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub subject_ref: Option<String>,
    pub reasons: Vec<String>,
    pub score: Option<f64>,
    pub created_at: Millis,
}

pub struct EnrollmentPage {
    pub rows: Vec<ListedEnrollment>,
    /// The cursor of the next page, when there may be one.
    pub next: Option<String>,
}

fn cursor_of(row: &EnrollmentSummary) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", row.created_at, row.id))
}

fn parse_cursor(s: &str) -> Option<(Millis, EnrollmentId)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, EnrollmentId::parse(id)?))
}

pub async fn list_enrollments(
    svc: &Services,
    tenant_id: &TenantId,
    q: &ListQuery,
) -> UseCaseResult<EnrollmentPage> {
    let day = |s: &Option<String>, what: &str| -> UseCaseResult<Option<Millis>> {
        match s.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_day(s)
                .map(Some)
                .ok_or_else(|| UseCaseError::Malformed(format!("{what}: a date YYYY-MM-DD"))),
        }
    };
    let reason = q.reason.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = reason {
        if crate::domain::Reason::parse(r).is_none() {
            return Err(UseCaseError::Malformed("reason: not a reason code".into()));
        }
    }
    let after = match q.after.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => Some(
            parse_cursor(c).ok_or_else(|| UseCaseError::Malformed("after: not a cursor".into()))?,
        ),
    };
    let filter = EnrollmentFilter {
        status: q.status,
        reason: reason.map(str::to_string),
        from: day(&q.from, "from")?,
        until: day(&q.to, "to")?.map(|t| t + DAY_MS),
        subject_ref: q.subject_ref.as_ref().map(|s| s.expose().clone()),
        after,
        limit: PAGE_SIZE,
    };
    let rows = svc.store.console_enrollments(tenant_id, &filter).await?;
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    Ok(EnrollmentPage {
        rows: rows
            .into_iter()
            .map(|r| {
                let decision = StoredDecision::from_json(&r.document).ok();
                ListedEnrollment {
                    reasons: decision
                        .as_ref()
                        .map(|d| reason_codes(&d.reasons))
                        .unwrap_or_default(),
                    score: decision.and_then(|d| d.checks.face_match.score),
                    id: r.id,
                    status: r.status,
                    subject_ref: r.subject_ref,
                    created_at: r.created_at,
                }
            })
            .collect(),
        next,
    })
}

fn reason_codes(reasons: &crate::domain::Reasons) -> Vec<String> {
    serde_json::to_value(reasons)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// One audit event of an enrollment, with whether its own link of the chain checks: its hash is
/// that of its content and it points at the hash its predecessor actually has.
pub struct TrailEntry {
    pub seq: i64,
    pub at: Millis,
    pub event: String,
    pub details: String,
    pub intact: bool,
}

pub struct EnrollmentDetail {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub subject_ref: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// `None` for a deleted enrollment (its record was shredded).
    pub decision: Option<StoredDecision>,
    pub reasons: Vec<String>,
    pub trail: Vec<TrailEntry>,
}

impl EnrollmentDetail {
    pub fn chain_intact(&self) -> bool {
        self.trail.iter().all(|t| t.intact)
    }
}

pub async fn enrollment(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> UseCaseResult<EnrollmentDetail> {
    let row = svc
        .store
        .get_enrollment(tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let decision = StoredDecision::from_json(&row.document).ok();
    let trail = svc
        .store
        .subject_audit(tenant_id, id.as_str())
        .await?
        .into_iter()
        .map(|linked| {
            let r = &linked.row;
            let recomputed = chain_hash(
                &r.prev_hash,
                r.tenant_id.as_str(),
                r.seq,
                r.at,
                &r.event,
                &r.subject,
                &r.details,
            );
            TrailEntry {
                intact: recomputed == r.hash
                    && linked.predecessor_hash.as_deref() == Some(r.prev_hash.as_slice()),
                seq: r.seq,
                at: r.at,
                event: r.event.clone(),
                details: r.details.clone(),
            }
        })
        .collect();
    Ok(EnrollmentDetail {
        reasons: decision
            .as_ref()
            .map(|d| reason_codes(&d.reasons))
            .unwrap_or_default(),
        decision,
        id: row.id,
        status: row.status,
        subject_ref: row.subject_ref,
        created_at: row.created_at,
        updated_at: row.updated_at,
        trail,
    })
}

pub async fn api_keys(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<Vec<ApiKeyRow>> {
    Ok(svc.store.list_api_keys(tenant_id).await?)
}

/// A new API key of the tenant: `(key id, key)`, the key shown once.
pub async fn create_api_key(
    svc: &Services,
    tenant_id: &TenantId,
    by: &OperatorId,
) -> UseCaseResult<(String, Secret<String>)> {
    let credential = IssuedCredential::new(API_KEY_PREFIX);
    let key_id = new_id(prefix::API_KEY);
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::ApiKeyCreated,
        &key_id,
        serde_json::json!({"operator_id": by}),
    );
    svc.store
        .add_api_key_audited(&key_id, tenant_id, &credential.hash, now_millis(), &audit)
        .await?;
    Ok((key_id, credential.token))
}

pub async fn revoke_api_key(
    svc: &Services,
    tenant_id: &TenantId,
    key_id: &str,
    by: &OperatorId,
) -> UseCaseResult<()> {
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::ApiKeyRevoked,
        key_id,
        serde_json::json!({"operator_id": by}),
    );
    if svc
        .store
        .revoke_tenant_api_key(tenant_id, key_id, now_millis(), &audit)
        .await?
    {
        Ok(())
    } else {
        Err(UseCaseError::NotFound)
    }
}

pub async fn settings(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<TenantSettings> {
    Ok(svc
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or(UseCaseError::NotFound)?
        .settings)
}

/// Parses the settings document an admin submitted: a JSON object of `TenantSettings` fields, each
/// valid, none unknown (a typo must not be silently dropped).
pub fn parse_settings(json: &str) -> UseCaseResult<TenantSettings> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| UseCaseError::Malformed(format!("settings: not JSON ({e})")))?;
    let object = value
        .as_object()
        .ok_or_else(|| UseCaseError::Malformed("settings: a JSON object".into()))?;
    let settings: TenantSettings = serde_json::from_value(value.clone())
        .map_err(|e| UseCaseError::Malformed(format!("settings: {e}")))?;
    let known = serde_json::to_value(&settings)
        .map_err(UseCaseError::internal)?
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(unknown) = object
        .iter()
        .find(|(k, v)| !v.is_null() && !known.contains_key(*k))
    {
        return Err(UseCaseError::Malformed(format!(
            "settings: unknown field {:?}",
            unknown.0
        )));
    }
    Ok(settings)
}

pub async fn update_settings(
    svc: &Services,
    tenant_id: &TenantId,
    json: &str,
    by: &OperatorId,
) -> UseCaseResult<()> {
    let settings = parse_settings(json)?;
    let changed: Vec<String> = serde_json::to_value(&settings)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::TenantSettingsChanged,
        tenant_id.as_str(),
        serde_json::json!({"operator_id": by, "fields": changed}),
    );
    if svc
        .store
        .set_tenant_settings(tenant_id, &settings, &audit)
        .await?
    {
        Ok(())
    } else {
        Err(UseCaseError::NotFound)
    }
}

/// An RFC 3339 time for the pages.
pub fn time(ms: Millis) -> String {
    domain::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let row = EnrollmentSummary {
            id: EnrollmentId::new(),
            status: EnrollmentStatus::Verified,
            subject_ref: None,
            document: String::new(),
            created_at: 1_700_000_000_123,
        };
        assert_eq!(
            parse_cursor(&cursor_of(&row)),
            Some((row.created_at, row.id.clone()))
        );
        assert_eq!(parse_cursor("not a cursor"), None);
        assert_eq!(parse_cursor(&URL_SAFE_NO_PAD.encode("12:enr_x")), None);
    }

    #[test]
    fn days_parse_as_utc_midnight() {
        assert_eq!(parse_day("1970-01-02"), Some(DAY_MS));
        assert_eq!(parse_day("2026-13-01"), None);
        assert_eq!(day_label(1), "1970-01-02");
    }

    #[test]
    fn settings_refuse_unknown_and_invalid_fields() {
        let s = parse_settings(r#"{"require_hojo": false, "status_check_interval_secs": 3600}"#)
            .unwrap();
        assert_eq!(s.require_hojo, Some(false));
        assert!(parse_settings(r#"{"require_hojoo": false}"#).is_err());
        assert!(parse_settings(r#"{"require_hojo": "maybe"}"#).is_err());
        assert!(parse_settings("[]").is_err());
        assert!(parse_settings("{").is_err());
        assert_eq!(parse_settings("{}").unwrap(), TenantSettings::default());
    }
}
