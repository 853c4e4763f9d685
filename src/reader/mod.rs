//! The reference card reader (issue 24): `jpki-face read` reads a My Number Card over PC/SC, signs a
//! session's challenge on the card, and writes the `card` JSON of api.md (or enrolls it with a selfie).
//!
//! The APDU sequence ([`sequence`]) is written against [`Transport`], so it runs unchanged on a PC/SC
//! reader ([`pcsc_transport`]) and, in tests, directly on the virtual card. It never reads the My Number
//! files, never sends 照合番号A, checks every retry counter before it tries a PIN and never retries one.
//! docs/reader.md describes the sequence byte by byte for app developers.

mod command;
mod pcsc_transport;
pub mod sequence;

pub use command::{run, ReadArgs};
pub use pcsc_transport::PcscTransport;
pub use sequence::{preflight, read_card, CardData, Credentials, Preflight, ReadError};

/// Why a command APDU got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The card left the field (or the reader) during the exchange.
    #[error("the card was removed")]
    CardRemoved,
    #[error("reader error: {0}")]
    Other(String),
}

/// One channel to a card: a command APDU in, the response APDU (data ‖ SW1 SW2) out.
pub trait Transport {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError>;
}
