//! The selfie's own verdict, one function for every path that judges a selfie: the enrollment, the
//! transaction verify and the selfie step (`POST /v1/sessions/{id}/selfie`). A selfie is judged on
//! what it and its liveness frames show, before any comparison: the selfie quality rules, then the
//! liveness challenge. (The mask rule of issue 25 belongs here too, next to the quality rules.)
//!
//! Also the kept form of a passing selfie of the selfie step: the verdict and the template, sealed
//! under a per-session data key; the enrollment or verify that uses it takes the verdict as it was
//! given (it is not judged again) and compares the template.

use super::faces::{self, FaceWork};
use super::sessions::StoredChallenge;
use super::{Services, UseCaseError, UseCaseResult};
use crate::crypto::{KeyRing, SessionOwner, WrappedKey};
use crate::domain::{Millis, Reason, Reasons, SessionId, TenantId};
use crate::face::{FaceAnalysis, QualityReport, QualityResult, Template};
use crate::liveness::{LivenessConfig, LivenessReport};
use crate::redact::Secret;
use crate::store::{KeptSelfieRow, Session};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a selfie (and its liveness frames) showed, and its template if a face was embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedSelfie {
    pub quality: QualityReport,
    pub liveness: LivenessReport,
    pub template: Option<Template>,
}

impl JudgedSelfie {
    /// Judges the selfie of `work` (with its frames) against the session's challenge.
    pub fn judge(work: &FaceWork, challenge: &StoredChallenge, cfg: &LivenessConfig) -> Self {
        Self {
            quality: work.selfie.quality.clone(),
            liveness: challenge.evaluate(|c| work.liveness(c, cfg)),
            template: work.selfie.template.clone(),
        }
    }

    /// Why the selfie must be taken again; empty when it passes.
    pub fn reasons(&self) -> Reasons {
        selfie_reasons(&self.quality, &self.liveness)
    }

    pub fn passed(&self) -> bool {
        self.quality.result == QualityResult::Pass && self.reasons().is_empty()
    }
}

/// The reasons a selfie is refused, in order: every failed quality check of the selfie, then the
/// liveness challenge. The enrollment decision pushes exactly these for its selfie.
pub fn selfie_reasons(quality: &QualityReport, liveness: &LivenessReport) -> Reasons {
    let mut reasons = Reasons::default();
    for failure in &quality.failed {
        reasons.push(Reason::Quality(*failure));
    }
    if !liveness.passed() {
        reasons.push(Reason::LivenessFailed);
    }
    reasons
}

/// Where the selfie of an upload comes from: posted with it (judged now), or kept by the selfie step.
pub enum SelfieSource {
    Posted(Bytes),
    Kept(Box<JudgedSelfie>),
}

impl SelfieSource {
    /// The posted selfie wins; without one, the selfie this session kept; without either the request
    /// is malformed (nothing to judge). Looked up before any other work, so it costs nothing else.
    pub async fn resolve(
        svc: &Services,
        session: Option<&Session>,
        posted: Option<Bytes>,
    ) -> UseCaseResult<Self> {
        if let Some(bytes) = posted {
            return Ok(SelfieSource::Posted(bytes));
        }
        let kept = match session {
            Some(s) => svc.store.kept_selfie(&s.tenant_id, &s.id).await?,
            None => None,
        };
        match kept {
            Some(row) => Ok(SelfieSource::Kept(Box::new(open(&svc.keys, &row)?))),
            None => Err(UseCaseError::Malformed(
                "missing part `selfie` (and this session has no selfie accepted by POST /v1/sessions/{id}/selfie)"
                    .into(),
            )),
        }
    }

    /// For the audit record: which selfie a decision used.
    pub fn label(&self) -> &'static str {
        match self {
            SelfieSource::Posted(_) => "posted",
            SelfieSource::Kept(_) => "kept",
        }
    }

    /// The selfie's verdict, and the chip photo's analysis when one is given: a posted selfie is
    /// analysed (with its frames and the chip photo, on the pool at once) and judged; a kept one is
    /// taken as it was judged, and only the chip photo is analysed.
    pub async fn judge(
        &self,
        svc: &Services,
        tenant_id: &TenantId,
        chip: Option<Bytes>,
        frames: &[Bytes],
        challenge: &StoredChallenge,
    ) -> UseCaseResult<(JudgedSelfie, Option<FaceAnalysis>)> {
        match self {
            SelfieSource::Posted(selfie) => {
                let work = faces::analyze(svc, tenant_id, selfie.clone(), chip, frames).await?;
                let judged = JudgedSelfie::judge(&work, challenge, &svc.settings.liveness);
                Ok((judged, work.chip))
            }
            SelfieSource::Kept(judged) => {
                let chip = match chip {
                    Some(bytes) => Some(faces::analyze_chip(&svc.face, tenant_id, bytes).await?),
                    None => None,
                };
                Ok(((**judged).clone(), chip))
            }
        }
    }
}

/// The sealed plaintext of a kept selfie. Versioned: a row written by another version that does not
/// parse is an internal error (it is never judged as passing).
#[derive(Serialize, Deserialize)]
struct KeptRecord {
    v: u8,
    quality: QualityReport,
    liveness: LivenessReport,
    /// `Template::to_bytes`, base64.
    template: Option<String>,
}

const KEPT_RECORD_VERSION: u8 = 1;

/// Seals a passing selfie for its session: a fresh data key for the session, wrapped by the KEK.
pub fn seal(
    keys: &KeyRing,
    tenant_id: &TenantId,
    session_id: &SessionId,
    judged: &JudgedSelfie,
    now: Millis,
    expires_at: Millis,
) -> UseCaseResult<KeptSelfieRow> {
    let owner = SessionOwner {
        tenant_id,
        session_id,
    };
    let record = KeptRecord {
        v: KEPT_RECORD_VERSION,
        quality: judged.quality.clone(),
        liveness: judged.liveness.clone(),
        template: judged
            .template
            .as_ref()
            .map(|t| STANDARD.encode(t.to_bytes())),
    };
    let plain =
        zeroize::Zeroizing::new(serde_json::to_vec(&record).map_err(UseCaseError::internal)?);
    let (dek, wrapped): (_, WrappedKey) = keys.new_session_key(owner);
    Ok(KeptSelfieRow {
        session_id: session_id.clone(),
        tenant_id: tenant_id.clone(),
        wrapped_key: wrapped,
        sealed: Secret::new(dek.seal_for_session(owner, &plain)),
        created_at: now,
        expires_at,
    })
}

/// Opens a kept selfie of `session_id`.
pub fn open(keys: &KeyRing, row: &KeptSelfieRow) -> UseCaseResult<JudgedSelfie> {
    let owner = SessionOwner {
        tenant_id: &row.tenant_id,
        session_id: &row.session_id,
    };
    let dek = keys
        .unwrap_session_key(owner, &row.wrapped_key)
        .map_err(UseCaseError::internal)?;
    let plain = zeroize::Zeroizing::new(
        dek.open_for_session(owner, row.sealed.expose())
            .map_err(UseCaseError::internal)?,
    );
    let record: KeptRecord = serde_json::from_slice(&plain).map_err(UseCaseError::internal)?;
    if record.v != KEPT_RECORD_VERSION {
        return Err(UseCaseError::internal(anyhow::anyhow!(
            "kept selfie of unknown version {}",
            record.v
        )));
    }
    let template = record
        .template
        .map(|b64| {
            let bytes = STANDARD.decode(b64).map_err(UseCaseError::internal)?;
            Template::from_bytes(&bytes)
                .map_err(|e| UseCaseError::internal(anyhow::anyhow!("kept template: {e}")))
        })
        .transpose()?;
    Ok(JudgedSelfie {
        quality: record.quality,
        liveness: record.liveness,
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{ImageKind, QualityCheck};
    use crate::liveness::LivenessResult;
    use crate::usecase::test_support::quality;

    fn judged(failed: &[QualityCheck], live: bool) -> JudgedSelfie {
        let mut liveness = LivenessReport::skipped();
        if !live {
            liveness.result = LivenessResult::Fail;
        }
        JudgedSelfie {
            quality: quality(ImageKind::Selfie, failed),
            liveness,
            template: Some(Template {
                model_id: "sface".into(),
                model_hash: "ab".repeat(32),
                preprocessing_version: 1,
                vector: vec![0.25; 8],
            }),
        }
    }

    fn codes(r: &Reasons) -> Vec<String> {
        r.iter().map(|r| r.code().into_owned()).collect()
    }

    #[test]
    fn a_selfie_passes_only_with_every_quality_check_and_the_liveness_challenge() {
        assert!(judged(&[], true).passed());
        for check in QualityCheck::ALL {
            let j = judged(&[check], true);
            assert!(!j.passed());
            assert_eq!(codes(&j.reasons()).len(), 1);
        }
        assert_eq!(
            codes(&judged(&[], false).reasons()),
            vec!["liveness_failed"]
        );
    }

    #[test]
    fn a_kept_selfie_opens_to_the_same_verdict_for_its_own_session_only() {
        let keys = KeyRing::new("k1", [3; 32]);
        let (tenant, session) = (TenantId::new(), SessionId::new());
        let j = judged(&[], true);
        let row = seal(&keys, &tenant, &session, &j, 1, 2).unwrap();
        assert!(!String::from_utf8_lossy(row.sealed.expose()).contains("sface"));
        assert_eq!(open(&keys, &row).unwrap(), j);
        let mut moved = row.clone();
        moved.session_id = SessionId::new();
        assert!(open(&keys, &moved).is_err(), "bound to its session");
    }
}
