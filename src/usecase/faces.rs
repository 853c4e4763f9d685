//! The face work of one upload, submitted to the worker pool together (selfie, chip photo, liveness
//! frames), the tenant's selfie policy applied to it (the mask mode), the liveness measurement from it,
//! and the mapping of the engine's errors.
//!
//! Every selfie the service judges goes through [`analyze`]: the engine's quality report (with the mask
//! check) and then [`crate::face::mask_mode::apply_mode`] with the tenant's `selfie_mask` setting.

use super::{Services, UseCaseError};
use crate::face::{FaceAnalysis, FaceEngine, FaceError, ImageKind, MaskMode};
use crate::liveness::{self, Challenge, FrameObservation, LivenessConfig, LivenessReport};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The analyses of one upload.
pub struct FaceWork {
    pub selfie: FaceAnalysis,
    pub chip: Option<FaceAnalysis>,
    pub frames: Vec<([u8; 32], FaceAnalysis)>,
}

fn selfie_error(e: FaceError, what: &str) -> UseCaseError {
    match e {
        FaceError::Overloaded { retry_after_secs } => UseCaseError::Overloaded { retry_after_secs },
        FaceError::DeadlineExceeded => UseCaseError::Overloaded {
            retry_after_secs: 2,
        },
        FaceError::NotReady => UseCaseError::NotReady {
            retry_after_secs: 5,
        },
        FaceError::UnsupportedMediaType { detail } => {
            UseCaseError::UnsupportedMediaType(format!("{what}: {detail}"))
        }
        FaceError::TooLarge { detail } => {
            UseCaseError::PayloadTooLarge(format!("{what}: {detail}"))
        }
        // Not a picture we can read (truncated, corrupt, lying header): refused, never decoded partly.
        FaceError::Undecodable { detail } => {
            UseCaseError::UnsupportedMediaType(format!("{what}: {detail}"))
        }
        FaceError::Internal => {
            UseCaseError::internal(anyhow::anyhow!("face engine failed on {what}"))
        }
        FaceError::TenantQueueFull { retry_after_secs } => UseCaseError::RateLimited {
            retry_after_secs,
            detail: "this tenant's share of the face engine is in use; retry shortly",
        },
        FaceError::WorkerPanicked => {
            UseCaseError::internal(anyhow::anyhow!("face worker panicked on {what}"))
        }
    }
}

fn chip_error(e: FaceError) -> UseCaseError {
    match e {
        FaceError::UnsupportedMediaType { detail }
        | FaceError::TooLarge { detail }
        | FaceError::Undecodable { detail } => {
            UseCaseError::InvalidCardData(format!("kenmen.face/DF27: {detail}"))
        }
        other => selfie_error(other, "chip photo"),
    }
}

/// The tenant's `selfie_mask` mode (default `reject`).
pub async fn mask_mode(
    svc: &Services,
    tenant_id: &crate::domain::TenantId,
) -> Result<MaskMode, UseCaseError> {
    let tenant = svc
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    Ok(tenant.settings.selfie_mask.unwrap_or_default())
}

/// Runs every image of the upload on the pool at once, on behalf of `tenant_id`; the first error wins.
/// The selfie's quality report has the tenant's mask mode applied.
pub async fn analyze(
    svc: &Services,
    tenant_id: &crate::domain::TenantId,
    selfie: Bytes,
    chip: Option<Bytes>,
    frames: &[Bytes],
) -> Result<FaceWork, UseCaseError> {
    let engine = &svc.face;
    // The tenant's setting is read while the images are analysed.
    let mode = mask_mode(svc, tenant_id);
    let tenant_id = tenant_id.as_str();
    let selfie_job = async {
        engine
            .analyze_for(tenant_id, selfie, ImageKind::Selfie)
            .await
            .map_err(|e| selfie_error(e, "selfie"))
    };
    let chip_job = async {
        match chip {
            Some(bytes) => engine
                .analyze_for(tenant_id, bytes, ImageKind::ChipPhoto)
                .await
                .map(Some)
                .map_err(chip_error),
            None => Ok(None),
        }
    };
    let frame_jobs = futures::future::join_all(frames.iter().map(|frame| async move {
        let digest: [u8; 32] = Sha256::digest(frame).into();
        engine
            .analyze_for(tenant_id, frame.clone(), ImageKind::Selfie)
            .await
            .map(|a| (digest, a))
            .map_err(|e| selfie_error(e, "liveness_frame"))
    }));
    let (mode, selfie, chip, frames) = tokio::join!(mode, selfie_job, chip_job, frame_jobs);
    let mode = mode?;
    let mut selfie = selfie?;
    crate::face::mask_mode::apply_mode(&mut selfie.quality, mode);
    Ok(FaceWork {
        selfie,
        chip: chip?,
        frames: frames.into_iter().collect::<Result<_, _>>()?,
    })
}

/// The chip photo alone, for an enrollment whose selfie was judged and kept by the selfie step.
pub async fn analyze_chip(
    engine: &FaceEngine,
    tenant_id: &crate::domain::TenantId,
    chip: Bytes,
) -> Result<FaceAnalysis, UseCaseError> {
    engine
        .analyze_for(tenant_id.as_str(), chip, ImageKind::ChipPhoto)
        .await
        .map_err(chip_error)
}

impl FaceWork {
    /// The liveness decision from the frames' measurements (see [`crate::liveness`]).
    pub fn liveness(&self, challenge: &Challenge, cfg: &LivenessConfig) -> LivenessReport {
        let observations: Vec<FrameObservation> = self
            .frames
            .iter()
            .map(|(sha256, a)| {
                let geometry = a.face;
                FrameObservation {
                    sha256: *sha256,
                    faces: a.quality.faces,
                    yaw_deg: geometry.map(|g| g.yaw_deg).unwrap_or(0.0),
                    pitch_deg: geometry.map(|g| g.pitch_deg).unwrap_or(0.0),
                    landmarks: geometry
                        .map(|g| g.landmarks.map(|[x, y]| (x, y)))
                        .unwrap_or_default(),
                    same_person_score: a
                        .template
                        .as_ref()
                        .zip(self.selfie.template.as_ref())
                        .and_then(|(f, s)| f.cosine(s).ok()),
                }
            })
            .collect();
        liveness::check(challenge, &observations, cfg)
    }
}
