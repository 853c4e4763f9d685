//! JPEG 2000 (JP2 container) encoding of the chip photo, with the pure-Rust `openjp2` encoder.
//!
//! Uses only the crate's safe API (`opj_image::create`, `Codec`, `Stream::new_file`); the encoder writes to a
//! file stream (openjp2 has no safe in-memory writer, and jpeg2k's encoder is file-only as well), so the
//! photo is written next to the card files, or to a temporary file, and read back.

use anyhow::{bail, Context, Result};
use image::DynamicImage;
use openjp2::{
    opj_cparameters_t, opj_image, opj_image_comptparm, Codec, Stream, OPJ_CLRSPC_GRAY,
    OPJ_CLRSPC_SRGB, OPJ_CODEC_JP2,
};
use std::path::Path;

/// Largest photo side kept; real chip photos are small, and the whole record must stay under 64 KiB.
const MAX_WIDTH: u32 = 240;
const MAX_HEIGHT: u32 = 320;
/// Compression ratio of the single quality layer (about 10–20 KiB for a colour 240×320 photo).
const RATE: f32 = 24.0;

/// Encodes `img` (scaled down to fit 240×320) as a JP2 file at `out`, and returns its bytes.
pub fn encode(img: &DynamicImage, greyscale: bool, out: &Path) -> Result<Vec<u8>> {
    let img = if img.width() > MAX_WIDTH || img.height() > MAX_HEIGHT {
        img.thumbnail(MAX_WIDTH, MAX_HEIGHT)
    } else {
        img.clone()
    };
    encode_at(&img, greyscale, RATE, out)
}

/// Encodes an RGB picture at its own size as a lossy JP2 with one layer at compression `ratio` (for
/// tests and benchmarks that need chip photos); goes through a temporary file.
pub fn encode_rgb(img: &image::RgbImage, ratio: f32) -> Result<Vec<u8>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("jpki-face-jp2-{}-{n}.jp2", std::process::id()));
    let result = encode_at(&DynamicImage::ImageRgb8(img.clone()), false, ratio, &path);
    let _ = std::fs::remove_file(&path);
    result
}

fn encode_at(img: &DynamicImage, greyscale: bool, ratio: f32, out: &Path) -> Result<Vec<u8>> {
    let (w, h) = (img.width(), img.height());
    let planes: Vec<Vec<i32>> = if greyscale {
        vec![img.to_luma8().pixels().map(|p| i32::from(p.0[0])).collect()]
    } else {
        let rgb = img.to_rgb8();
        (0..3)
            .map(|c| rgb.pixels().map(|p| i32::from(p.0[c])).collect())
            .collect()
    };
    let params: Vec<opj_image_comptparm> = planes
        .iter()
        .map(|_| opj_image_comptparm {
            dx: 1,
            dy: 1,
            w,
            h,
            x0: 0,
            y0: 0,
            prec: 8,
            bpp: 8,
            sgnd: 0,
        })
        .collect();
    let space = if greyscale {
        OPJ_CLRSPC_GRAY
    } else {
        OPJ_CLRSPC_SRGB
    };
    let mut image: Box<opj_image> =
        opj_image::create(&params, space).context("allocate the JPEG 2000 image")?;
    image.x0 = 0;
    image.y0 = 0;
    image.x1 = w;
    image.y1 = h;
    let comps = image
        .comps_data_mut_iter()
        .context("image has no components")?;
    for (dst, src) in comps.zip(&planes) {
        if dst.len() != src.len() {
            bail!("component size mismatch");
        }
        dst.copy_from_slice(src);
    }
    let mut rates = [0.0; 100];
    rates[0] = ratio;
    let mut cp = opj_cparameters_t {
        tcp_numlayers: 1,
        tcp_rates: rates,
        cp_disto_alloc: 1,
        irreversible: 1,
        tcp_mct: if greyscale { 0 } else { 1 },
        ..Default::default()
    };
    let mut codec = Codec::new_encoder(OPJ_CODEC_JP2).context("create the JP2 encoder")?;
    if codec.setup_encoder(&mut cp, &mut image) == 0 {
        bail!("JPEG 2000 encoder set-up failed");
    }
    {
        let mut stream = Stream::new_file(out, 1 << 16, false)
            .with_context(|| format!("create {}", out.display()))?;
        if codec.start_compress(&mut image, &mut stream) == 0
            || codec.encode(&mut stream) == 0
            || codec.end_compress(&mut stream) == 0
        {
            bail!("JPEG 2000 encoding failed");
        }
    } // dropping the stream flushes it
    let bytes = std::fs::read(out).with_context(|| format!("read {}", out.display()))?;
    if !bytes.starts_with(&[
        0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A,
    ]) {
        bail!("encoder did not write a JP2 file");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_jp2_that_decodes_back_to_the_same_picture() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = image::RgbImage::new(120, 160);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 2) as u8, y as u8, if x > 60 { 200 } else { 30 }]);
        }
        let bytes = encode(
            &DynamicImage::ImageRgb8(img.clone()),
            false,
            &dir.path().join("p.jp2"),
        )
        .unwrap();
        assert!(bytes.len() < 20_000, "{}", bytes.len());
        let decoded = jpeg2k::Image::from_bytes(&bytes).unwrap();
        let back: DynamicImage = (&decoded).try_into().unwrap();
        let back = back.to_rgb8();
        assert_eq!(back.dimensions(), (120, 160));
        // Lossy, but close: mean absolute error per channel stays small.
        let err: u64 = back
            .as_raw()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        assert!(
            err / back.as_raw().len() as u64 <= 6,
            "mean error {}",
            err / back.as_raw().len() as u64
        );
    }
}
