//! Image decoding with limits: the format is sniffed from the bytes (never the client's content type),
//! the pixel count is read from the header and refused above the limit before any pixel is decoded,
//! EXIF orientation is applied and greyscale becomes three channels.

use image::{DynamicImage, ImageDecoder, ImageFormat, RgbImage};
use std::io::Cursor;

/// What the bytes are, from their magic numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Jpeg,
    Png,
    WebP,
    /// JPEG 2000 in a JP2 container.
    Jp2,
    /// A raw JPEG 2000 codestream.
    J2k,
}

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported media type: {0}")]
    Unsupported(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("undecodable: {0}")]
    Undecodable(String),
}

const JP2_MAGIC: [u8; 12] = [
    0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
];

pub fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Sniffed::Jpeg)
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(Sniffed::Png)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some(Sniffed::WebP)
    } else if bytes.starts_with(&JP2_MAGIC) {
        Some(Sniffed::Jp2)
    } else if bytes.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        Some(Sniffed::J2k)
    } else {
        None
    }
}

/// Decodes a JPEG, PNG or WebP after checking its header against `max_pixels`; applies EXIF orientation.
pub fn decode_raster(
    bytes: &[u8],
    format: Sniffed,
    max_pixels: u64,
) -> Result<RgbImage, DecodeError> {
    let fmt = match format {
        Sniffed::Jpeg => ImageFormat::Jpeg,
        Sniffed::Png => ImageFormat::Png,
        Sniffed::WebP => ImageFormat::WebP,
        Sniffed::Jp2 | Sniffed::J2k => return decode_jpeg2000(bytes, max_pixels),
    };
    let undecodable = |e: image::ImageError| DecodeError::Undecodable(e.to_string());
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), fmt);
    // Belt and braces: image's own allocation limit, in case a header lies about what follows.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(1 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, max_pixels)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

fn check_pixels(w: u32, h: u32, max_pixels: u64) -> Result<(), DecodeError> {
    if w == 0 || h == 0 {
        return Err(DecodeError::Undecodable("image has no pixels".into()));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(DecodeError::TooLarge(format!(
            "{w}×{h} = {pixels} pixels exceeds the limit of {max_pixels}"
        )));
    }
    Ok(())
}

/// Decodes JP2 / J2K with the pure-Rust OpenJPEG port, after reading the size from the SIZ marker.
pub fn decode_jpeg2000(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let (w, h) = jpeg2000_dimensions(bytes)
        .ok_or_else(|| DecodeError::Undecodable("no JPEG 2000 image header (SIZ) found".into()))?;
    check_pixels(w, h, max_pixels)?;
    let j2k =
        jpeg2k::Image::from_bytes(bytes).map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    // The decoder's own view of the size must agree with the header we checked.
    check_pixels(j2k.width(), j2k.height(), max_pixels)?;
    let img = DynamicImage::try_from(&j2k).map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    Ok(img.into_rgb8())
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Width and height from the codestream's SIZ marker (in a JP2 the codestream is the `jp2c` box).
pub fn jpeg2000_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let cs = if bytes.starts_with(&JP2_MAGIC) {
        find_jp2c(bytes)?
    } else {
        bytes
    };
    // SOC (FF4F), SIZ (FF51), Lsiz(2), Rsiz(2), Xsiz, Ysiz, XOsiz, YOsiz.
    if cs.get(0..4)? != [0xFF, 0x4F, 0xFF, 0x51] {
        return None;
    }
    let (xsiz, ysiz, xo, yo) = (
        be_u32(cs, 8)?,
        be_u32(cs, 12)?,
        be_u32(cs, 16)?,
        be_u32(cs, 20)?,
    );
    Some((xsiz.checked_sub(xo)?, ysiz.checked_sub(yo)?))
}

fn find_jp2c(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 0usize;
    while at.checked_add(8)? <= bytes.len() {
        let len = be_u32(bytes, at)? as u64;
        let kind = bytes.get(at + 4..at + 8)?;
        let (header, body_len) = match len {
            0 => (8usize, (bytes.len() - at - 8) as u64),
            1 => {
                let hi = u64::from(be_u32(bytes, at + 8)?);
                let lo = u64::from(be_u32(bytes, at + 12)?);
                (16, ((hi << 32) | lo).checked_sub(16)?)
            }
            n => (8, n.checked_sub(8)?),
        };
        let start = at.checked_add(header)?;
        let end = start
            .checked_add(usize::try_from(body_len).ok()?)?
            .min(bytes.len());
        if kind == b"jp2c" {
            return bytes.get(start..end);
        }
        at = end;
        if len == 0 {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_not_by_name() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Sniffed::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Sniffed::WebP));
        assert_eq!(sniff(&JP2_MAGIC), Some(Sniffed::Jp2));
        assert_eq!(sniff(&[0xFF, 0x4F, 0xFF, 0x51, 0]), Some(Sniffed::J2k));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn j2k_header_claiming_huge_size_is_refused_before_decoding() {
        let mut cs = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0];
        cs.extend_from_slice(&100_000u32.to_be_bytes());
        cs.extend_from_slice(&100_000u32.to_be_bytes());
        cs.extend_from_slice(&[0; 8]);
        assert_eq!(jpeg2000_dimensions(&cs), Some((100_000, 100_000)));
        assert!(matches!(
            decode_jpeg2000(&cs, 4_000_000),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn truncated_jpeg2000_never_panics() {
        let mut jp2 = JP2_MAGIC.to_vec();
        for cut in 0..40 {
            jp2.truncate(12);
            jp2.extend(std::iter::repeat_n(0xFFu8, cut));
            let _ = jpeg2000_dimensions(&jp2);
            let _ = decode_jpeg2000(&jp2, 1000);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = jpeg2000_dimensions(&bytes);
            if let Some(f) = sniff(&bytes) {
                let _ = decode_raster(&bytes, f, 1 << 20);
            }
        }

        #[test]
        fn mutated_headers_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..256), which in 0usize..4) {
            let magic: &[u8] = match which {
                0 => &[0xFF, 0xD8, 0xFF],
                1 => &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
                2 => &JP2_MAGIC,
                _ => &[0xFF, 0x4F, 0xFF, 0x51],
            };
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&tail);
            if let Some(f) = sniff(&bytes) {
                let _ = decode_raster(&bytes, f, 1 << 20);
            }
        }
    }
}
