//! `jpki-face dev card serve`: the virtual card behind vpcd, the virtual PC/SC reader of
//! vsmartcard-vpcd. The card connects to vpcd (default 127.0.0.1:35963) and answers length-prefixed
//! messages: a 2-byte big-endian length, then a payload; a 1-byte payload is a control code (0 power
//! off, 1 power on, 2 reset, 4 send the ATR), a longer one a command APDU answered with its response.

use super::super::{PersonId, TestHierarchy};
use super::{CardSecrets, VirtualCard, COLLATION_TRIES, SIGN_PASSWORD_TRIES};
use anyhow::{bail, Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `jpki-face dev card serve DIR PERSON [--port N]`
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The hierarchy directory made by `init`.
    pub dir: PathBuf,
    /// The person id printed by `issue` (e.g. `person-0001`).
    pub person: String,
    /// vpcd's port (its default is 35963).
    #[arg(long, default_value_t = 35963)]
    pub port: u16,
    /// vpcd's address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Tries left of the signing password when the card starts (tests: a nearly or fully locked card).
    #[arg(long, default_value_t = SIGN_PASSWORD_TRIES)]
    pub sign_password_tries: u8,
    /// Tries left of 照合番号B (券面AP and 入力補助AP) when the card starts.
    #[arg(long, default_value_t = COLLATION_TRIES)]
    pub collation_b_tries: u8,
    /// How long to keep trying to reach vpcd, in seconds (pcscd may still be starting).
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
    /// Pull the card out after answering this many command APDUs: the process leaves vpcd without
    /// answering the next one, as a card taken off the reader mid-read (tests).
    #[arg(long, value_name = "N")]
    pub pull_after: Option<usize>,
    /// Print each command's header (CLA INS P1 P2 and lengths, never its data) and status word to stderr.
    #[arg(long)]
    pub trace: bool,
}

/// Runs the virtual card until vpcd closes the connection.
pub fn serve(args: ServeArgs) -> Result<()> {
    let h = TestHierarchy::open(&args.dir)?;
    let person = PersonId(args.person.clone());
    let secrets = CardSecrets {
        sign_password_tries: args.sign_password_tries,
        collation_b_tries: args.collation_b_tries,
        ..CardSecrets::default()
    };
    let mut card = VirtualCard::from_person(&h, &person, secrets)?;
    let addr = format!("{}:{}", args.host, args.port);
    let deadline = Instant::now() + Duration::from_secs(args.connect_timeout);
    let mut stream = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                bail!("cannot reach vpcd at {addr} (is pcscd with vsmartcard-vpcd running?): {e}")
            }
        }
    };
    stream.set_nodelay(true).ok();
    eprintln!("virtual card {person} inserted in vpcd at {addr}");
    let mut answered = 0usize;
    loop {
        let mut len = [0u8; 2];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                eprintln!("vpcd closed the connection");
                return Ok(());
            }
            Err(e) => return Err(e).context("reading from vpcd"),
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut msg).context("reading from vpcd")?;
        let reply = match msg.as_slice() {
            [0] | [1] | [2] => {
                card.reset();
                continue;
            }
            [4] => card.atr().to_vec(),
            [_] => continue,
            apdu => {
                if args.pull_after.is_some_and(|n| answered >= n) {
                    eprintln!("card pulled after {answered} commands");
                    return Ok(());
                }
                answered += 1;
                let resp = card.respond(apdu);
                if args.trace {
                    let sw = resp.len().checked_sub(2).map_or(&resp[..], |i| &resp[i..]);
                    eprintln!(
                        "{} -> {} bytes, SW {}",
                        hex::encode_upper(&apdu[..apdu.len().min(4)]),
                        resp.len().saturating_sub(2),
                        hex::encode_upper(sw)
                    );
                }
                resp
            }
        };
        let n = u16::try_from(reply.len()).context("response too long for vpcd")?;
        stream.write_all(&n.to_be_bytes())?;
        stream.write_all(&reply)?;
    }
}
