//! The command line: `serve`, `migrate`, `tenant …`, `face …`, `calibrate`, `dev card …`. This module
//! holds the grammar (the clap types) and the one dispatch, [`run`]; each command is in its own file.
//! `main.rs` only parses and reports the exit code.

mod calibrate;
mod calibrate_1n;
#[cfg(feature = "devcard")]
mod dev;
mod face;
mod mask_eval;
mod operator;
mod serve;
mod tenant;

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::future::Future;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "jpki-face", version, about = "Self-hosted eKYC with the My Number Card: card + JPKI verification and face matching", long_about = None)]
pub struct Cli {
    /// Configuration file layered over the compiled-in defaults (default: config/local.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (applies pending migrations first).
    Serve {
        /// Listen address, overriding `server.bind`.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Create a demo tenant at start-up and print its API key (used by `make run`).
        #[arg(long)]
        demo_tenant: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Console operators (docs/console.md).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Manage tenants and their API keys.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Face engine tools for operators.
    Face {
        #[command(subcommand)]
        command: FaceCommand,
    },
    /// Calibrate score thresholds on a labelled pair list.
    Calibrate(CalibrateArgs),
    /// Read a My Number Card over PC/SC for a session, or enroll with it (docs/reader.md).
    #[cfg(feature = "reader")]
    Read(crate::reader::ReadArgs),
    /// Development tools (test cards). Never needed in production.
    #[cfg(feature = "devcard")]
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its id and a new API key (shown once; only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Live-capture challenge for this tenant's sessions (default: `liveness.mode` of the config).
        #[arg(long, value_enum)]
        liveness: Option<crate::liveness::LivenessMode>,
        /// What a masked selfie does (default: reject; docs/face.md, "Mask check").
        #[arg(long, value_enum)]
        selfie_mask: Option<crate::face::MaskMode>,
        /// Review (docs/api.md, "Review"): a face score below the enrollment threshold but at or
        /// above the threshold of this FMR (e.g. 1e-3) goes to a person instead of being rejected.
        #[arg(long)]
        review_band_fmr: Option<f64>,
        /// A signed `unknown` from J-LIS at enrollment goes to a person instead of being rejected.
        #[arg(long)]
        review_on_status_unknown: bool,
        /// An approve needs two different reviewers.
        #[arg(long)]
        review_four_eyes: bool,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator; the password is read from the first line of standard input, and the TOTP
    /// secret (base32) and its otpauth:// URI are printed once.
    Create {
        /// The tenant id (`ten_…`).
        #[arg(long)]
        tenant: String,
        /// The login name: letters, digits, '.', '_', '-' (at most 64).
        #[arg(long)]
        login: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// One JSON object instead of tab-separated lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Viewer,
    Reviewer,
    Admin,
}

impl From<RoleArg> for crate::domain::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Viewer => crate::domain::Role::Viewer,
            RoleArg::Reviewer => crate::domain::Role::Reviewer,
            RoleArg::Admin => crate::domain::Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue an additional API key for a tenant.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by its id (`key_…`) or by the key itself.
    Revoke {
        /// The key id printed at creation, or the full `jfk_live_…` key.
        key: String,
    },
}

#[cfg(feature = "devcard")]
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// The test-card generator.
    Card {
        #[command(subcommand)]
        command: DevCardCommand,
    },
}

/// `jpki-face face …`
#[derive(Debug, clap::Subcommand)]
pub enum FaceCommand {
    /// Compare the faces in two image files (JPEG/PNG/WebP/JP2) and print JSON.
    Compare { a: PathBuf, b: PathBuf },
    /// Measure the selfie mask check on a labelled folder: detection rate, false-alarm rate and a
    /// threshold table.
    MaskEval(mask_eval::MaskEvalArgs),
    /// Make synthetic masked faces (a mask texture pasted along the landmarks) from a folder of photos.
    MaskSynth(mask_eval::MaskSynthArgs),
}

/// `jpki-face calibrate …`
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Folder of the images: one sub-folder per identity (`<identity>/<file>`), or the folder the
    /// `--pairs` paths are relative to.
    #[arg(long)]
    pub images: PathBuf,
    /// Only score the pairs of this list (`a<TAB>b<TAB>same`, one header line). Without it every pair of
    /// images is scored: same folder = genuine, different folders = impostor.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Where the calibration table, the DET plot and the report are written.
    #[arg(long)]
    pub out: PathBuf,
    /// How the table and the report name the data set.
    #[arg(long, default_value = "LFW-gray + web photos")]
    pub data: String,
    /// 1:N mode (docs/accuracy.md, "1:N identification"): a folder of gallery filler, one photo per
    /// identity (`<identity>.<ext>`), none of them in `--images`. The gallery is one photo of each
    /// enrolled identity of `--images` plus all of these; mates are the enrolled identities' other
    /// photos, non-mates the held-out identities' photos and each distractor against the others.
    #[arg(long, conflicts_with = "pairs")]
    pub distractors: Option<PathBuf>,
    /// 1:N mode: every N-th identity of `--images` (sorted by name) is held out of the gallery.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..))]
    pub holdout_every: u32,
    /// 1:N mode: a file of templates from an earlier run on the same images and model (written if
    /// missing, read and extended if present), so a re-run skips the face engine. Keep it outside the
    /// repository: it holds biometric templates of the research photos.
    #[arg(long)]
    pub template_cache: Option<PathBuf>,
    /// 1:N mode: pairs of identity names that show the same person (`a<TAB>b<TAB>why`, one header
    /// line), e.g. aliases in the data set; such a pair is neither a mate nor a non-mate comparison.
    #[arg(long)]
    pub same_person: Option<PathBuf>,
}

/// `jpki-face dev card …`
#[cfg(feature = "devcard")]
#[derive(Debug, clap::Subcommand)]
pub enum DevCardCommand {
    /// Create a test trust hierarchy in DIR (set `card.trust_dir` to DIR/trust).
    Init {
        /// Directory for the hierarchy (created if missing; reopened if it holds one with the same seed).
        dir: PathBuf,
        /// Seed for every key and serial (same seed, same keys).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Issue a test card; prints the person id (a folder under DIR).
    Issue {
        /// The hierarchy directory made by `init`.
        dir: PathBuf,
        /// Face photo, JPEG or PNG; encoded as JPEG 2000 into DF27.
        #[arg(
            long,
            required_unless_present = "photo_raw",
            conflicts_with = "photo_raw"
        )]
        photo: Option<PathBuf>,
        /// A file whose bytes go into DF27 exactly as they are (no decoding, no re-encoding), signed like
        /// any photo: for tests with crafted or hostile chip photos.
        #[arg(long, value_name = "FILE")]
        photo_raw: Option<PathBuf>,
        /// Family and given name; a space between them becomes U+3000 as on the card.
        #[arg(long, default_value = "山田 太郎")]
        name: String,
        /// YYYY-MM-DD
        #[arg(long, default_value = "1990-01-02")]
        birth_date: String,
        #[arg(long, value_enum, default_value = "male")]
        sex: SexArg,
        #[arg(long, default_value = "東京都千代田区霞が関２－１－２")]
        address: String,
        /// Also write the 入力補助AP attribute, integrity and CVC files.
        #[arg(long)]
        with_hojo: bool,
        /// Seed for this person's keys (default: the person number).
        #[arg(long)]
        seed: Option<u64>,
        /// Issue a deliberately defective card.
        #[arg(long, value_enum)]
        defect: Option<crate::devcard::Defect>,
        /// Encode the chip photo in greyscale.
        #[arg(long)]
        greyscale: bool,
    },
    /// Sign a session's challenge; prints the `card` JSON of the enrollment API.
    Sign {
        /// The hierarchy directory made by `init`.
        dir: PathBuf,
        /// The person id printed by `issue` (e.g. `person-0001`).
        person: String,
        #[arg(long)]
        session_id: String,
        /// The session nonce as the API returns it (base64url of 32 bytes).
        #[arg(long)]
        nonce: String,
        /// Apply a byte-level mutant to the output (negative tests).
        #[arg(long, value_enum)]
        mutant: Option<crate::devcard::Mutant>,
    },
    /// Revoke a person's certificate: updates index.txt and re-issues the CRL.
    Revoke {
        /// The hierarchy directory made by `init`.
        dir: PathBuf,
        /// The person id printed by `issue` (e.g. `person-0001`).
        person: String,
        #[arg(long, value_enum)]
        reason: ReasonArg,
    },
    /// Serve a person's card as a virtual My Number Card behind vpcd (PC/SC), until vpcd goes away.
    Serve(crate::devcard::vcard::ServeArgs),
}

#[cfg(feature = "devcard")]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SexArg {
    Male,
    Female,
    NotKnown,
    NotApplicable,
}

/// RFC 5280 reasons with OpenSSL's names.
#[cfg(feature = "devcard")]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "verbatim")]
pub enum ReasonArg {
    #[value(name = "unspecified")]
    Unspecified,
    #[value(name = "keyCompromise")]
    KeyCompromise,
    #[value(name = "CACompromise")]
    CaCompromise,
    #[value(name = "affiliationChanged")]
    AffiliationChanged,
    #[value(name = "superseded")]
    Superseded,
    #[value(name = "cessationOfOperation")]
    CessationOfOperation,
    #[value(name = "certificateHold")]
    CertificateHold,
}

#[cfg(feature = "devcard")]
impl From<ReasonArg> for crate::devcard::CrlReason {
    fn from(r: ReasonArg) -> Self {
        use crate::devcard::CrlReason;
        match r {
            ReasonArg::Unspecified => CrlReason::Unspecified,
            ReasonArg::KeyCompromise => CrlReason::KeyCompromise,
            ReasonArg::CaCompromise => CrlReason::CaCompromise,
            ReasonArg::AffiliationChanged => CrlReason::AffiliationChanged,
            ReasonArg::Superseded => CrlReason::Superseded,
            ReasonArg::CessationOfOperation => CrlReason::CessationOfOperation,
            ReasonArg::CertificateHold => CrlReason::CertificateHold,
        }
    }
}

/// Runs one command line. Settings are loaded first, for every command; the commands that use the
/// database run on a Tokio runtime with logging, the face tools and the test-card tool on this thread.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { bind, demo_tenant } => {
            on_runtime(settings, |s| serve::serve(s, bind, demo_tenant))
        }
        Command::Migrate => on_runtime(settings, serve::migrate),
        Command::Tenant { command } => on_runtime(settings, |s| tenant::run(command, s)),
        Command::Operator { command } => on_runtime(settings, |s| operator::run(command, s)),
        Command::Face {
            command: FaceCommand::MaskEval(args),
        } => mask_eval::eval(args, &settings.face),
        Command::Face {
            command: FaceCommand::MaskSynth(args),
        } => mask_eval::synth(args, &settings.face),
        Command::Face { command } => face::run(command, &settings.face),
        Command::Calibrate(args) if args.distractors.is_some() => {
            calibrate_1n::run(args, &settings.face)
        }
        Command::Calibrate(args) => calibrate::run(args, &settings.face),
        #[cfg(feature = "reader")]
        Command::Read(args) => crate::reader::run(args),
        #[cfg(feature = "devcard")]
        Command::Dev {
            command: DevCommand::Card { command },
        } => dev::run(command),
    }
}

/// Runs an async command on a multi-threaded runtime, logging as configured.
fn on_runtime<F, Fut>(settings: Settings, command: F) -> anyhow::Result<()>
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        crate::telemetry::init_logging(&settings.log);
        command(settings).await
    })
}

/// Starts the engine and waits until it is warm (the CLI tools need every worker).
pub(crate) fn start_engine(
    cfg: &crate::face::FaceConfig,
) -> anyhow::Result<crate::face::FaceEngine> {
    use anyhow::Context;
    let engine = crate::face::FaceEngine::start(cfg).context("starting the face engine")?;
    if !engine.wait_ready(std::time::Duration::from_secs(120)) {
        anyhow::bail!("the face engine did not warm up within 120 s");
    }
    Ok(engine)
}
