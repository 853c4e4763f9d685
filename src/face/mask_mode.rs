//! What a tenant does with a selfie the mask check flags (issue 25): `reject`, `flag`, `review`, `off`,
//! applied to the engine's quality report.

use super::quality::{QualityCheck, QualityReport, QualityResult};
use serde::{Deserialize, Serialize};

/// What a tenant does with a selfie the mask check flags (`TenantSettings.selfie_mask`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MaskMode {
    /// `selfie_mask` is a quality failure like the others: the app asks for a retake (default).
    #[default]
    Reject,
    /// The decision goes on; `selfie_mask` is recorded in `selfie_quality.flagged`.
    Flag,
    /// As `flag` here; the enrollment then goes `in_review` (issue 22, `route_to_review`). A verify
    /// or the selfie step treats it as `flag`.
    Review,
    /// The mask check is ignored (its score is still reported).
    Off,
}

/// Applies the tenant's mode to a selfie's quality report (the engine reports `selfie_mask` as a
/// failure; `flag`/`review` move it to `flagged`, `off` drops it) and recomputes the verdict.
pub fn apply_mode(report: &mut QualityReport, mode: MaskMode) {
    if mode == MaskMode::Reject {
        return;
    }
    let (mask, rest): (Vec<_>, Vec<_>) = report
        .failed
        .iter()
        .copied()
        .partition(|f| f.check == QualityCheck::Mask);
    if mask.is_empty() {
        return;
    }
    report.failed = rest;
    if matches!(mode, MaskMode::Flag | MaskMode::Review) {
        for f in mask {
            if !report.flagged.contains(&f) {
                report.flagged.push(f);
            }
        }
    }
    if report.failed.is_empty() {
        report.result = QualityResult::Pass;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::quality::QualityFailure;
    use crate::face::ImageKind;

    fn report(checks: &[QualityCheck]) -> QualityReport {
        let mut r = crate::face::quality::no_face_report(ImageKind::Selfie);
        r.failed = checks
            .iter()
            .map(|&check| QualityFailure {
                check,
                kind: ImageKind::Selfie,
            })
            .collect();
        r
    }

    #[test]
    fn modes_reject_flag_review_and_off() {
        let mask = QualityFailure {
            check: QualityCheck::Mask,
            kind: ImageKind::Selfie,
        };
        let mut r = report(&[QualityCheck::Mask]);
        apply_mode(&mut r, MaskMode::Reject);
        assert_eq!(r.result, QualityResult::Fail);
        assert_eq!(r.failed, vec![mask]);

        for mode in [MaskMode::Flag, MaskMode::Review] {
            let mut r = report(&[QualityCheck::Mask]);
            apply_mode(&mut r, mode);
            assert_eq!(r.result, QualityResult::Pass, "{mode:?}");
            assert!(r.failed.is_empty());
            assert_eq!(r.flagged, vec![mask]);
        }
        // Another failure keeps the verdict a fail.
        let mut r = report(&[QualityCheck::Mask, QualityCheck::Blurry]);
        apply_mode(&mut r, MaskMode::Flag);
        assert_eq!(r.result, QualityResult::Fail);
        assert_eq!(r.failed.len(), 1);

        let mut r = report(&[QualityCheck::Mask]);
        apply_mode(&mut r, MaskMode::Off);
        assert_eq!(r.result, QualityResult::Pass);
        assert!(r.failed.is_empty() && r.flagged.is_empty());
    }
}
