//! `Idempotency-Key`: replay first, then reserve, then run.
//!
//! 1. The key is looked up before any state check, in its scope (tenant, credential, method + route).
//!    A completed answer for the same request fingerprint is replayed byte for byte with its status;
//!    a different fingerprint is `idempotency_conflict`; a running request is `idempotency_in_progress`.
//! 2. Otherwise the key is reserved (`in_progress`) and the work runs. The work stores its answer in
//!    the same transaction as the write it answers (see [`Completion`]), so there is no commit without
//!    its answer and no answer without its commit.
//! 3. Work that fails decided nothing: the reservation is released and the client may retry. A
//!    reservation whose request died is taken over after `idempotency.reservation_secs`.

use super::{Services, UseCaseError, UseCaseResult};
use crate::crypto::{Owner, RecordKind};
use crate::domain::{now_millis, TenantId};
use crate::store::{self, IdempotencyScope, IdempotentResponse, Reservation};
use sha2::{Digest, Sha256};
use std::future::Future;

/// A decided answer: status and the JSON body as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// This is a stored answer sent again.
    pub replayed: bool,
}

impl Answer {
    pub fn new(status: u16, document: &impl serde::Serialize) -> UseCaseResult<Self> {
        Ok(Self {
            status,
            body: serde_json::to_vec(document).map_err(UseCaseError::internal)?,
            replayed: false,
        })
    }

    pub fn created(document: &impl serde::Serialize) -> UseCaseResult<Self> {
        Self::new(201, document)
    }

    pub fn ok(document: &impl serde::Serialize) -> UseCaseResult<Self> {
        Self::new(200, document)
    }
}

/// A request that carries an Idempotency-Key: where the key lives and what the request asks for.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub scope: IdempotencyScope,
    pub fingerprint: [u8; 32],
}

impl Keyed {
    /// `credential` is [`super::Caller::credential`]; `parts` is everything the request asks for,
    /// including the resolved session and enrollment.
    pub fn new(
        tenant_id: &TenantId,
        credential: &str,
        route: &str,
        key: String,
        parts: &[&[u8]],
    ) -> Self {
        Self {
            scope: IdempotencyScope {
                tenant_id: tenant_id.clone(),
                scope: format!("{credential}|{route}"),
                key,
            },
            fingerprint: fingerprint(route, parts),
        }
    }

    fn context(&self) -> [&str; 3] {
        [
            self.scope.tenant_id.as_str(),
            &self.scope.scope,
            &self.scope.key,
        ]
    }
}

/// A fingerprint of what a request asks for: the route and its meaningful parts, length-prefixed.
pub fn fingerprint(route: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Handed to the work when the request carries a key: it turns the answer into the row stored with
/// the work's own transaction.
pub struct Pending {
    keyed: Keyed,
    ttl_ms: i64,
}

impl Pending {
    fn completion(&self, response: IdempotentResponse) -> store::Completion {
        store::Completion {
            scope: self.keyed.scope.clone(),
            request_hash: self.keyed.fingerprint,
            response,
            expires_at: now_millis() + self.ttl_ms,
        }
    }

    /// The answer sealed under the KEK (it holds no personal data, or a short-lived client token).
    pub fn sealed_under_kek(
        &self,
        svc: &Services,
        answer: &Answer,
        resource_id: Option<&str>,
    ) -> store::Completion {
        self.completion(IdempotentResponse {
            status: answer.status,
            body: svc.keys.seal_system(&self.keyed.context(), &answer.body),
            sealed_under: None,
            resource_id: resource_id.map(str::to_string),
        })
    }

    /// The answer sealed under the enrollment's data key: shredding the enrollment destroys it.
    pub fn sealed_under_enrollment(
        &self,
        dek: &crate::crypto::DataKey,
        owner: Owner<'_>,
        answer: &Answer,
    ) -> store::Completion {
        let mut aad_plain = self.keyed.context().join("\u{0}").into_bytes();
        aad_plain.push(0);
        // The key's scope is bound into the sealed bytes so an answer cannot be moved to another key.
        let mut plain = Sha256::digest(&aad_plain).to_vec();
        plain.extend_from_slice(&answer.body);
        self.completion(IdempotentResponse {
            status: answer.status,
            body: dek.seal(owner, RecordKind::IdempotentAnswer, &plain),
            sealed_under: Some(owner.enrollment_id.clone()),
            resource_id: Some(owner.enrollment_id.to_string()),
        })
    }
}

/// Seconds a concurrent request with the same key is told to wait.
const IN_PROGRESS_RETRY_SECS: u64 = 1;

/// Runs `work` at most once per key (see the module docs). Without a key, just runs it.
pub async fn once<F, Fut>(svc: &Services, keyed: Option<Keyed>, work: F) -> UseCaseResult<Answer>
where
    F: FnOnce(Option<Pending>) -> Fut,
    Fut: Future<Output = UseCaseResult<Answer>>,
{
    let Some(keyed) = keyed else {
        return work(None).await;
    };
    let settings = &svc.settings.idempotency;
    let ttl_ms = i64::try_from(settings.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let reserve_ms =
        i64::try_from(settings.reservation_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let reservation = svc
        .store
        .reserve_idempotency_key(
            &keyed.scope,
            &keyed.fingerprint,
            now_millis(),
            reserve_ms,
            ttl_ms,
        )
        .await?;
    match reservation {
        Reservation::Replay(stored) => return replay(svc, &keyed, stored).await,
        Reservation::Conflict => return Err(UseCaseError::IdempotencyConflict),
        Reservation::InProgress { retry_after_ms } => {
            return Err(UseCaseError::IdempotencyInProgress {
                retry_after_secs: (retry_after_ms.max(0) as u64)
                    .div_ceil(1000)
                    .clamp(IN_PROGRESS_RETRY_SECS, 60),
            })
        }
        Reservation::Reserved => {}
    }
    let result = work(Some(Pending {
        keyed: keyed.clone(),
        ttl_ms,
    }))
    .await;
    if result.is_err() {
        release(svc, &keyed.scope).await;
    }
    result
}

/// Nothing was decided: free the key for a retry. The database may be what just failed, so try a few
/// times; if it stays away, the reservation runs out by itself after `reservation_secs`.
async fn release(svc: &Services, scope: &IdempotencyScope) {
    for attempt in 0..4u32 {
        match svc.store.release_idempotency_key(scope).await {
            Ok(()) => return,
            Err(e) if attempt == 3 => {
                tracing::warn!(error = %e, "could not release an idempotency reservation; it expires by itself");
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await,
        }
    }
}

async fn replay(
    svc: &Services,
    keyed: &Keyed,
    stored: IdempotentResponse,
) -> UseCaseResult<Answer> {
    let body = match &stored.sealed_under {
        None => svc
            .keys
            .open_system(&keyed.context(), &stored.body)
            .map_err(UseCaseError::internal)?,
        Some(enrollment_id) => {
            let row = svc
                .store
                .get_enrollment(&keyed.scope.tenant_id, enrollment_id)
                .await?
                // Deleting the enrollment deletes its answers in the same transaction.
                .ok_or(UseCaseError::NotFound)?;
            let owner = Owner {
                tenant_id: &row.tenant_id,
                enrollment_id: &row.id,
            };
            let wrapped = row.wrapped_key.as_ref().ok_or(UseCaseError::NotFound)?;
            let dek = svc
                .keys
                .unwrap_key(owner, wrapped)
                .map_err(UseCaseError::internal)?;
            let plain = dek
                .open(owner, RecordKind::IdempotentAnswer, &stored.body)
                .map_err(UseCaseError::internal)?;
            let mut aad_plain = keyed.context().join("\u{0}").into_bytes();
            aad_plain.push(0);
            let bound = Sha256::digest(&aad_plain);
            match plain.strip_prefix(bound.as_slice()) {
                Some(body) => body.to_vec(),
                None => {
                    return Err(UseCaseError::internal(anyhow::anyhow!(
                        "stored answer belongs to another key"
                    )))
                }
            }
        }
    };
    Ok(Answer {
        status: stored.status,
        body,
        replayed: true,
    })
}
