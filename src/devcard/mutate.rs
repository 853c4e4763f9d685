//! Byte-level mutants of a signed `card` JSON for negative tests (card-data.md D.3 step 5).
//!
//! Each mutant has one documented outcome from `card::verify_card`:
//!
//! | mutant | outcome |
//! |---|---|
//! | `flip-photo-bit` | `card_data: invalid_signature` (DF28 covers DF27) |
//! | `swap-card-key` | `card_data: invalid_signature` and `card_present: invalid_signature` |
//! | `wrong-offset` | error `invalid_card_data` in `kenmen.face/DF21` |
//! | `truncated` | error `invalid_card_data` in `kenmen.face` |
//! | `trailing-garbage` | error `invalid_card_data` in `kenmen.face` |
//!
//! Mutants that need the issuing keys are [`super::Defect`]s given at issue time; a signature over another
//! session's nonce is simply `sign` with a different binding (`certificate: invalid_signature`,
//! `card_present: invalid_signature`).

use crate::card::tlv;
use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mutant {
    /// Flip one bit in the middle of the DF27 photo.
    FlipPhotoBit,
    /// Replace DF24 (the card key) with another key of the same size (the municipal key from the CVC).
    SwapCardKey,
    /// Add one to the DF21 offset of DF27.
    WrongOffset,
    /// Cut the face record in half.
    Truncated,
    /// Append bytes that are not 00/FF filler.
    TrailingGarbage,
}

/// Returns a copy of `card` (the JSON `sign` prints) with `mutant` applied to `kenmen.face`.
pub fn mutate(card: &Value, mutant: Mutant) -> Result<Value> {
    let mut out = card.clone();
    let face_b64 = card["kenmen"]["face"]
        .as_str()
        .context("kenmen.face missing")?;
    let mut face = B64.decode(face_b64)?;
    let (record, _) = tlv::read(&face, 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let header = record.raw.len() - record.value.len();
    let record_len = record.raw.len();
    let children = tlv::read_all(record.value, header, 16).map_err(|e| anyhow::anyhow!("{e}"))?;
    let find = |tag: u16| {
        children
            .iter()
            .find(|c| c.tlv.tag == tag)
            .copied()
            .context("element missing")
    };
    match mutant {
        Mutant::FlipPhotoBit => {
            let photo = find(0xDF27)?;
            let value_at = photo.offset + photo.tlv.raw.len() - photo.tlv.value.len();
            let target = value_at + photo.tlv.value.len() / 2;
            *face.get_mut(target).context("photo outside the file")? ^= 0x10;
        }
        Mutant::SwapCardKey => {
            let key = find(0xDF24)?;
            let cvc = B64.decode(
                card["kenmen"]["cvc"]
                    .as_str()
                    .context("kenmen.cvc missing")?,
            )?;
            // The CVC body ends with a 90/91 key of the same size as the card key.
            let (c, _) = tlv::read(&cvc, 0).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (body, _) = tlv::read(c.value, 0).map_err(|e| anyhow::anyhow!("{e}"))?;
            let other = body.value.get(32..).context("CVC body too short")?;
            if other.len() != key.tlv.value.len() {
                bail!("replacement key has a different size");
            }
            let value_at = key.offset + key.tlv.raw.len() - key.tlv.value.len();
            face.get_mut(value_at..value_at + other.len())
                .context("key outside the file")?
                .copy_from_slice(other);
        }
        Mutant::WrongOffset => {
            let table = find(0xDF21)?;
            let value_at = table.offset + table.tlv.raw.len() - table.tlv.value.len();
            // DF27 is the sixth offset after DF22.
            let at = value_at + 2 * 5 + 1;
            let byte = face.get_mut(at).context("offset table too short")?;
            *byte = byte.wrapping_add(1);
        }
        Mutant::Truncated => face.truncate(record_len / 2),
        Mutant::TrailingGarbage => {
            face.truncate(record_len);
            face.extend_from_slice(b"GARBAGE");
        }
    }
    out["kenmen"]["face"] = Value::String(B64.encode(face));
    Ok(out)
}
