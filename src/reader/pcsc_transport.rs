//! [`Transport`] over PC/SC (pcsc-lite on Linux, the OS service on macOS and Windows): picks a reader,
//! connects to the card in it, and resets the card when done, so no verified PIN outlives the read.

use super::{Transport, TransportError};
use anyhow::{bail, Context, Result};
use std::ffi::CString;

pub struct PcscTransport {
    card: pcsc::Card,
    reader: String,
}

impl std::fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

fn context() -> Result<pcsc::Context> {
    pcsc::Context::establish(pcsc::Scope::User)
        .context("cannot reach the PC/SC service (is pcscd running?)")
}

fn readers(ctx: &pcsc::Context) -> Result<Vec<CString>> {
    match ctx.list_readers_owned() {
        Ok(r) => Ok(r),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(e).context("listing the PC/SC readers"),
    }
}

impl PcscTransport {
    /// The names of the connected readers.
    pub fn list_readers() -> Result<Vec<String>> {
        let ctx = context()?;
        Ok(readers(&ctx)?
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .collect())
    }

    /// Connects to the card in the first reader whose name contains `filter` (any reader without one)
    /// that holds a card.
    pub fn connect(filter: Option<&str>) -> Result<Self> {
        let ctx = context()?;
        let all = readers(&ctx)?;
        let candidates: Vec<&CString> = all
            .iter()
            .filter(|r| filter.is_none_or(|f| r.to_string_lossy().contains(f)))
            .collect();
        if candidates.is_empty() {
            match filter {
                Some(f) => {
                    bail!("no PC/SC reader matches {f:?} (see `jpki-face read --list-readers`)")
                }
                None => bail!("no PC/SC reader is connected"),
            }
        }
        let mut last = None;
        for r in candidates {
            match ctx.connect(r, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
                Ok(card) => {
                    return Ok(Self {
                        card,
                        reader: r.to_string_lossy().into_owned(),
                    })
                }
                Err(e) => last = Some((r.to_string_lossy().into_owned(), e)),
            }
        }
        match last {
            Some((r, pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard)) => {
                bail!("no card in {r}: put the My Number Card on the reader")
            }
            Some((r, e)) => bail!("cannot connect to the card in {r}: {e}"),
            None => bail!("no PC/SC reader is connected"),
        }
    }

    pub fn reader_name(&self) -> &str {
        &self.reader
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        match self.card.transmit(apdu, &mut buf) {
            // A card that leaves the field mid-command can come back as an exchange with no bytes at
            // all (vpcd does this): no status word means the card is gone.
            Ok(resp) if resp.len() < 2 => Err(TransportError::CardRemoved),
            Ok(resp) => Ok(resp.to_vec()),
            Err(
                pcsc::Error::RemovedCard
                | pcsc::Error::ResetCard
                | pcsc::Error::NoSmartcard
                | pcsc::Error::UnpoweredCard
                | pcsc::Error::ReaderUnavailable
                | pcsc::Error::UnknownReader,
            ) => Err(TransportError::CardRemoved),
            Err(e) => Err(TransportError::Other(e.to_string())),
        }
    }
}
// Dropping `pcsc::Card` disconnects with SCARD_RESET_CARD: the card forgets every verified PIN.
