//! Quality metrics of a detected face and the rules that turn them into stable failure codes.

use super::align::{AlignedFace, SIDE};
use super::config::QualityRules;
use super::detect::Detection;
use super::ImageKind;
use image::RgbImage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Overall verdict of the quality checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QualityResult {
    Pass,
    Fail,
}

/// One quality check; with the image kind it names a failure code (`selfie_blurry`, `chip_photo_no_face`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualityCheck {
    NoFace,
    MultipleFaces,
    FaceTooSmall,
    TooDark,
    TooBright,
    Blurry,
    Pose,
    Glare,
    LowConfidence,
    /// A face mask (selfies only; the chip photo is never checked for one).
    Mask,
}

impl QualityCheck {
    pub const ALL: [QualityCheck; 10] = [
        Self::NoFace,
        Self::MultipleFaces,
        Self::FaceTooSmall,
        Self::TooDark,
        Self::TooBright,
        Self::Blurry,
        Self::Pose,
        Self::Glare,
        Self::LowConfidence,
        Self::Mask,
    ];

    /// Whether the check exists for images of `kind` (the mask check is for selfies only).
    pub fn applies_to(self, kind: ImageKind) -> bool {
        self != Self::Mask || kind == ImageKind::Selfie
    }

    /// The check named by a code's suffix (`blurry`, `no_face`, …).
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.suffix() == suffix)
    }

    pub fn suffix(self) -> &'static str {
        match self {
            Self::NoFace => "no_face",
            Self::MultipleFaces => "multiple_faces",
            Self::FaceTooSmall => "face_too_small",
            Self::TooDark => "too_dark",
            Self::TooBright => "too_bright",
            Self::Blurry => "blurry",
            Self::Pose => "pose",
            Self::Glare => "glare",
            Self::LowConfidence => "low_confidence",
            Self::Mask => "mask",
        }
    }
}

/// A failed check of a given image kind. Serialises as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QualityFailure {
    pub check: QualityCheck,
    pub kind: ImageKind,
}

impl QualityFailure {
    /// The stable code: `selfie_<check>` or `chip_photo_<check>`.
    pub fn code(&self) -> String {
        let prefix = match self.kind {
            ImageKind::Selfie => "selfie",
            ImageKind::ChipPhoto => "chip_photo",
        };
        format!("{prefix}_{}", self.check.suffix())
    }
}

impl QualityFailure {
    /// Parses a code made by [`QualityFailure::code`].
    pub fn parse(code: &str) -> Option<Self> {
        let (kind, suffix) = if let Some(rest) = code.strip_prefix("selfie_") {
            (ImageKind::Selfie, rest)
        } else {
            (ImageKind::ChipPhoto, code.strip_prefix("chip_photo_")?)
        };
        QualityCheck::from_suffix(suffix)
            .filter(|c| c.applies_to(kind))
            .map(|check| Self { check, kind })
    }
}

impl<'de> Deserialize<'de> for QualityFailure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown quality code {code:?}")))
    }
}

impl Serialize for QualityFailure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

/// The `selfie_quality` object of the API (plus `inter_eye_px`, `roll_deg`, `glare`, `detection_score`).
/// Metrics are `None` when no face was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualityReport {
    pub result: QualityResult,
    pub faces: usize,
    pub face_width_px: Option<u32>,
    pub brightness: Option<f32>,
    pub sharpness: Option<f32>,
    pub yaw_deg: Option<f32>,
    pub pitch_deg: Option<f32>,
    /// Failure codes such as `selfie_blurry` or `chip_photo_no_face`.
    #[schema(value_type = Vec<String>)]
    pub failed: Vec<QualityFailure>,
    pub inter_eye_px: Option<f32>,
    pub roll_deg: Option<f32>,
    pub glare: Option<f32>,
    pub detection_score: Option<f32>,
    /// The mask classifiers' blended probability that the face wears a mask (selfies only; `None` for the
    /// chip photo or when no face was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<f32>,
    /// Checks that failed but that the tenant has chosen to record rather than refuse
    /// (`selfie_mask` in `flag` mode): the decision went on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub flagged: Vec<QualityFailure>,
}

impl QualityReport {
    pub fn has(&self, check: QualityCheck) -> bool {
        self.failed.iter().any(|f| f.check == check)
    }
}

/// Head pose estimated from the five landmarks, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pose {
    /// Positive: face turned towards the image's right.
    pub yaw_deg: f32,
    /// Positive: face tilted up.
    pub pitch_deg: f32,
    /// In-plane rotation of the eye line; positive: clockwise in the image.
    pub roll_deg: f32,
}

/// Vertical position of YuNet's nose landmark between the eye line and the mouth line on a frontal face.
/// Measured, not taken from the ArcFace template (0.495): YuNet puts the nose point lower, and with 0.495
/// the median pitch of 807 mostly frontal portraits (LFW and the model package's samples) read −7°.
const FRONTAL_NOSE_RATIO: f32 = 0.55;
/// Nose-tip depth in front of the eye plane, as a fraction of the inter-eye distance (anthropometric mean).
const NOSE_DEPTH: f32 = 0.5;

/// Pose from landmarks: roll is the eye line's angle; after undoing it, yaw comes from the nose's sideways
/// offset from the face midline and pitch from its vertical offset, both against the nose depth.
pub fn estimate_pose(lm: &[[f32; 2]; 5]) -> Pose {
    let [le, re, nose, lm_, rm] = *lm;
    let roll = (re[1] - le[1]).atan2(re[0] - le[0]);
    let (c, s) = (roll.cos(), roll.sin());
    let eye_mid = [(le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0];
    // Rotate everything by -roll around the eye midpoint.
    let derot = |p: [f32; 2]| {
        let (x, y) = (p[0] - eye_mid[0], p[1] - eye_mid[1]);
        [c * x + s * y, -s * x + c * y]
    };
    let (le, re, nose, lm_, rm) = (derot(le), derot(re), derot(nose), derot(lm_), derot(rm));
    let ied = (re[0] - le[0]).abs().max(1e-3);
    let mouth_mid = [(lm_[0] + rm[0]) / 2.0, (lm_[1] + rm[1]) / 2.0];
    let midline_x = mouth_mid[0] / 2.0; // eye midpoint is the origin
    let yaw = ((nose[0] - midline_x) / (NOSE_DEPTH * ied)).atan();
    let eye_to_mouth = mouth_mid[1].max(1e-3);
    let ratio = nose[1] / eye_to_mouth;
    let pitch = ((FRONTAL_NOSE_RATIO - ratio) * eye_to_mouth / (NOSE_DEPTH * ied)).atan();
    Pose {
        yaw_deg: yaw.to_degrees(),
        pitch_deg: pitch.to_degrees(),
        roll_deg: roll.to_degrees(),
    }
}

/// Mean luminance (0..1) and saturated-pixel share of the face box, sampled on a grid of at most ~128².
pub fn box_light(img: &RgbImage, bbox: &[f32; 4]) -> (f32, f32) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x0 = (bbox[0].floor() as i64).clamp(0, w);
    let y0 = (bbox[1].floor() as i64).clamp(0, h);
    let x1 = ((bbox[0] + bbox[2]).ceil() as i64).clamp(0, w);
    let y1 = ((bbox[1] + bbox[3]).ceil() as i64).clamp(0, h);
    let step = (((x1 - x0).max(y1 - y0)) / 128).max(1) as usize;
    let (mut sum, mut sat, mut n) = (0f64, 0u64, 0u64);
    for y in (y0..y1).step_by(step) {
        for x in (x0..x1).step_by(step) {
            let p = img.get_pixel(x as u32, y as u32).0;
            sum += 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            if p.iter().all(|&v| v >= 250) {
                sat += 1;
            }
            n += 1;
        }
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    (
        (sum / n as f64 / 255.0) as f32,
        (sat as f64 / n as f64) as f32,
    )
}

/// Variance of the 4-neighbour Laplacian over the central part of the aligned crop (the border may hold
/// padding), mapped to 0..1 as v / (v + 100).
pub fn sharpness(face: &AlignedFace) -> f32 {
    let g = &face.grey;
    let (lo, hi) = (16usize, SIDE - 16);
    let (mut sum, mut sum2, mut n) = (0f64, 0f64, 0f64);
    for y in lo..hi {
        for x in lo..hi {
            let c = g[y * SIDE + x];
            let lap = g[(y - 1) * SIDE + x]
                + g[(y + 1) * SIDE + x]
                + g[y * SIDE + x - 1]
                + g[y * SIDE + x + 1]
                - 4.0 * c;
            sum += f64::from(lap);
            sum2 += f64::from(lap) * f64::from(lap);
            n += 1.0;
        }
    }
    let var = (sum2 / n - (sum / n).powi(2)).max(0.0);
    (var / (var + 100.0)) as f32
}

/// The measured metrics of the chosen face.
pub struct Metrics {
    pub faces: usize,
    pub second_face_ratio: f32,
    pub face: Detection,
    pub pose: Pose,
    pub inter_eye_px: f32,
    pub brightness: f32,
    pub glare: f32,
    pub sharpness: f32,
    /// The blended p(mask) of the two mask classifiers; `None` when they were not run (chip photo).
    pub mask: Option<f32>,
}

pub fn no_face_report(kind: ImageKind) -> QualityReport {
    QualityReport {
        result: QualityResult::Fail,
        faces: 0,
        face_width_px: None,
        brightness: None,
        sharpness: None,
        yaw_deg: None,
        pitch_deg: None,
        failed: vec![QualityFailure {
            check: QualityCheck::NoFace,
            kind,
        }],
        inter_eye_px: None,
        roll_deg: None,
        glare: None,
        detection_score: None,
        mask: None,
        flagged: Vec::new(),
    }
}

/// Applies the rules to the metrics.
pub fn evaluate(m: &Metrics, rules: &QualityRules, kind: ImageKind) -> QualityReport {
    let mut failed = Vec::new();
    let mut fail = |check| failed.push(QualityFailure { check, kind });
    if m.faces > 1 && m.second_face_ratio >= rules.multiple_faces_min_ratio {
        fail(QualityCheck::MultipleFaces);
    }
    if m.inter_eye_px < rules.min_inter_eye_px {
        fail(QualityCheck::FaceTooSmall);
    }
    if m.brightness < rules.min_brightness {
        fail(QualityCheck::TooDark);
    }
    if m.brightness > rules.max_brightness {
        fail(QualityCheck::TooBright);
    }
    if m.sharpness < rules.min_sharpness {
        fail(QualityCheck::Blurry);
    }
    if m.pose.yaw_deg.abs() > rules.max_yaw_deg
        || m.pose.pitch_deg.abs() > rules.max_pitch_deg
        || m.pose.roll_deg.abs() > rules.max_roll_deg
    {
        fail(QualityCheck::Pose);
    }
    if m.glare > rules.max_glare {
        fail(QualityCheck::Glare);
    }
    if m.face.score < rules.min_detection_score {
        fail(QualityCheck::LowConfidence);
    }
    let mask_rule = super::mask::MaskRule {
        max_mask: rules.max_mask,
        score_pivot: rules.mask_score_pivot,
        score_weight: rules.mask_score_weight,
    };
    if m.mask.is_some_and(|p| mask_rule.is_masked(p, m.face.score))
        && QualityCheck::Mask.applies_to(kind)
    {
        fail(QualityCheck::Mask);
    }
    let round1 = |v: f32| (v * 10.0).round() / 10.0;
    let round3 = |v: f32| (v * 1000.0).round() / 1000.0;
    QualityReport {
        result: if failed.is_empty() {
            QualityResult::Pass
        } else {
            QualityResult::Fail
        },
        faces: m.faces,
        face_width_px: Some(m.face.bbox[2].max(0.0).round() as u32),
        brightness: Some(round3(m.brightness)),
        sharpness: Some(round3(m.sharpness)),
        yaw_deg: Some(round1(m.pose.yaw_deg)),
        pitch_deg: Some(round1(m.pose.pitch_deg)),
        failed,
        inter_eye_px: Some(round1(m.inter_eye_px)),
        roll_deg: Some(round1(m.pose.roll_deg)),
        glare: Some(round3(m.glare)),
        detection_score: Some(round3(m.face.score)),
        mask: m.mask.map(round3),
        flagged: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::align::TEMPLATE;
    use super::*;

    #[test]
    fn frontal_template_is_frontal() {
        let p = estimate_pose(&TEMPLATE);
        assert!(p.yaw_deg.abs() < 2.0 && p.roll_deg.abs() < 1.0, "{p:?}");
        // The ArcFace template's nose sits higher than YuNet's frontal nose point: reads slightly "up".
        assert!(p.pitch_deg > 0.0 && p.pitch_deg < 10.0, "{p:?}");
        let mut down = TEMPLATE;
        down[2][1] += 10.0;
        assert!(estimate_pose(&down).pitch_deg < -10.0);
    }

    #[test]
    fn nose_shifted_sideways_reads_as_yaw_and_rotation_as_roll() {
        let mut lm = TEMPLATE;
        lm[2][0] += 15.0;
        assert!(estimate_pose(&lm).yaw_deg > 20.0);
        let r = 20f32.to_radians();
        let rot = TEMPLATE.map(|p| {
            [
                r.cos() * p[0] - r.sin() * p[1],
                r.sin() * p[0] + r.cos() * p[1],
            ]
        });
        let p = estimate_pose(&rot);
        assert!(
            (p.roll_deg - 20.0).abs() < 0.5 && p.yaw_deg.abs() < 2.0,
            "{p:?}"
        );
    }

    #[test]
    fn a_middling_mask_probability_fails_only_on_a_face_the_detector_is_unsure_of() {
        let metrics = |p: f32, score: f32| Metrics {
            faces: 1,
            second_face_ratio: 0.0,
            face: Detection {
                bbox: [0.0, 0.0, 200.0, 240.0],
                landmarks: TEMPLATE,
                score,
            },
            pose: estimate_pose(&TEMPLATE),
            inter_eye_px: 80.0,
            brightness: 0.5,
            glare: 0.0,
            sharpness: 0.8,
            mask: Some(p),
        };
        let rules = QualityRules::default();
        let masked =
            |p, score, kind| evaluate(&metrics(p, score), &rules, kind).has(QualityCheck::Mask);
        // Above max_mask: a mask at any score.
        assert!(masked(rules.max_mask + 0.05, 0.95, ImageKind::Selfie));
        // A middling p(mask): not on a confident face, a mask on a face the detector scores low.
        assert!(!masked(0.5, 0.95, ImageKind::Selfie));
        assert!(masked(0.5, 0.8, ImageKind::Selfie));
        // A low p(mask) stays unmasked even at a low score; the chip photo is never checked.
        assert!(!masked(0.01, 0.8, ImageKind::Selfie));
        assert!(!masked(0.99, 0.6, ImageKind::ChipPhoto));
        // Weight 0: the plain threshold of before.
        let plain = QualityRules {
            mask_score_weight: 0.0,
            ..rules.clone()
        };
        assert!(!evaluate(&metrics(0.5, 0.8), &plain, ImageKind::Selfie).has(QualityCheck::Mask));
    }

    #[test]
    fn failure_codes_are_stable() {
        let f = QualityFailure {
            check: QualityCheck::MultipleFaces,
            kind: ImageKind::Selfie,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            "\"selfie_multiple_faces\""
        );
        let f = QualityFailure {
            check: QualityCheck::NoFace,
            kind: ImageKind::ChipPhoto,
        };
        assert_eq!(f.code(), "chip_photo_no_face");
    }
}
