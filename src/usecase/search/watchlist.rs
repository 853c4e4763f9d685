//! The tenant's watchlist (`/v1/watchlist`, API key only): faces of known fraudsters, each with a
//! label and a reason. Everything about an entry is sealed under its own data key like an
//! enrollment's templates; deleting it destroys the key (crypto-shredding). Every enrollment and
//! every verify of the tenant is checked against it ([`super::check`]); labels and reasons are shown
//! only here.

use super::sync::open_watch;
use crate::crypto::{EntryOwner, RecordKind};
use crate::domain::{new_id, now_millis, rfc3339, AuditKind, TenantId};
use crate::face::QualityReport;
use crate::store::{AuditEvent, NewWatchlistEntry, WatchlistRow};
use crate::usecase::{faces, Services, UseCaseError, UseCaseResult};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Longest label or reason, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Most entries one list returns.
pub const MAX_LIST_LIMIT: i64 = 200;
const PREFIX: &str = "wle";

/// `POST /v1/watchlist`: the photo and what the RP says about the person.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// Base64 of a JPEG, PNG or WebP photo with one face.
    pub photo: String,
    /// Who this is, in the RP's words (1–200 characters).
    pub label: String,
    /// Why the person is listed (1–200 characters).
    pub reason: String,
}

impl std::fmt::Debug for NewEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewEntry([redacted])")
    }
}

/// A watchlist entry as the API key holder sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchlistEntry {
    /// `wle_…`
    pub id: String,
    pub label: String,
    pub reason: String,
    pub model: String,
    pub created_at: String,
    /// The photo's quality report (only in the answer to `POST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_quality: Option<QualityReport>,
}

/// `GET /v1/watchlist`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchlistList {
    /// Newest first.
    pub entries: Vec<WatchlistEntry>,
}

/// `Some` for `wle_` and 32 lower-case hex digits.
pub fn parse_id(s: &str) -> Option<&str> {
    let rest = s.strip_prefix(PREFIX)?.strip_prefix('_')?;
    (rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(s)
}

fn text(what: &str, s: &str) -> UseCaseResult<String> {
    let s = s.trim();
    let n = s.chars().count();
    if n == 0 || n > MAX_TEXT_CHARS || s.chars().any(char::is_control) {
        return Err(UseCaseError::Malformed(format!(
            "`{what}` must be 1 to {MAX_TEXT_CHARS} characters without control characters"
        )));
    }
    Ok(s.to_string())
}

pub async fn create(
    svc: &Services,
    tenant_id: &TenantId,
    entry: NewEntry,
) -> UseCaseResult<WatchlistEntry> {
    use base64::Engine;
    let label = text("label", &entry.label)?;
    let reason = text("reason", &entry.reason)?;
    let max = svc.settings.face.selfie_max_bytes;
    if entry.photo.len() > max.saturating_mul(4) / 3 + 4 {
        return Err(UseCaseError::PayloadTooLarge(format!(
            "`photo` is larger than {max} bytes"
        )));
    }
    let photo = base64::engine::general_purpose::STANDARD
        .decode(entry.photo.trim())
        .map_err(|_| UseCaseError::Malformed("`photo` is not valid base64".into()))?;
    let work = faces::analyze(svc, tenant_id, Bytes::from(photo), None, &[]).await?;
    let template = work
        .selfie
        .template
        .clone()
        .ok_or_else(|| UseCaseError::Malformed("no usable face was found in `photo`".into()))?;
    let id = new_id(PREFIX);
    let owner = EntryOwner {
        tenant_id,
        entry_id: &id,
    };
    let (dek, wrapped_key) = svc.keys.new_data_key(owner);
    let now = now_millis();
    let row = NewWatchlistEntry {
        id: id.clone(),
        tenant_id: tenant_id.clone(),
        wrapped_key,
        template_sealed: dek.seal(owner, RecordKind::Template, &template.to_bytes()),
        label_sealed: dek.seal(owner, RecordKind::WatchlistLabel, label.as_bytes()),
        reason_sealed: dek.seal(owner, RecordKind::WatchlistReason, reason.as_bytes()),
        model_id: template.model_id.clone(),
        model_hash: template.model_hash.clone(),
        preprocessing_version: template.preprocessing_version.to_string(),
        created_at: now,
    };
    let audit = AuditEvent {
        tenant_id: tenant_id.clone(),
        event: AuditKind::WatchlistCreated,
        subject: id.clone(),
        details: serde_json::json!({"model": svc.face.model_label()}),
        at: now,
    };
    svc.store.create_watchlist_entry(&row, &audit).await?;
    // This replica at once; the others through the feed.
    if let Err(e) = svc.faces.upsert_watch(tenant_id, &id, &template) {
        tracing::warn!(entry_id = %id, error = %e, "watchlist: entry left out of the gallery");
    }
    Ok(WatchlistEntry {
        id,
        label,
        reason,
        model: svc.face.model_label(),
        created_at: rfc3339(now),
        photo_quality: Some(work.selfie.quality),
    })
}

fn view(svc: &Services, row: &WatchlistRow) -> UseCaseResult<WatchlistEntry> {
    let owner = EntryOwner {
        tenant_id: &row.tenant_id,
        entry_id: &row.id,
    };
    let dek = svc
        .keys
        .unwrap_key(owner, &row.wrapped_key)
        .map_err(UseCaseError::internal)?;
    let open = |kind, sealed: &[u8]| {
        dek.open(owner, kind, sealed)
            .map_err(UseCaseError::internal)
            .and_then(|b| String::from_utf8(b).map_err(UseCaseError::internal))
    };
    // The template is opened too: an entry whose face cannot be read is reported, not listed blind.
    open_watch(&svc.keys, row).map_err(UseCaseError::Internal)?;
    Ok(WatchlistEntry {
        id: row.id.clone(),
        label: open(RecordKind::WatchlistLabel, row.label_sealed.expose())?,
        reason: open(RecordKind::WatchlistReason, row.reason_sealed.expose())?,
        model: format!(
            "{}@{}",
            row.model_id,
            &row.model_hash[..12.min(row.model_hash.len())]
        ),
        created_at: rfc3339(row.created_at),
        photo_quality: None,
    })
}

pub async fn list(
    svc: &Services,
    tenant_id: &TenantId,
    limit: Option<i64>,
) -> UseCaseResult<WatchlistList> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(UseCaseError::Malformed(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let rows = svc.store.watchlist_entries(tenant_id, limit).await?;
    Ok(WatchlistList {
        entries: rows
            .iter()
            .map(|r| view(svc, r))
            .collect::<UseCaseResult<_>>()?,
    })
}

pub async fn get(svc: &Services, tenant_id: &TenantId, id: &str) -> UseCaseResult<WatchlistEntry> {
    let id = parse_id(id).ok_or(UseCaseError::NotFound)?;
    let row = svc
        .store
        .watchlist_entry(tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    view(svc, &row)
}

/// Crypto-shreds the entry; this replica forgets it at once, the others through the feed.
pub async fn delete(svc: &Services, tenant_id: &TenantId, id: &str) -> UseCaseResult<()> {
    let id = parse_id(id).ok_or(UseCaseError::NotFound)?;
    let now = now_millis();
    let audit = AuditEvent {
        tenant_id: tenant_id.clone(),
        event: AuditKind::WatchlistDeleted,
        subject: id.to_string(),
        details: serde_json::json!({"shredded": true}),
        at: now,
    };
    if !svc
        .store
        .delete_watchlist_entry(tenant_id, id, &audit, now)
        .await?
    {
        return Err(UseCaseError::NotFound);
    }
    svc.faces.remove_watch(tenant_id, id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_texts_are_bounded() {
        let id = new_id(PREFIX);
        assert_eq!(parse_id(&id), Some(id.as_str()));
        for bad in [
            "wle_",
            "enr_0123456789abcdef0123456789abcdef",
            "wle_0123456789ABCDEF0123456789abcdef",
            "wle_../x",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
        assert!(text("label", "  ").is_err());
        assert!(text("label", "a\u{7}b").is_err());
        assert!(text("label", &"x".repeat(201)).is_err());
        assert_eq!(text("label", " 詐欺 ").unwrap(), "詐欺");
    }
}
