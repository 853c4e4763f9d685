//! The test-card generator behind `jpki-face dev card …` (issue 3). Development and tests only.

/// `jpki-face dev card …`
#[derive(Debug, clap::Subcommand)]
pub enum DevCardCommand {
    /// Create a test trust hierarchy in DIR.
    Init { dir: std::path::PathBuf },
}

pub fn run(_cmd: DevCardCommand) -> anyhow::Result<()> {
    anyhow::bail!("the test-card generator is not built yet")
}
