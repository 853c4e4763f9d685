//! Live-capture proof: a random head-pose challenge per session, checked on the server.
//!
//! A session carries 2–4 prompts drawn at random from `face_left`, `face_right`, `face_up`,
//! `face_front` (never the same twice in a row). The app uploads one `liveness_frame` per prompt,
//! in order. The face engine measures each frame (faces found, yaw/pitch from the five landmarks,
//! a template); this module decides, from those measurements only:
//! - the right number of frames, each with exactly one face;
//! - each frame's pose follows its prompt (margins from config);
//! - every frame shows the selfie's person (score at or above a strict threshold);
//! - no frame is a copy of another: byte-identical, or landmarks that did not move (a still photo
//!   re-sent or re-encoded gives the same landmark positions).
//!
//! Pose convention (the image as the camera saved it, not mirrored): `yaw_deg > 0` when the nose
//! is right of the eye midpoint in the image, which is the person turning to *their* left, so
//! `face_left` wants `yaw_deg >= yaw_min_deg`; `pitch_deg > 0` is the face tilted up.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum LivenessMode {
    #[default]
    Off,
    PoseSequence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    FaceLeft,
    FaceRight,
    FaceUp,
    FaceFront,
}

impl Prompt {
    const ALL: [Prompt; 4] = [
        Prompt::FaceLeft,
        Prompt::FaceRight,
        Prompt::FaceUp,
        Prompt::FaceFront,
    ];

    fn instruction(self) -> &'static str {
        match self {
            Prompt::FaceLeft => "turn your face to your left",
            Prompt::FaceRight => "turn your face to your right",
            Prompt::FaceUp => "tilt your face up",
            Prompt::FaceFront => "look straight at the camera",
        }
    }
}

/// The challenge stored with a session and shown to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Challenge {
    /// `off` or `pose_sequence`.
    pub kind: LivenessMode,
    /// What to show the user.
    pub prompt: Option<String>,
    /// The ordered prompts; one `liveness_frame` per prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<Prompt>,
}

impl Challenge {
    pub fn off() -> Self {
        Self {
            kind: LivenessMode::Off,
            prompt: None,
            prompts: Vec::new(),
        }
    }

    /// A fresh random sequence of 2–4 prompts, no prompt twice in a row.
    pub fn pose_sequence<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let len = rng.gen_range(2..=4);
        let mut prompts: Vec<Prompt> = Vec::with_capacity(len);
        while prompts.len() < len {
            let candidates: Vec<Prompt> = Prompt::ALL
                .into_iter()
                .filter(|p| prompts.last() != Some(p))
                .collect();
            if let Some(&p) = candidates.choose(rng) {
                prompts.push(p);
            }
        }
        let prompt = prompts
            .iter()
            .map(|p| p.instruction())
            .collect::<Vec<_>>()
            .join(", then ");
        Self {
            kind: LivenessMode::PoseSequence,
            prompt: Some(format!("Take one photo each time: {prompt}.")),
            prompts,
        }
    }

    pub fn for_mode<R: Rng + ?Sized>(mode: LivenessMode, rng: &mut R) -> Self {
        match mode {
            LivenessMode::Off => Self::off(),
            LivenessMode::PoseSequence => Self::pose_sequence(rng),
        }
    }
}

/// `[liveness]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LivenessConfig {
    /// Default for tenants that set nothing: `off` or `pose_sequence`.
    pub mode: LivenessMode,
    /// |yaw| needed for `face_left` / `face_right`, degrees.
    pub yaw_min_deg: f32,
    /// pitch needed for `face_up`, degrees.
    pub pitch_up_min_deg: f32,
    /// Largest |yaw| and |pitch| that still count as `face_front`, degrees.
    pub front_max_deg: f32,
    /// Landmarks must move by at least this share of the inter-eye distance between two frames.
    pub min_motion: f32,
    /// Largest number of `liveness_frame` parts accepted.
    pub max_frames: usize,
    /// Smallest face score of a frame against the selfie (strict: same person).
    pub same_person_min_score: f32,
}

/// The default of `liveness.max_frames` (the OpenAPI document states it as `maxItems`).
pub const DEFAULT_MAX_FRAMES: usize = 6;

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            mode: LivenessMode::Off,
            yaw_min_deg: 15.0,
            pitch_up_min_deg: 10.0,
            front_max_deg: 12.0,
            min_motion: 0.03,
            max_frames: DEFAULT_MAX_FRAMES,
            same_person_min_score: 0.5,
        }
    }
}

/// What the face engine measured on one frame.
#[derive(Debug, Clone)]
pub struct FrameObservation {
    pub sha256: [u8; 32],
    pub faces: usize,
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    /// The five landmarks, in pixels.
    pub landmarks: [(f32, f32); 5],
    /// Score of this frame's face against the selfie's, if both had a face.
    pub same_person_score: Option<f32>,
}

/// The per-frame evidence kept with the decision (no images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FrameMeasurement {
    pub prompt: Option<Prompt>,
    pub faces: usize,
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub same_person_score: Option<f32>,
    pub pose_ok: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LivenessResult {
    Pass,
    Fail,
    /// The session asked for no challenge.
    Skipped,
    /// Nothing was looked at: an earlier check (the card) already decided the enrollment.
    NotEvaluated,
}

/// The `liveness` check of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LivenessReport {
    pub result: LivenessResult,
    pub kind: LivenessMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<FrameMeasurement>,
    /// Stable failure codes: `liveness_frame_count`, `liveness_no_single_face`, `liveness_wrong_pose`,
    /// `liveness_different_person`, `liveness_duplicate_frame`, `liveness_no_motion`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl LivenessReport {
    pub fn skipped() -> Self {
        Self {
            result: LivenessResult::Skipped,
            kind: LivenessMode::Off,
            frames: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// The frames were not looked at because an earlier check already failed.
    pub fn not_evaluated(kind: LivenessMode) -> Self {
        Self {
            result: LivenessResult::NotEvaluated,
            kind,
            frames: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// The stored challenge could not be read (e.g. written by a newer version): fail closed.
    pub fn unreadable_challenge() -> Self {
        Self {
            result: LivenessResult::Fail,
            kind: LivenessMode::PoseSequence,
            frames: Vec::new(),
            failed: vec!["liveness_challenge_unreadable".into()],
        }
    }

    /// Passed or not asked for; a failed or unevaluated check is not a pass.
    pub fn passed(&self) -> bool {
        matches!(self.result, LivenessResult::Pass | LivenessResult::Skipped)
    }
}

fn pose_matches(prompt: Prompt, yaw: f32, pitch: f32, cfg: &LivenessConfig) -> bool {
    match prompt {
        Prompt::FaceLeft => yaw >= cfg.yaw_min_deg,
        Prompt::FaceRight => yaw <= -cfg.yaw_min_deg,
        Prompt::FaceUp => pitch >= cfg.pitch_up_min_deg && yaw.abs() < cfg.yaw_min_deg,
        Prompt::FaceFront => yaw.abs() <= cfg.front_max_deg && pitch.abs() <= cfg.front_max_deg,
    }
}

/// Largest landmark displacement between two frames, relative to the inter-eye distance.
fn motion(a: &FrameObservation, b: &FrameObservation) -> f32 {
    let eye = |o: &FrameObservation| {
        let (l, r) = (o.landmarks[0], o.landmarks[1]);
        ((l.0 - r.0).powi(2) + (l.1 - r.1).powi(2)).sqrt().max(1.0)
    };
    let scale = (eye(a) + eye(b)) / 2.0;
    a.landmarks
        .iter()
        .zip(b.landmarks.iter())
        .map(|(p, q)| ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt() / scale)
        .fold(0.0, f32::max)
}

/// Decides the challenge from the frames' measurements.
pub fn check(
    challenge: &Challenge,
    frames: &[FrameObservation],
    cfg: &LivenessConfig,
) -> LivenessReport {
    if challenge.kind == LivenessMode::Off {
        return LivenessReport::skipped();
    }
    let mut failed: Vec<&'static str> = Vec::new();
    let mut fail = |code: &'static str| {
        if !failed.contains(&code) {
            failed.push(code);
        }
    };
    if frames.len() != challenge.prompts.len() {
        fail("liveness_frame_count");
    }
    let mut measurements = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let prompt = challenge.prompts.get(i).copied();
        let single = frame.faces == 1;
        if !single {
            fail("liveness_no_single_face");
        }
        let pose_ok =
            single && prompt.is_some_and(|p| pose_matches(p, frame.yaw_deg, frame.pitch_deg, cfg));
        if single && prompt.is_some() && !pose_ok {
            fail("liveness_wrong_pose");
        }
        if single
            && frame
                .same_person_score
                .is_none_or(|s| s < cfg.same_person_min_score)
        {
            fail("liveness_different_person");
        }
        for earlier in &frames[..i] {
            if earlier.sha256 == frame.sha256 {
                fail("liveness_duplicate_frame");
            } else if single && earlier.faces == 1 && motion(earlier, frame) < cfg.min_motion {
                fail("liveness_no_motion");
            }
        }
        measurements.push(FrameMeasurement {
            prompt,
            faces: frame.faces,
            yaw_deg: frame.yaw_deg,
            pitch_deg: frame.pitch_deg,
            same_person_score: frame.same_person_score,
            pose_ok,
        });
    }
    LivenessReport {
        result: if failed.is_empty() {
            LivenessResult::Pass
        } else {
            LivenessResult::Fail
        },
        kind: challenge.kind,
        frames: measurements,
        failed: failed.into_iter().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn frame(tag: u8, yaw: f32, pitch: f32, shift: f32) -> FrameObservation {
        FrameObservation {
            sha256: [tag; 32],
            faces: 1,
            yaw_deg: yaw,
            pitch_deg: pitch,
            landmarks: [
                (40.0 + shift, 50.0),
                (70.0 + shift, 50.0),
                (55.0 + shift * 2.0, 65.0),
                (45.0, 80.0),
                (65.0, 80.0),
            ],
            same_person_score: Some(0.8),
        }
    }

    fn challenge(prompts: &[Prompt]) -> Challenge {
        Challenge {
            kind: LivenessMode::PoseSequence,
            prompt: None,
            prompts: prompts.to_vec(),
        }
    }

    #[test]
    fn random_challenges_have_2_to_4_prompts_never_repeated_in_a_row() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut lengths = std::collections::HashSet::new();
        for _ in 0..500 {
            let c = Challenge::pose_sequence(&mut rng);
            assert!((2..=4).contains(&c.prompts.len()));
            assert!(c.prompts.windows(2).all(|w| w[0] != w[1]));
            lengths.insert(c.prompts.len());
        }
        assert_eq!(lengths.len(), 3, "all lengths occur");
    }

    #[test]
    fn the_right_order_passes_and_the_wrong_order_fails() {
        let c = challenge(&[Prompt::FaceLeft, Prompt::FaceRight, Prompt::FaceFront]);
        let cfg = LivenessConfig::default();
        let good = [
            frame(1, 25.0, 0.0, 0.0),
            frame(2, -25.0, 0.0, 8.0),
            frame(3, 1.0, 2.0, 3.0),
        ];
        assert_eq!(check(&c, &good, &cfg).result, LivenessResult::Pass);
        let swapped = [
            frame(2, -25.0, 0.0, 8.0),
            frame(1, 25.0, 0.0, 0.0),
            frame(3, 1.0, 2.0, 3.0),
        ];
        let report = check(&c, &swapped, &cfg);
        assert_eq!(report.result, LivenessResult::Fail);
        assert_eq!(report.failed, vec!["liveness_wrong_pose"]);
    }

    #[test]
    fn copies_strangers_and_missing_frames_fail_with_their_codes() {
        let c = challenge(&[Prompt::FaceLeft, Prompt::FaceRight]);
        let cfg = LivenessConfig::default();
        let same = frame(1, 25.0, 0.0, 0.0);
        assert!(check(&c, &[same.clone(), same.clone()], &cfg)
            .failed
            .contains(&"liveness_duplicate_frame".to_string()));
        let mut reencoded = same.clone();
        reencoded.sha256 = [9; 32];
        assert!(check(&c, &[same.clone(), reencoded], &cfg)
            .failed
            .contains(&"liveness_no_motion".to_string()));
        let mut stranger = frame(2, -25.0, 0.0, 8.0);
        stranger.same_person_score = Some(0.1);
        assert_eq!(
            check(&c, &[same.clone(), stranger], &cfg).failed,
            vec!["liveness_different_person"]
        );
        assert_eq!(
            check(&c, std::slice::from_ref(&same), &cfg).failed,
            vec!["liveness_frame_count"]
        );
        let mut none = frame(3, 0.0, 0.0, 4.0);
        none.faces = 0;
        assert!(check(&c, &[same, none], &cfg)
            .failed
            .contains(&"liveness_no_single_face".to_string()));
    }

    #[test]
    fn off_skips() {
        assert_eq!(
            check(&Challenge::off(), &[], &LivenessConfig::default()).result,
            LivenessResult::Skipped
        );
    }
}
