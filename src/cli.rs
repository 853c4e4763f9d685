//! The command line: `serve`, `migrate`, `tenant …`, `face …`, `calibrate`, `dev card …`.

use clap::{Parser, Subcommand};
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
    /// Manage tenants and their API keys.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Face engine tools for operators.
    Face {
        #[command(subcommand)]
        command: crate::face::FaceCommand,
    },
    /// Calibrate score thresholds on a labelled pair list.
    Calibrate(crate::face::CalibrateArgs),
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
        command: crate::devcard::DevCardCommand,
    },
}
