//! Thin bootstrap: parse the command line, load the configuration, hand over to the library.

use clap::Parser;
#[cfg(feature = "devcard")]
use jpki_face::cli::DevCommand;
use jpki_face::cli::{Cli, Command};
use jpki_face::config::Settings;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Face { command } => jpki_face::face::run_face_command(command, &settings),
        Command::Calibrate(args) => jpki_face::face::run_calibrate(args, &settings),
        #[cfg(feature = "reader")]
        Command::Read(args) => jpki_face::reader::run(args),
        #[cfg(feature = "devcard")]
        Command::Dev {
            command: DevCommand::Card { command },
        } => jpki_face::devcard::run(command),
        other => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(jpki_face::app::run_command(other, settings))
        }
    }
}
