//! Image decoding with limits: the format is sniffed from the bytes (never the client's content type),
//! the structure is walked to the end marker (a truncated image is refused, never decoded as a partial
//! picture), the pixel count and a memory budget are checked from the header before any pixel is decoded,
//! EXIF orientation is applied and greyscale becomes three channels. JPEG 2000 passes our own strict gate
//! ([`super::jp2gate`]) before the decoder sees a byte.
//!
//! The memory budget: a raster decode may hold the decoder's native buffer (its colour type at the
//! header's size) and one 8-bit RGB copy (the conversion or the orientation); together they must stay
//! within [`budget_bytes`] of the pixel limit, i.e. twice an 8-bit RGB picture at the limit. A 16-bit RGBA
//! PNG at the pixel limit needs 8 + 3 bytes a pixel and is refused before decoding. JPEG 2000 is bounded
//! by the gate (side, components, tiles, levels), which bounds OpenJPEG's sample buffers.

use super::jp2gate::{self, GateLimits, JP2_SIGNATURE};
use super::jpeg_reduced::{self, Frame};
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
    /// The data ends before the image does (a JPEG cut in half, a PNG without IEND, …).
    #[error("truncated: {0}")]
    Truncated(String),
    /// The JPEG 2000 gate refused the chip photo; the detail names the rule.
    #[error("{0}")]
    Refused(jp2gate::GateError),
}

/// The limits one decode runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width × height, checked from the header before decoding.
    pub max_pixels: u64,
    /// The JPEG 2000 gate's bounds (used for JP2/J2K only).
    pub jp2: GateLimits,
}

impl DecodeLimits {
    pub fn new(max_pixels: u64) -> Self {
        Self {
            max_pixels,
            jp2: GateLimits::default(),
        }
    }
}

/// The most memory one raster decode may use: twice an 8-bit RGB picture at the pixel limit, plus 1 MiB.
pub fn budget_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(6).saturating_add(1 << 20)
}

pub fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Sniffed::Jpeg)
    } else if bytes.starts_with(&PNG_SIGNATURE) {
        Some(Sniffed::Png)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some(Sniffed::WebP)
    } else if bytes.starts_with(&JP2_SIGNATURE) {
        Some(Sniffed::Jp2)
    } else if bytes.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        Some(Sniffed::J2k)
    } else {
        None
    }
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Decodes a JPEG, PNG or WebP (JPEG 2000: see [`decode_jpeg2000`]) within `limits`; applies EXIF
/// orientation.
pub fn decode_raster(
    bytes: &[u8],
    format: Sniffed,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    decode_photo(bytes, format, limits, None).map(|d| d.image)
}

/// A decoded photo and how many original pixels one of its pixels spans (1 unless a large JPEG was
/// decoded at a reduced DCT scale).
pub struct Decoded {
    pub image: RgbImage,
    pub px_scale: f32,
}

/// [`decode_raster`], except that a large baseline JPEG is decoded at 1/2, 1/4 or 1/8 of its size when
/// `reduce_for` (the longer side the caller needs) allows it: see [`super::jpeg_reduced`]. Orientation
/// is applied after the reduction; `px_scale` maps the result's pixels back to the original's.
pub fn decode_photo(
    bytes: &[u8],
    format: Sniffed,
    limits: &DecodeLimits,
    reduce_for: Option<u32>,
) -> Result<Decoded, DecodeError> {
    let mut frame = None;
    let fmt = match format {
        Sniffed::Jpeg => {
            frame = jpeg_frame(bytes)?;
            ImageFormat::Jpeg
        }
        Sniffed::Png => {
            check_png_complete(bytes)?;
            ImageFormat::Png
        }
        Sniffed::WebP => {
            check_riff_complete(bytes)?;
            ImageFormat::WebP
        }
        Sniffed::Jp2 | Sniffed::J2k => {
            return decode_jpeg2000(bytes, limits).map(|image| Decoded {
                image,
                px_scale: 1.0,
            })
        }
    };
    let undecodable = |e: image::ImageError| DecodeError::Undecodable(e.to_string());
    let max_pixels = limits.max_pixels;
    let budget = budget_bytes(max_pixels);
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), fmt);
    // image's own limits, for the decoders that honour them.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(budget);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, max_pixels)?;
    // Our budget, from the header: the native buffer plus one RGB copy.
    let need = decoder
        .total_bytes()
        .saturating_add(u64::from(w) * u64::from(h) * 3);
    if need > budget {
        return Err(DecodeError::TooLarge(format!(
            "a {w}×{h} {:?} image needs {need} bytes to decode, over the budget of {budget}",
            decoder.color_type()
        )));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let reduced = match (frame, reduce_for) {
        (Some(f), Some(want)) if f.reducible() && (f.width, f.height) == (w, h) => {
            jpeg_reduced::numerator(w, h, want)
        }
        _ => None,
    };
    let (img, px_scale) = match reduced {
        Some(n) => {
            drop(decoder);
            (
                jpeg_reduced::decode(bytes, n)
                    .map_err(|e| DecodeError::Undecodable(e.to_string()))?,
                8.0 / f32::from(n),
            )
        }
        None => (
            DynamicImage::from_decoder(decoder)
                .map_err(undecodable)?
                .into_rgb8(),
            1.0,
        ),
    };
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Ok(Decoded {
        image: img.into_rgb8(),
        px_scale,
    })
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

/// Walks the JPEG's segments and entropy-coded data to EOI without decoding; data after EOI is allowed
/// (camera trailers), an image that ends before EOI is refused.
pub fn check_jpeg_complete(b: &[u8]) -> Result<(), DecodeError> {
    walk_jpeg(b, |_, _| {})
}

/// [`check_jpeg_complete`], and what the frame header and the scans say: `None` for a file without
/// exactly one SOF segment (left to the full decoder, which refuses or copes).
pub fn jpeg_frame(b: &[u8]) -> Result<Option<Frame>, DecodeError> {
    let (mut frame, mut sofs, mut scans) = (None, 0usize, 0usize);
    walk_jpeg(b, |marker, payload| match marker {
        0xDA => scans += 1,
        0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
            sofs += 1;
            if let [precision, h0, h1, w0, w1, components, ..] = *payload {
                frame = Some(Frame {
                    sof: marker,
                    precision,
                    width: u32::from(u16::from_be_bytes([w0, w1])),
                    height: u32::from(u16::from_be_bytes([h0, h1])),
                    components,
                    scans: 0,
                });
            }
        }
        _ => {}
    })?;
    Ok(frame.filter(|_| sofs == 1).map(|f| Frame { scans, ..f }))
}

/// The segment walk behind both: `seen(marker, payload)` for every segment that has a length.
fn walk_jpeg(b: &[u8], mut seen: impl FnMut(u8, &[u8])) -> Result<(), DecodeError> {
    let truncated =
        || DecodeError::Truncated("the JPEG ends before its end-of-image marker".into());
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(DecodeError::Undecodable(
            "no JPEG start-of-image marker".into(),
        ));
    }
    let mut at = 2usize;
    loop {
        // Find the next marker (skipping fill bytes, and tolerating stray bytes as decoders do).
        while at < b.len() && b[at] != 0xFF {
            at += 1;
        }
        while at < b.len() && b[at] == 0xFF {
            at += 1;
        }
        let Some(&m) = b.get(at) else {
            return Err(truncated());
        };
        at += 1;
        match m {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD8 => {}
            _ => {
                let len = b.get(at..at + 2).ok_or_else(truncated)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return Err(DecodeError::Undecodable(
                        "JPEG segment length below 2".into(),
                    ));
                }
                if at + len > b.len() {
                    return Err(truncated());
                }
                seen(m, &b[at + 2..at + len]);
                at += len;
                if m == 0xDA {
                    // Entropy-coded data up to the next marker that is not a stuffed byte or a restart.
                    while at + 1 < b.len() {
                        if b[at] == 0xFF
                            && b[at + 1] != 0x00
                            && !(0xD0..=0xD7).contains(&b[at + 1])
                            && b[at + 1] != 0xFF
                        {
                            break;
                        }
                        at += 1;
                    }
                    if at + 1 >= b.len() {
                        return Err(truncated());
                    }
                }
            }
        }
    }
}

/// Walks the PNG's chunks to IEND (lengths only; the decoder checks the CRCs).
pub fn check_png_complete(b: &[u8]) -> Result<(), DecodeError> {
    let mut at = PNG_SIGNATURE.len();
    loop {
        let Some(head) = b.get(at..at + 8) else {
            return Err(DecodeError::Truncated(
                "the PNG ends before its IEND chunk".into(),
            ));
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = at
            .checked_add(12)
            .and_then(|x| x.checked_add(len))
            .filter(|&e| e <= b.len())
            .ok_or_else(|| {
                DecodeError::Truncated("a PNG chunk runs past the end of the data".into())
            })?;
        if &head[4..8] == b"IEND" {
            return Ok(());
        }
        at = end;
    }
}

/// The RIFF size field of a WebP must fit the data.
pub fn check_riff_complete(b: &[u8]) -> Result<(), DecodeError> {
    let size = b
        .get(4..8)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
        .ok_or_else(|| DecodeError::Truncated("the WebP header is cut".into()))?;
    if size + 8 > b.len() as u64 {
        return Err(DecodeError::Truncated(format!(
            "the WebP declares {} bytes but has {}",
            size + 8,
            b.len()
        )));
    }
    Ok(())
}

/// Decodes JP2 / J2K with the pure-Rust OpenJPEG port, after our gate accepted it and the pixel limit
/// holds; strict mode, so a truncated codestream is an error rather than a partial picture.
pub fn decode_jpeg2000(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    let header = jp2gate::check(bytes, &limits.jp2).map_err(DecodeError::Refused)?;
    check_pixels(header.width, header.height, limits.max_pixels)?;
    let params = jpeg2k::DecodeParameters::new().strict(true);
    let j2k = jpeg2k::Image::from_bytes_with(bytes, params)
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    // The decoder's own view of the size must agree with the header we checked.
    if (j2k.width(), j2k.height()) != (header.width, header.height) {
        return Err(DecodeError::Undecodable(
            "the decoder disagrees with the checked header about the size".into(),
        ));
    }
    let img = DynamicImage::try_from(&j2k).map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_not_by_name() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Sniffed::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Sniffed::WebP));
        assert_eq!(sniff(&JP2_SIGNATURE), Some(Sniffed::Jp2));
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
        cs.extend_from_slice(&100_000u32.to_be_bytes());
        cs.extend_from_slice(&100_000u32.to_be_bytes());
        cs.extend_from_slice(&[0; 8]);
        cs.extend_from_slice(&[0, 1, 7, 1, 1]);
        match decode_jpeg2000(&cs, &DecodeLimits::new(4_000_000)) {
            Err(DecodeError::Refused(e)) => assert_eq!(e.rule, jp2gate::GateRule::Dimensions),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_jpeg2000_never_panics() {
        let mut jp2 = JP2_SIGNATURE.to_vec();
        for cut in 0..40 {
            jp2.truncate(12);
            jp2.extend(std::iter::repeat_n(0xFFu8, cut));
            assert!(decode_jpeg2000(&jp2, &DecodeLimits::new(1000)).is_err());
        }
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_jpeg_cut_anywhere_is_refused_as_truncated() {
        let full = jpeg(64, 48);
        assert!(check_jpeg_complete(&full).is_ok());
        assert!(decode_raster(&full, Sniffed::Jpeg, &DecodeLimits::new(1 << 20)).is_ok());
        for cut in [full.len() / 2, full.len() - 1, full.len() - 2, 200] {
            assert!(
                matches!(
                    decode_raster(&full[..cut], Sniffed::Jpeg, &DecodeLimits::new(1 << 20)),
                    Err(DecodeError::Truncated(_))
                ),
                "cut at {cut}"
            );
        }
        // Trailing bytes after EOI (camera trailers) are fine.
        let mut trailer = full.clone();
        trailer.extend_from_slice(b"trailer");
        assert!(check_jpeg_complete(&trailer).is_ok());
    }

    #[test]
    fn a_png_without_iend_is_refused_and_a_wide_png_is_over_budget() {
        let img = image::RgbImage::from_pixel(32, 32, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        let png = out.into_inner();
        assert!(decode_raster(&png, Sniffed::Png, &DecodeLimits::new(1 << 20)).is_ok());
        assert!(matches!(
            decode_raster(
                &png[..png.len() - 12],
                Sniffed::Png,
                &DecodeLimits::new(1 << 20)
            ),
            Err(DecodeError::Truncated(_))
        ));
        // 16-bit RGBA needs 8 + 3 bytes a pixel: over the budget of 6 (+1 MiB) at the pixel limit.
        let (w, h) = (1024u32, 1024u32);
        let img =
            image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(w, h, image::Rgba([1, 2, 3, 4]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        let png16 = out.into_inner();
        let pixels = u64::from(w * h);
        assert!(matches!(
            decode_raster(&png16, Sniffed::Png, &DecodeLimits::new(pixels)),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(decode_raster(&png16, Sniffed::Png, &DecodeLimits::new(2 * pixels)).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Some(f) = sniff(&bytes) {
                let _ = decode_raster(&bytes, f, &DecodeLimits::new(1 << 20));
            }
        }

        #[test]
        fn mutated_headers_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..256), which in 0usize..4) {
            let magic: &[u8] = match which {
                0 => &[0xFF, 0xD8, 0xFF],
                1 => &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
                2 => &JP2_SIGNATURE,
                _ => &[0xFF, 0x4F, 0xFF, 0x51],
            };
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&tail);
            if let Some(f) = sniff(&bytes) {
                let _ = decode_raster(&bytes, f, &DecodeLimits::new(1 << 20));
            }
        }
    }
}
