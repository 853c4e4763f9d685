//! Application assembly: build the state, bind the listener, run until shutdown.

use crate::cli::Command;
use crate::config::Settings;

pub async fn run_command(_command: Command, _settings: Settings) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
