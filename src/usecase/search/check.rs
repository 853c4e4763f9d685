//! The 1:N checks of an enrollment (duplicate face, watchlist) and of a verify (watchlist): what
//! they found, as the API shows it, and what it does to the decision.
//!
//! The other enrollments' ids and the watchlist entries' ids are for the RP's backend only: a client
//! token's answer carries the results without them ([`DuplicateCheck::for_client`]).

use super::index::{FaceIndex, FaceMeta, IdentityTag};
use crate::domain::search::CheckMode;
use crate::domain::{EnrollmentId, Reason, TenantId};
use crate::face::gallery::Hit;
use crate::face::identification::threshold_for_fpir;
use crate::face::Template;
use crate::usecase::{round4, Services, UseCaseError, UseCaseResult};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Whether a 1:N check found anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitResult {
    Clear,
    Hit,
}

/// Another enrollment the face was found in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Candidate {
    pub enrollment_id: EnrollmentId,
    /// Cosine similarity to the probe.
    pub score: f64,
    /// 1 = best.
    pub rank: usize,
}

/// `checks.duplicate_face` of an enrollment: the selfie searched against the tenant's other active
/// enrollments (a lead for a person to review, not a verdict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DuplicateCheck {
    pub result: HitResult,
    /// The tenant's `duplicate_check` setting when it ran (`review` sends a hit to a person).
    pub mode: CheckMode,
    pub threshold: f64,
    pub target_fpir: f64,
    /// Enrollments in the tenant's gallery when it ran.
    pub gallery_size: usize,
    /// The other enrollments (another identity, still active), best first; absent when clear. Only
    /// with an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<Candidate>>,
}

/// A watchlist entry the face matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchlistMatch {
    /// `GET /v1/watchlist/{id}` shows its label and reason.
    pub entry_id: String,
    pub score: f64,
    pub rank: usize,
}

/// `checks.watchlist` of an enrollment, `watchlist` of a verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchlistCheck {
    pub result: HitResult,
    /// The tenant's `watchlist_action` (verifications only flag).
    pub mode: CheckMode,
    pub threshold: f64,
    pub target_fpir: f64,
    /// The matching entries, best first; absent when clear. Only with an API key; labels never leave
    /// `GET /v1/watchlist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<WatchlistMatch>>,
}

impl DuplicateCheck {
    /// What a client token sees: the result, not the other enrollments.
    pub fn for_client(&self) -> Self {
        Self {
            candidates: None,
            ..self.clone()
        }
    }

    pub fn ids(&self) -> Vec<EnrollmentId> {
        self.candidates
            .iter()
            .flatten()
            .map(|c| c.enrollment_id.clone())
            .collect()
    }
}

impl WatchlistCheck {
    pub fn for_client(&self) -> Self {
        Self {
            entries: None,
            ..self.clone()
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.entries
            .iter()
            .flatten()
            .map(|e| e.entry_id.clone())
            .collect()
    }
}

/// What the 1:N checks of one enrollment found and what they do to its decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub duplicates: Option<DuplicateCheck>,
    pub watchlist: WatchlistCheck,
}

impl Findings {
    /// The reasons to add to the decision.
    pub fn reasons(&self) -> Vec<Reason> {
        let mut r = Vec::new();
        if self
            .duplicates
            .as_ref()
            .is_some_and(|d| d.result == HitResult::Hit)
        {
            r.push(Reason::DuplicateFace);
        }
        if self.watchlist.result == HitResult::Hit {
            r.push(Reason::WatchlistHit);
        }
        r
    }

    /// Whether a hit rejects the enrollment (its mode is `reject`).
    pub fn rejects(&self) -> bool {
        let dup = self
            .duplicates
            .as_ref()
            .is_some_and(|d| d.result == HitResult::Hit && d.mode.rejects());
        dup || (self.watchlist.result == HitResult::Hit && self.watchlist.mode.rejects())
    }
}

/// Pure: the duplicates among the gallery's hits: another identity, still active; re-ranked.
pub fn duplicates_of(hits: &[(Hit<String>, FaceMeta)], identity: IdentityTag) -> Vec<Candidate> {
    hits.iter()
        .filter(|(_, m)| m.status.is_active() && m.identity != identity)
        .filter_map(|(h, _)| EnrollmentId::parse(&h.id).map(|id| (id, h.score)))
        .enumerate()
        .map(|(i, (enrollment_id, score))| Candidate {
            enrollment_id,
            score: round4(score),
            rank: i + 1,
        })
        .collect()
}

/// The tenant's settings that the checks read.
#[derive(Debug, Clone, Copy)]
pub struct TenantPolicy {
    pub duplicate_check: CheckMode,
    pub watchlist_action: CheckMode,
    pub target_fpir: f64,
}

pub async fn policy(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<TenantPolicy> {
    let tenant = svc
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let s = &tenant.settings;
    Ok(TenantPolicy {
        duplicate_check: s.duplicate_check.unwrap_or_default(),
        watchlist_action: match s.watchlist_action {
            None | Some(CheckMode::Off) => CheckMode::Flag,
            Some(m) => m,
        },
        target_fpir: s
            .search_target_fpir
            .and_then(|r| r.valid())
            .unwrap_or(svc.settings.search.default_target_fpir),
    })
}

/// Waits (bounded) for the start-up build: a request that arrives while it runs is served after it,
/// not against a half-built gallery.
pub async fn ready_index(svc: &Services) -> UseCaseResult<Arc<FaceIndex>> {
    for _ in 0..600 {
        if svc.faces.is_ready() {
            return Ok(svc.faces.clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(UseCaseError::NotReady {
        retry_after_secs: 5,
    })
}

fn gallery_error(e: crate::face::gallery::GalleryError) -> UseCaseError {
    UseCaseError::internal(anyhow::anyhow!("gallery search: {e}"))
}

/// A scan of a gallery (20 ms at a million rows) runs on the blocking pool, not on the executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::face::gallery::GalleryError> + Send + 'static,
) -> UseCaseResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(UseCaseError::internal)?
        .map_err(gallery_error)
}

/// The watchlist check of a probe.
pub async fn watchlist(
    index: Arc<FaceIndex>,
    tenant_id: &TenantId,
    probe: &Template,
    policy: &TenantPolicy,
    max: usize,
) -> UseCaseResult<WatchlistCheck> {
    let (tenant, probe, fpir) = (tenant_id.clone(), probe.clone(), policy.target_fpir);
    let found =
        blocking(move || index.search_watch(&tenant, &probe, |n| threshold_for_fpir(fpir, n), max))
            .await?;
    let entries: Vec<WatchlistMatch> = found
        .hits
        .into_iter()
        .map(|h| WatchlistMatch {
            entry_id: h.id,
            score: round4(h.score),
            rank: h.rank,
        })
        .collect();
    Ok(WatchlistCheck {
        result: if entries.is_empty() {
            HitResult::Clear
        } else {
            HitResult::Hit
        },
        mode: policy.watchlist_action,
        threshold: round4(found.threshold),
        target_fpir: policy.target_fpir,
        // A clear check lists nothing, so the client's view and the key holder's are the same.
        entries: (!entries.is_empty()).then_some(entries),
    })
}

/// The 1:N checks of a verified enrollment's selfie, before it is stored.
pub async fn at_enrollment(
    svc: &Services,
    tenant_id: &TenantId,
    probe: &Template,
    identity: &crate::card::Identity,
) -> UseCaseResult<Findings> {
    let policy = policy(svc, tenant_id).await?;
    let index = ready_index(svc).await?;
    let max = svc.settings.search.max_limit;
    let duplicates = match policy.duplicate_check {
        CheckMode::Off => None,
        mode => {
            let (gallery, tenant, probe, fpir) = (
                index.clone(),
                tenant_id.clone(),
                probe.clone(),
                policy.target_fpir,
            );
            // Same-identity rows are filtered after the search: look further than `max`.
            let found = blocking(move || {
                gallery.search_faces(&tenant, &probe, |n| threshold_for_fpir(fpir, n), max * 4)
            })
            .await?;
            let mut candidates = duplicates_of(&found.hits, index.identity_tag(identity));
            candidates.truncate(max);
            Some(DuplicateCheck {
                result: if candidates.is_empty() {
                    HitResult::Clear
                } else {
                    HitResult::Hit
                },
                mode,
                threshold: round4(found.threshold),
                target_fpir: policy.target_fpir,
                gallery_size: found.gallery_size,
                candidates: (!candidates.is_empty()).then_some(candidates),
            })
        }
    };
    let watchlist = watchlist(index, tenant_id, probe, &policy, max).await?;
    Ok(Findings {
        duplicates,
        watchlist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EnrollmentStatus;

    fn tag(index: &FaceIndex, name: &str) -> IdentityTag {
        index.identity_tag(&crate::card::Identity {
            name: name.into(),
            name_alt: String::new(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, 2).unwrap(),
            sex: crate::card::Sex::Male,
            address: String::new(),
            address_alt: String::new(),
        })
    }

    fn hit(id: &EnrollmentId, score: f32, rank: usize) -> Hit<String> {
        Hit {
            id: id.to_string(),
            score,
            rank,
        }
    }

    #[test]
    fn only_other_identities_that_are_active_are_duplicates() {
        let index = FaceIndex::new(crate::face::gallery::ModelTag {
            model_id: "m".into(),
            model_hash: "h".into(),
            preprocessing_version: 1,
        });
        let (me, other) = (tag(&index, "a"), tag(&index, "b"));
        let ids: Vec<EnrollmentId> = (0..4).map(|_| EnrollmentId::new()).collect();
        let meta = |status, identity| FaceMeta { status, identity };
        let hits = vec![
            (hit(&ids[0], 0.99, 1), meta(EnrollmentStatus::Verified, me)),
            (
                hit(&ids[1], 0.9, 2),
                meta(EnrollmentStatus::Verified, other),
            ),
            (hit(&ids[2], 0.8, 3), meta(EnrollmentStatus::Revoked, other)),
            (
                hit(&ids[3], 0.7, 4),
                meta(EnrollmentStatus::Verified, other),
            ),
        ];
        let d = duplicates_of(&hits, me);
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].enrollment_id.clone(), d[0].rank), (ids[1].clone(), 1));
        assert_eq!((d[1].enrollment_id.clone(), d[1].rank), (ids[3].clone(), 2));
        assert!(duplicates_of(&hits[..1], me).is_empty(), "a re-enrollment");
    }

    #[test]
    fn findings_name_their_reasons_and_only_reject_mode_rejects() {
        let check = |result, mode| DuplicateCheck {
            result,
            mode,
            threshold: 0.5,
            target_fpir: 1e-3,
            gallery_size: 3,
            candidates: Some(vec![Candidate {
                enrollment_id: EnrollmentId::new(),
                score: 0.9,
                rank: 1,
            }]),
        };
        let watch = |result, mode| WatchlistCheck {
            result,
            mode,
            threshold: 0.5,
            target_fpir: 1e-3,
            entries: Some(vec![]),
        };
        for mode in [CheckMode::Flag, CheckMode::Review] {
            let f = Findings {
                duplicates: Some(check(HitResult::Hit, mode)),
                watchlist: watch(HitResult::Hit, mode),
            };
            assert_eq!(
                f.reasons(),
                vec![Reason::DuplicateFace, Reason::WatchlistHit]
            );
            assert!(!f.rejects(), "{mode:?} does not reject by itself");
        }
        let f = Findings {
            duplicates: Some(check(HitResult::Hit, CheckMode::Reject)),
            watchlist: watch(HitResult::Clear, CheckMode::Flag),
        };
        assert!(f.rejects());
        assert_eq!(f.reasons(), vec![Reason::DuplicateFace]);
        let f = Findings {
            duplicates: None,
            watchlist: watch(HitResult::Hit, CheckMode::Reject),
        };
        assert!(f.rejects());
        assert_eq!(f.reasons(), vec![Reason::WatchlistHit]);
        // The client's view has no ids.
        let d = check(HitResult::Hit, CheckMode::Flag);
        assert!(d.for_client().candidates.is_none());
        assert_eq!(d.ids().len(), 1);
    }
}
