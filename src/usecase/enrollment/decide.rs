//! The enrollment decision: pure, from everything the checks found (no I/O, no models).

use super::view::{
    CertificateView, EnrollmentChecks, FaceMatchCheck, FaceMatchResult, RevocationCheck,
    RevocationResult,
};
use crate::card::CardReport;
use crate::domain::search::CheckMode;
use crate::domain::{EnrollmentStatus, Reason, Reasons};
use crate::face::FaceAnalysis;
use crate::face::{ImageKind, QualityCheck, QualityFailure, QualityReport};
use crate::jlis::{self, ValidityReport};
use crate::liveness::{LivenessMode, LivenessReport};
use crate::usecase::round4;
use crate::usecase::selfie::{selfie_reasons, JudgedSelfie};

/// What the face work measured, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceEvidence {
    pub selfie_quality: QualityReport,
    pub chip_quality: Option<QualityReport>,
    pub liveness: LivenessReport,
    /// Chip photo against selfie; `None` if either has no template.
    pub score: Option<f32>,
}

impl FaceEvidence {
    /// The evidence of a judged selfie (posted with the card, or kept by the selfie step) and the
    /// chip photo's analysis.
    pub fn new(selfie: &JudgedSelfie, chip: Option<&FaceAnalysis>) -> Self {
        let score = chip
            .and_then(|c| c.template.as_ref())
            .zip(selfie.template.as_ref())
            .and_then(|(chip, selfie)| chip.cosine(selfie).ok());
        Self {
            selfie_quality: selfie.quality.clone(),
            chip_quality: chip.map(|c| c.quality.clone()),
            liveness: selfie.liveness.clone(),
            score,
        }
    }
}

/// The threshold a score is compared with, and the model that made the templates.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchPolicy {
    pub threshold: f32,
    pub target_fmr: f64,
    pub model: String,
}

impl MatchPolicy {
    pub fn for_fmr(engine: &crate::face::FaceEngine, fmr: f64) -> Self {
        let t = engine.threshold_for_fmr(fmr);
        Self {
            threshold: t.score,
            target_fmr: t.target_fmr,
            model: engine.model_label(),
        }
    }

    fn check(&self, score: Option<f32>) -> FaceMatchCheck {
        let result = match score {
            Some(s) if s >= self.threshold => FaceMatchResult::Match,
            Some(_) => FaceMatchResult::NoMatch,
            None => FaceMatchResult::NotCompared,
        };
        FaceMatchCheck {
            result,
            score: score.map(round4),
            threshold: round4(self.threshold),
            target_fmr: self.target_fmr,
            model: self.model.clone(),
        }
    }
}

/// An enrollment's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: EnrollmentStatus,
    pub reasons: Reasons,
    /// The checks with the certificate's result only (details are sealed separately).
    pub checks: EnrollmentChecks,
}

/// What was looked at after the card authenticated: the validity answer and the face work. Both or
/// neither: a face result without a validity answer cannot be expressed, so it cannot verify.
#[derive(Debug, Clone, Copy)]
pub struct AfterCard<'a> {
    pub revocation: &'a ValidityReport,
    pub faces: &'a FaceEvidence,
}

/// The decision, from everything the checks found. Pure: no I/O, no models.
///
/// `after_card` is `None` when the card failed and nothing else was looked at. `verified` needs an
/// `after_card` whose every check passed: without one the decision is `rejected`, also for a card
/// that passed (then with `certificate_status_unknown` and `face_not_compared`).
pub fn decide(
    card: &CardReport,
    after_card: Option<AfterCard<'_>>,
    liveness_kind: LivenessMode,
    policy: &MatchPolicy,
) -> Decision {
    let mut reasons = Reasons::default();
    for reason in card.failures() {
        reasons.push(reason);
    }
    let (revocation_check, selfie_quality, chip_quality, liveness, face_match) = match after_card {
        None => {
            // Fail closed: nothing after the card was looked at, so this is never `verified`.
            if reasons.is_empty() {
                reasons.push(Reason::CertificateStatusUnknown);
                reasons.push(Reason::FaceNotCompared);
            }
            (
                RevocationCheck::not_checked(),
                None,
                None,
                LivenessReport::not_evaluated(liveness_kind),
                policy.check(None),
            )
        }
        Some(AfterCard {
            revocation,
            faces: f,
        }) => {
            if let Some(reason) = reason_of(revocation) {
                reasons.push(reason);
            }
            // The selfie's own verdict: the same function the selfie step answers with.
            for reason in selfie_reasons(&f.selfie_quality, &f.liveness).iter() {
                reasons.push(*reason);
            }
            for failure in f.chip_quality.iter().flat_map(|q| q.failed.iter()) {
                reasons.push(Reason::Quality(*failure));
            }
            let face_match = policy.check(f.score);
            match face_match.result {
                FaceMatchResult::Match => {}
                FaceMatchResult::NoMatch => reasons.push(Reason::FaceMismatch),
                FaceMatchResult::NotCompared => reasons.push(Reason::FaceNotCompared),
            }
            (
                RevocationCheck::from_report(revocation),
                Some(f.selfie_quality.clone()),
                f.chip_quality.clone(),
                f.liveness.clone(),
                face_match,
            )
        }
    };
    let checks = EnrollmentChecks {
        card_data: card.card_data.clone(),
        card_present: card.card_present.clone(),
        certificate: CertificateView::result_only(card.certificate.result),
        revocation: revocation_check,
        consistency: card.consistency.clone(),
        hojo: card.hojo.clone(),
        hojo_binding: Some(card.hojo_binding.clone()),
        selfie_quality,
        chip_photo_quality: chip_quality,
        liveness,
        face_match,
        duplicate_face: None,
        watchlist: None,
    };
    Decision {
        status: if reasons.is_empty() {
            EnrollmentStatus::Verified
        } else {
            EnrollmentStatus::Rejected
        },
        reasons,
        checks,
    }
}

/// What a tenant sends to a person instead of letting the machine decide (issue 22). The 1:N checks'
/// `review` modes travel in the decision's own checks (`duplicate_face.mode`, `watchlist.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReviewRules {
    /// The threshold at the tenant's `review_band_fmr`: a face score below the enrollment threshold
    /// and at or above this one goes to review. `None`: no band.
    pub band_threshold: Option<f32>,
    /// A signed `unknown` from J-LIS goes to review (`review_on_status_unknown`).
    pub on_status_unknown: bool,
    /// A masked selfie goes to review (`selfie_mask = "review"`).
    pub mask: bool,
}

/// What one reason does to a decision under the tenant's review rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weight {
    Rejects,
    Reviews,
    /// Recorded; the enrollment stays `verified` (a 1:N hit in `flag` mode).
    Flags,
}

fn weight(reason: Reason, d: &Decision, rules: &ReviewRules) -> Weight {
    let by_mode = |mode: Option<CheckMode>| match mode {
        Some(CheckMode::Review) => Weight::Reviews,
        Some(CheckMode::Reject) => Weight::Rejects,
        _ => Weight::Flags,
    };
    match reason {
        Reason::FaceMismatch => {
            let in_band = rules.band_threshold.is_some_and(|band| {
                d.checks
                    .face_match
                    .score
                    .is_some_and(|score| score >= round4(band))
            });
            if in_band {
                Weight::Reviews
            } else {
                Weight::Rejects
            }
        }
        Reason::CertificateStatusUnknown
            if rules.on_status_unknown
                && d.checks.revocation.result == RevocationResult::Unknown =>
        {
            Weight::Reviews
        }
        Reason::Quality(q) if q == SELFIE_MASK && rules.mask && mask_flagged(d) => Weight::Reviews,
        Reason::DuplicateFace => by_mode(d.checks.duplicate_face.as_ref().map(|c| c.mode)),
        Reason::WatchlistHit => by_mode(d.checks.watchlist.as_ref().map(|c| c.mode)),
        _ => Weight::Rejects,
    }
}

const SELFIE_MASK: QualityFailure = QualityFailure {
    check: QualityCheck::Mask,
    kind: ImageKind::Selfie,
};

fn mask_flagged(d: &Decision) -> bool {
    d.checks
        .selfie_quality
        .as_ref()
        .is_some_and(|q| q.flagged.contains(&SELFIE_MASK))
}

/// Sends the decision to review where the tenant's rules say so, and returns the reasons that sent
/// it (empty: not in review). Pure. A decision goes to review only if every reason it has either
/// flags or may be reviewed, and one may be reviewed: any other reason (a card failure, a face far
/// below the band, a quality failure, a hit in `reject` mode) keeps it `rejected`. A masked selfie
/// under `review` adds `selfie_mask` to the reasons. Applied after [`decide`] and again after the
/// 1:N checks (their findings may add reasons); applying it twice changes nothing.
pub fn route_to_review(d: &mut Decision, rules: &ReviewRules) -> Reasons {
    if rules.mask && mask_flagged(d) {
        d.reasons.push(Reason::Quality(SELFIE_MASK));
    }
    let mut review = Reasons::default();
    let mut rejects = false;
    for reason in d.reasons.iter() {
        match weight(*reason, d, rules) {
            Weight::Rejects => rejects = true,
            Weight::Reviews => review.push(*reason),
            Weight::Flags => {}
        }
    }
    if rejects {
        if d.status == EnrollmentStatus::InReview {
            d.status = EnrollmentStatus::Rejected;
        }
        return Reasons::default();
    }
    if !review.is_empty() {
        d.status = EnrollmentStatus::InReview;
    }
    review
}

/// The reason code of a validity answer that is not `good`.
pub fn reason_of(report: &ValidityReport) -> Option<Reason> {
    match report.status {
        jlis::Status::Good => None,
        jlis::Status::Revoked {
            reason: jlis::RevocationReason::AffiliationChanged,
            ..
        } => Some(Reason::IdentityChanged),
        jlis::Status::Revoked { .. } => Some(Reason::CertificateRevoked),
        jlis::Status::Unknown => Some(Reason::CertificateStatusUnknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{
        self, CardDataCheck, CardDataResult, CertificateCheck, CertificateResult, ConsistencyCheck,
        ConsistencyResult, HojoBindingCheck, HojoBindingResult, HojoCheck, HojoResult,
        PresenceCheck, PresenceResult, Sex,
    };
    use crate::face::{ImageKind, QualityCheck, QualityFailure};
    use crate::jlis::{self, RevocationReason};
    use crate::liveness::LivenessResult;
    use crate::usecase::test_support::quality;
    use chrono::Utc;

    fn card() -> CardReport {
        CardReport {
            card_data: CardDataCheck {
                result: CardDataResult::Valid,
                issuer_key_id: "9000023/001".into(),
            },
            card_present: PresenceCheck {
                result: PresenceResult::Valid,
            },
            certificate: CertificateCheck {
                result: CertificateResult::Valid,
                serial: "0A".into(),
                issuer: "CN=test".into(),
                not_after: Utc::now(),
                unknown_critical_extensions: Vec::new(),
            },
            hojo: Some(HojoCheck {
                result: HojoResult::Valid,
                issuer_key_id: "9000033/001".into(),
            }),
            consistency: ConsistencyCheck {
                result: ConsistencyResult::Match,
                mismatched: Vec::new(),
            },
            hojo_binding: HojoBindingCheck {
                result: HojoBindingResult::Bound,
                certificate_mismatched: Vec::new(),
                kenmen_mismatched: Vec::new(),
            },
            identity: card::Identity {
                name: "山田　太郎".into(),
                name_alt: String::new(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, 2).unwrap(),
                sex: Sex::Male,
                address: "東京都".into(),
                address_alt: String::new(),
            },
            chip_photo: Vec::new(),
            card_expiry_unauthenticated: None,
            revocation_target: None,
        }
    }

    fn faces(score: Option<f32>) -> FaceEvidence {
        FaceEvidence {
            selfie_quality: quality(ImageKind::Selfie, &[]),
            chip_quality: Some(quality(ImageKind::ChipPhoto, &[])),
            liveness: LivenessReport::skipped(),
            score,
        }
    }

    fn validity(status: jlis::Status) -> ValidityReport {
        ValidityReport {
            status,
            method: jlis::Method::Ocsp,
            checked_at: Utc::now(),
            this_update: Utc::now(),
            next_update: None,
            responder: None,
            from_cache: false,
        }
    }

    const POLICY: fn() -> MatchPolicy = || MatchPolicy {
        threshold: 0.5,
        target_fmr: 1e-4,
        model: "sface@abc".into(),
    };

    fn after<'a>(revocation: &'a ValidityReport, faces: &'a FaceEvidence) -> Option<AfterCard<'a>> {
        Some(AfterCard { revocation, faces })
    }

    fn reasons(d: &Decision) -> Vec<String> {
        d.reasons.iter().map(|r| r.code().into_owned()).collect()
    }

    #[test]
    fn everything_passing_is_verified_and_keeps_no_certificate_details_in_the_record() {
        let good = validity(jlis::Status::Good);
        let d = decide(
            &card(),
            after(&good, &faces(Some(0.7))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(d.status, EnrollmentStatus::Verified);
        assert!(d.reasons.is_empty());
        assert_eq!(d.checks.face_match.result, FaceMatchResult::Match);
        assert_eq!(
            d.checks.certificate.serial, None,
            "details are sealed apart"
        );
        assert_eq!(
            d.checks.revocation.result,
            super::super::view::RevocationResult::Good
        );
    }

    #[test]
    fn every_card_failure_has_its_reason_and_skips_the_faces() {
        type Spoil = Box<dyn Fn(&mut CardReport)>;
        let cases: Vec<(Spoil, &str)> = vec![
            (
                Box::new(|c| c.card_data.result = CardDataResult::InvalidSignature),
                "invalid_signature",
            ),
            (
                Box::new(|c| c.card_data.result = CardDataResult::UnknownIssuer),
                "unknown_issuer",
            ),
            (
                Box::new(|c| c.card_present.result = PresenceResult::InvalidSignature),
                "card_not_present",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::UntrustedChain),
                "untrusted_certificate",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::WrongIssuer),
                "certificate_wrong_issuer",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::RootNotCa),
                "certificate_root_not_ca",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::RootNotValid),
                "certificate_root_not_valid",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::Expired),
                "certificate_expired",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::NotYetValid),
                "certificate_not_yet_valid",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::UnknownCriticalExtension),
                "certificate_unknown_critical_extension",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::BadKeyUsage),
                "certificate_bad_key_usage",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::PolicyMissing),
                "certificate_policy_missing",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::InvalidSignature),
                "invalid_jpki_signature",
            ),
            (
                Box::new(|c| c.hojo.as_mut().unwrap().result = HojoResult::InvalidSignature),
                "invalid_hojo_signature",
            ),
            (
                Box::new(|c| c.hojo.as_mut().unwrap().result = HojoResult::UnknownIssuer),
                "unknown_hojo_issuer",
            ),
            (
                Box::new(|c| c.hojo_binding.result = HojoBindingResult::HojoRequired),
                "hojo_required",
            ),
            (
                Box::new(|c| c.hojo_binding.result = HojoBindingResult::Mismatch),
                "hojo_mismatch",
            ),
            (
                Box::new(|c| c.consistency.result = ConsistencyResult::Mismatch),
                "identity_mismatch",
            ),
        ];
        for (spoil, code) in cases {
            let mut c = card();
            spoil(&mut c);
            let d = decide(&c, None, LivenessMode::PoseSequence, &POLICY());
            assert_eq!(d.status, EnrollmentStatus::Rejected, "{code}");
            assert_eq!(reasons(&d), vec![code.to_string()]);
            assert_eq!(
                d.checks.selfie_quality, None,
                "{code}: the selfie was not looked at"
            );
            assert_eq!(d.checks.liveness.result, LivenessResult::NotEvaluated);
            assert_eq!(d.checks.face_match.result, FaceMatchResult::NotCompared);
            assert_eq!(
                d.checks.revocation.result,
                super::super::view::RevocationResult::NotChecked
            );
        }
    }

    #[test]
    fn revocation_answers_have_their_reasons() {
        for (status, code) in [
            (
                jlis::Status::Revoked {
                    reason: RevocationReason::KeyCompromise,
                    revoked_at: Utc::now(),
                },
                "certificate_revoked",
            ),
            (
                jlis::Status::Revoked {
                    reason: RevocationReason::AffiliationChanged,
                    revoked_at: Utc::now(),
                },
                "identity_changed",
            ),
            (jlis::Status::Unknown, "certificate_status_unknown"),
        ] {
            let v = validity(status);
            let d = decide(
                &card(),
                after(&v, &faces(Some(0.9))),
                LivenessMode::Off,
                &POLICY(),
            );
            assert_eq!(d.status, EnrollmentStatus::Rejected);
            assert_eq!(reasons(&d), vec![code.to_string()]);
        }
    }

    #[test]
    fn every_face_reason_code() {
        let good = validity(jlis::Status::Good);
        let no_match = decide(
            &card(),
            after(&good, &faces(Some(0.49))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(reasons(&no_match), vec!["face_mismatch"]);
        assert_eq!(no_match.checks.face_match.score, Some(0.49));
        let at = decide(
            &card(),
            after(&good, &faces(Some(0.5))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(
            at.status,
            EnrollmentStatus::Verified,
            "the threshold itself matches"
        );
        let none = decide(
            &card(),
            after(&good, &faces(None)),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(reasons(&none), vec!["face_not_compared"]);
        let mut live = faces(Some(0.9));
        live.liveness.result = LivenessResult::Fail;
        let d = decide(
            &card(),
            after(&good, &live),
            LivenessMode::PoseSequence,
            &POLICY(),
        );
        assert_eq!(reasons(&d), vec!["liveness_failed"]);
        for kind in [ImageKind::Selfie, ImageKind::ChipPhoto] {
            for check in QualityCheck::ALL.into_iter().filter(|c| c.applies_to(kind)) {
                let mut f = faces(None);
                match kind {
                    ImageKind::Selfie => f.selfie_quality = quality(kind, &[check]),
                    ImageKind::ChipPhoto => f.chip_quality = Some(quality(kind, &[check])),
                }
                let d = decide(&card(), after(&good, &f), LivenessMode::Off, &POLICY());
                let code = QualityFailure { check, kind }.code();
                assert_eq!(reasons(&d), vec![code, "face_not_compared".to_string()]);
            }
        }
    }

    #[test]
    fn a_passing_card_without_what_comes_after_it_is_never_verified() {
        // Missing validity answer and face work (the only way to leave them out: they come together).
        let d = decide(&card(), None, LivenessMode::Off, &POLICY());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        assert_eq!(
            reasons(&d),
            vec!["certificate_status_unknown", "face_not_compared"]
        );
        assert_eq!(
            d.checks.revocation.result,
            super::super::view::RevocationResult::NotChecked
        );
        // A validity answer of `unknown` with a matching face: rejected too.
        let unknown = validity(jlis::Status::Unknown);
        let d = decide(
            &card(),
            after(&unknown, &faces(Some(0.9))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        // Face work without a template on either side: rejected.
        let good = validity(jlis::Status::Good);
        let d = decide(
            &card(),
            after(&good, &faces(None)),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(d.status, EnrollmentStatus::Rejected);
    }

    #[test]
    fn every_reason_code_is_reachable_by_decide() {
        // The codes above cover the whole vocabulary (Reason::all_codes).
        // Plus `duplicate_face` and `watchlist_hit`, added after `decide` by the 1:N checks
        // (usecase::search::check, whose tests reach them). The mask check is for selfies only: no
        // `chip_photo_mask`.
        let covered = 18 + 3 + 3 + 2 * QualityCheck::ALL.len() + 2 - 1;
        assert_eq!(Reason::all_codes().len(), covered);
    }

    // Review (issue 22): what goes to a person instead of being decided.

    const BAND: ReviewRules = ReviewRules {
        band_threshold: Some(0.4),
        on_status_unknown: false,
        mask: false,
    };

    fn decided(score: Option<f32>, status: jlis::Status) -> Decision {
        let v = validity(status);
        decide(
            &card(),
            after(&v, &faces(score)),
            LivenessMode::Off,
            &POLICY(),
        )
    }

    fn codes(r: &Reasons) -> Vec<String> {
        r.iter().map(|r| r.code().into_owned()).collect()
    }

    #[test]
    fn a_score_in_the_band_goes_to_review_and_one_below_it_is_rejected() {
        let mut d = decided(Some(0.45), jlis::Status::Good);
        let review = route_to_review(&mut d, &BAND);
        assert_eq!(d.status, EnrollmentStatus::InReview);
        assert_eq!(codes(&review), vec!["face_mismatch"]);
        assert_eq!(
            reasons(&d),
            vec!["face_mismatch"],
            "the reason stays visible"
        );
        // At the band's threshold itself: in review.
        let mut d = decided(Some(0.4), jlis::Status::Good);
        route_to_review(&mut d, &BAND);
        assert_eq!(d.status, EnrollmentStatus::InReview);
        // Below the band: rejected as before.
        let mut d = decided(Some(0.39), jlis::Status::Good);
        assert!(route_to_review(&mut d, &BAND).is_empty());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        // No band: rejected.
        let mut d = decided(Some(0.45), jlis::Status::Good);
        route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        // A match stays verified whatever the rules.
        let mut d = decided(Some(0.9), jlis::Status::Good);
        assert!(route_to_review(&mut d, &BAND).is_empty());
        assert_eq!(d.status, EnrollmentStatus::Verified);
    }

    #[test]
    fn any_other_failure_keeps_a_band_score_rejected() {
        // A card failure: nothing after the card was looked at; never to review.
        let mut c = card();
        c.card_data.result = CardDataResult::InvalidSignature;
        let mut d = decide(&c, None, LivenessMode::Off, &POLICY());
        let rules = ReviewRules {
            on_status_unknown: true,
            ..BAND
        };
        assert!(route_to_review(&mut d, &rules).is_empty());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        // A passing card whose validity was never asked (`certificate_status_unknown` without an
        // answer): not the signed `unknown` the rule is about.
        let mut d = decide(&card(), None, LivenessMode::Off, &POLICY());
        route_to_review(&mut d, &rules);
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        // A band score with a failed liveness: rejected.
        let good = validity(jlis::Status::Good);
        let mut f = faces(Some(0.45));
        f.liveness.result = LivenessResult::Fail;
        let mut d = decide(
            &card(),
            after(&good, &f),
            LivenessMode::PoseSequence,
            &POLICY(),
        );
        route_to_review(&mut d, &BAND);
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        // A band score with a revoked certificate: rejected.
        let mut d = decided(
            Some(0.45),
            jlis::Status::Revoked {
                reason: RevocationReason::KeyCompromise,
                revoked_at: Utc::now(),
            },
        );
        route_to_review(&mut d, &rules);
        assert_eq!(d.status, EnrollmentStatus::Rejected);
    }

    #[test]
    fn a_signed_unknown_goes_to_review_only_when_the_tenant_says_so() {
        let mut d = decided(Some(0.9), jlis::Status::Unknown);
        route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        let rules = ReviewRules {
            on_status_unknown: true,
            ..ReviewRules::default()
        };
        let mut d = decided(Some(0.9), jlis::Status::Unknown);
        let review = route_to_review(&mut d, &rules);
        assert_eq!(d.status, EnrollmentStatus::InReview);
        assert_eq!(codes(&review), vec!["certificate_status_unknown"]);
        // Unknown and a band score: both are for the reviewer.
        let mut d = decided(Some(0.45), jlis::Status::Unknown);
        let review = route_to_review(
            &mut d,
            &ReviewRules {
                on_status_unknown: true,
                ..BAND
            },
        );
        assert_eq!(d.status, EnrollmentStatus::InReview);
        assert_eq!(
            codes(&review),
            vec!["certificate_status_unknown", "face_mismatch"]
        );
    }

    #[test]
    fn a_flagged_mask_goes_to_review_in_review_mode_only() {
        let mask = QualityFailure {
            check: QualityCheck::Mask,
            kind: ImageKind::Selfie,
        };
        let good = validity(jlis::Status::Good);
        let mut f = faces(Some(0.9));
        f.selfie_quality.flagged.push(mask);
        let d0 = decide(&card(), after(&good, &f), LivenessMode::Off, &POLICY());
        assert_eq!(d0.status, EnrollmentStatus::Verified, "flagged, not failed");
        let mut d = d0.clone();
        route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(d.status, EnrollmentStatus::Verified, "flag mode");
        let mut d = d0.clone();
        let review = route_to_review(
            &mut d,
            &ReviewRules {
                mask: true,
                ..ReviewRules::default()
            },
        );
        assert_eq!(d.status, EnrollmentStatus::InReview);
        assert_eq!(codes(&review), vec!["selfie_mask"]);
        assert_eq!(reasons(&d), vec!["selfie_mask"]);
        // Review mode but nothing flagged: verified.
        let mut d = decided(Some(0.9), jlis::Status::Good);
        route_to_review(
            &mut d,
            &ReviewRules {
                mask: true,
                ..ReviewRules::default()
            },
        );
        assert_eq!(d.status, EnrollmentStatus::Verified);
    }

    fn with_hits(duplicate: CheckMode, watchlist: CheckMode) -> Decision {
        use crate::usecase::search::{DuplicateCheck, HitResult, WatchlistCheck};
        let mut d = decided(Some(0.9), jlis::Status::Good);
        d.checks.duplicate_face = Some(DuplicateCheck {
            result: HitResult::Hit,
            mode: duplicate,
            threshold: 0.5,
            target_fpir: 1e-3,
            gallery_size: 2,
            candidates: None,
        });
        d.checks.watchlist = Some(WatchlistCheck {
            result: HitResult::Hit,
            mode: watchlist,
            threshold: 0.5,
            target_fpir: 1e-3,
            entries: None,
        });
        d.reasons.push(Reason::DuplicateFace);
        d.reasons.push(Reason::WatchlistHit);
        if duplicate == CheckMode::Reject || watchlist == CheckMode::Reject {
            d.status = EnrollmentStatus::Rejected;
        }
        d
    }

    #[test]
    fn one_to_n_hits_follow_their_mode() {
        let mut d = with_hits(CheckMode::Flag, CheckMode::Flag);
        assert!(route_to_review(&mut d, &ReviewRules::default()).is_empty());
        assert_eq!(d.status, EnrollmentStatus::Verified);
        let mut d = with_hits(CheckMode::Review, CheckMode::Flag);
        let review = route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(d.status, EnrollmentStatus::InReview);
        assert_eq!(codes(&review), vec!["duplicate_face"]);
        let mut d = with_hits(CheckMode::Flag, CheckMode::Review);
        let review = route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(codes(&review), vec!["watchlist_hit"]);
        // A hit in reject mode wins over one in review mode, also once routed.
        let mut d = with_hits(CheckMode::Review, CheckMode::Reject);
        route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
        let mut d = with_hits(CheckMode::Review, CheckMode::Reject);
        d.status = EnrollmentStatus::InReview;
        route_to_review(&mut d, &ReviewRules::default());
        assert_eq!(d.status, EnrollmentStatus::Rejected);
    }

    #[test]
    fn routing_twice_changes_nothing() {
        let rules = ReviewRules {
            mask: true,
            on_status_unknown: true,
            ..BAND
        };
        for score in [0.3, 0.45, 0.9] {
            for status in [jlis::Status::Good, jlis::Status::Unknown] {
                let mut once = decided(Some(score), status);
                let first = route_to_review(&mut once, &rules);
                let mut twice = once.clone();
                let second = route_to_review(&mut twice, &rules);
                assert_eq!(once, twice);
                assert_eq!(first, second);
            }
        }
    }
}
