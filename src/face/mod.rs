//! The face engine: decoding, YuNet + SFace on ONNX Runtime, quality, templates, worker pool (issue 5).

/// Configuration of the face engine (`[face]` in the config).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct FaceConfig {}

/// `jpki-face face …`
#[derive(Debug, clap::Subcommand)]
pub enum FaceCommand {
    /// Compare the faces in two image files (JPEG/PNG/WebP/JP2) and print JSON.
    Compare { a: std::path::PathBuf, b: std::path::PathBuf },
}

/// `jpki-face calibrate …`
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Labelled pair list: `a<TAB>b<TAB>same`, one header line.
    #[arg(long)]
    pub pairs: std::path::PathBuf,
    /// Folder the pair paths are relative to.
    #[arg(long)]
    pub images: std::path::PathBuf,
    /// Where the calibration table and the DET plot are written.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

pub fn run_face_command(_cmd: FaceCommand, _settings: &crate::config::Settings) -> anyhow::Result<()> {
    anyhow::bail!("the face engine is not built yet")
}

pub fn run_calibrate(_args: CalibrateArgs, _settings: &crate::config::Settings) -> anyhow::Result<()> {
    anyhow::bail!("the face engine is not built yet")
}
