//! The card files' bytes: CVCs, the offset-table records (券面AP EF 0002, 入力補助AP EF 0002/0003) and
//! the small PNGs standing in for the card's rendered text.

use super::pki;
use crate::card::{self, make_key_id, push_tlv, Sex};
use anyhow::{anyhow, Context, Result};
use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::Rng;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};

/// `7F21 { 5F4E issuerId ‖ subjectId ‖ 90/91 key, 5F37 sig }` signed by `root`.
pub(super) fn cvc(
    root: &RsaPrivateKey,
    issuer: (&str, &str),
    subject: (&str, &str),
    subject_key: &rsa::RsaPublicKey,
) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(297);
    body.extend_from_slice(&make_key_id(issuer.0, issuer.1));
    body.extend_from_slice(&make_key_id(subject.0, subject.1));
    body.extend_from_slice(&card::encode_card_key(subject_key));
    let sig = pki::sign_sha256(root, &body)?;
    let mut inner = Vec::new();
    push_tlv(&mut inner, 0x5F4E, &body);
    push_tlv(&mut inner, 0x5F37, &sig);
    let mut out = Vec::new();
    push_tlv(&mut out, 0x7F21, &inner);
    Ok(out)
}

/// Wraps `children` (full TLVs tagged DF22, DF23, …) as `FF20 { DF21 offsets, children }`.
pub(crate) fn offset_record(children: &[Vec<u8>]) -> Vec<u8> {
    let body_len: usize = children.iter().map(Vec::len).sum();
    let df21_len = 3 + 2 * children.len();
    let value_len = df21_len + body_len;
    let header = 2 + if value_len < 0x80 {
        1
    } else if value_len <= 0xFF {
        2
    } else {
        3
    };
    let mut offsets = Vec::with_capacity(2 * children.len());
    let mut at = header + df21_len;
    for c in children {
        offsets.extend_from_slice(&u16::try_from(at).unwrap_or(u16::MAX).to_be_bytes());
        at += c.len();
    }
    let mut value = Vec::with_capacity(value_len);
    push_tlv(&mut value, 0xDF21, &offsets);
    for c in children {
        value.extend_from_slice(c);
    }
    let mut out = Vec::with_capacity(header + value_len);
    push_tlv(&mut out, 0xFF20, &value);
    out
}

fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    push_tlv(&mut v, tag, value);
    v
}

/// Returns the record and the 4-digit security code drawn into DF2A (part of 照合番号B).
#[allow(clippy::too_many_arguments)]
pub(super) fn kenmen_face(
    issuer: &RsaPrivateKey,
    birth: NaiveDate,
    sex: Sex,
    card_key: &RsaPrivateKey,
    photo: &[u8],
    name: &str,
    address: &str,
    expiry: NaiveDate,
    rng: &mut StdRng,
) -> Result<(Vec<u8>, String)> {
    let mut children = vec![
        tlv(0xDF22, birth.format("%Y%m%d").to_string().as_bytes()),
        tlv(0xDF23, &[sex.code()]),
        tlv(0xDF24, &card::encode_card_key(&card_key.to_public_key())),
        tlv(0xDF25, &text_png(name, 256, 32)?),
        tlv(0xDF26, &text_png(address, 512, 48)?),
        tlv(0xDF27, photo),
    ];
    let mut with_offsets = vec![tlv(0xDF21, &[])];
    with_offsets.extend(children.iter().cloned());
    let parsed: Vec<card::tlv::Tlv<'_>> = with_offsets
        .iter()
        .filter_map(|raw| card::tlv::read(raw, 0).ok().map(|(t, _)| t))
        .collect();
    let block = card::three_hash_block(&parsed);
    let sig = issuer.sign(Pkcs1v15Sign::new_unprefixed(), &block)?;
    children.push(tlv(0xDF28, &sig));
    children.push(tlv(0xDF29, expiry.format("%Y%m%d").to_string().as_bytes()));
    let code: String = (0..4)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    children.push(tlv(0xDF2A, &text_png(&code, 24, 12)?));
    let mut out = offset_record(&children);
    // Real EF 0002 files are padded with filler to their allocated size.
    out.resize(out.len().div_ceil(256) * 256, 0xFF);
    Ok((out, code))
}

pub(super) fn hojo_files(
    issuer: &RsaPrivateKey,
    name: &str,
    address: &str,
    birth: NaiveDate,
    sex: Sex,
    rng: &mut StdRng,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let attrs = offset_record(&[
        tlv(0xDF22, name.as_bytes()),
        tlv(0xDF23, address.as_bytes()),
        tlv(0xDF24, birth.format("%Y%m%d").to_string().as_bytes()),
        tlv(0xDF25, &[sex.code()]),
    ]);
    let (record, _) = card::tlv::read(&attrs, 0).map_err(|e| anyhow!("{e}"))?;
    let header = record.raw.len() - record.value.len();
    let df21_len = 3 + 8;
    let digest_input = attrs
        .get(header + df21_len..)
        .context("attributes too short")?;
    // DF31 stands for SHA-256 of the My Number file; here it is random, and the server never compares it.
    let df31: [u8; 32] = rng.gen();
    let mut signed = tlv(0xDF31, &df31);
    signed.extend_from_slice(&tlv(0xDF32, &Sha256::digest(digest_input)));
    let sig = pki::sign_sha256(issuer, &signed)?;
    let mut inner = signed;
    inner.extend_from_slice(&tlv(0xDF33, &sig));
    let mut integrity = tlv(0xFF30, &inner);
    integrity.resize(integrity.len().div_ceil(64) * 64, 0x00);
    let mut attrs = attrs;
    attrs.resize(attrs.len().div_ceil(64) * 64, 0xFF);
    Ok((attrs, integrity))
}

/// A small black-on-white PNG standing in for the card's rendered text (its pattern depends on the text).
fn text_png(text: &str, w: u32, h: u32) -> Result<Vec<u8>> {
    let digest = Sha256::digest(text.as_bytes());
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        let bit = digest[((x / 8 + y / 8) % 32) as usize] >> (x % 8) & 1;
        image::Luma([if bit == 1 && y > 2 && y + 2 < h {
            0
        } else {
            255
        }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}
