//! Large JPEG selfies decoded at a reduced DCT scale (issue 12): a 12-megapixel phone selfie is decoded
//! straight to about 1000×750 instead of 4000×3000, by libjpeg-turbo's scaled inverse DCT (the `mozjpeg`
//! crate, its C code built from source without assembly: no build-time download, no nasm). The detector
//! sees at most [`super::detect::MAX_SIDE`] pixels a side anyway; the full-size decode and the letterbox's
//! downsampling of 12 million pixels were most of a large selfie's cost outside ONNX Runtime.
//!
//! Taken only when all of these hold, otherwise the photo goes to the full decoder as before:
//! - the photo's longer side is at least twice what the detector needs ([`numerator`]);
//! - the file is a **baseline or extended sequential** Huffman JPEG, 8-bit, with 1 or 3 components and
//!   at most one scan per component ([`Frame`], what phone cameras write). Progressive files are left
//!   out on purpose: libjpeg walks every scan, so a file of thousands of tiny scans would cost CPU
//!   without bound;
//! - [`super::decode`] has already walked the file to its EOI marker and checked the header's pixel
//!   count and memory budget; the output buffer is the reduced picture only.
//!
//! libjpeg's fatal errors unwind out of the C code (mozjpeg-sys is compiled with `-fexceptions`, the
//! `unwinding` feature) and are caught here; its warnings (corrupt data it can skip) are silenced by
//! the crate and give a picture with grey blocks, which then fails detection or quality like any bad
//! photo.

use image::RgbImage;

/// libjpeg could not decode the file (the caller's `DecodeError::Undecodable`). Its own type, so this
/// module needs nothing from [`super::decode`], which calls it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JPEG: {0}")]
pub struct ReducedDecodeError(String);

/// What the SOF segment and the scan headers of a JPEG say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The SOFn marker's second byte (0xC0 baseline, 0xC1 extended sequential, 0xC2 progressive, …).
    pub sof: u8,
    pub precision: u8,
    pub width: u32,
    pub height: u32,
    pub components: u8,
    /// SOS segments in the file.
    pub scans: usize,
}

impl Frame {
    /// Whether libjpeg may decode this file at a reduced scale (see the module documentation).
    pub fn reducible(&self) -> bool {
        matches!(self.sof, 0xC0 | 0xC1)
            && self.precision == 8
            && matches!(self.components, 1 | 3)
            && (1..=usize::from(self.components)).contains(&self.scans)
            && self.width > 0
            && self.height > 0
    }
}

/// The numerator n of the decoding scale n/8 for a `w`×`h` photo whose detector input needs a longer
/// side of `want` pixels: the smallest n of 1, 2 or 4 that keeps the longer side at or above `want`.
/// `None` (decode at full size) when even 1/2 would go below `want`.
pub fn numerator(w: u32, h: u32, want: u32) -> Option<u8> {
    let long = u64::from(w.max(h));
    [1u8, 2, 4]
        .into_iter()
        .find(|&n| (long * u64::from(n)).div_ceil(8) >= u64::from(want))
}

/// Decodes `bytes` at `numerator`/8 of its size into RGB.
pub fn decode(bytes: &[u8], numerator: u8) -> Result<RgbImage, ReducedDecodeError> {
    let run = || -> std::io::Result<(usize, usize, Vec<u8>)> {
        let mut d = mozjpeg::Decompress::builder().from_mem(bytes)?;
        d.scale(numerator);
        let mut started = d.rgb()?;
        let (w, h) = (started.width(), started.height());
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok((w, h, pixels))
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok((w, h, pixels))) => {
            let (w, h) = (
                u32::try_from(w).map_err(|_| ReducedDecodeError("width".into()))?,
                u32::try_from(h).map_err(|_| ReducedDecodeError("height".into()))?,
            );
            RgbImage::from_raw(w, h, pixels).ok_or_else(|| {
                ReducedDecodeError("the decoder returned fewer pixels than its size".into())
            })
        }
        Ok(Err(e)) => Err(ReducedDecodeError(e.to_string())),
        Err(panic) => Err(ReducedDecodeError(
            panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "libjpeg stopped".into()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_photos_twice_the_detector_side_are_reduced() {
        assert_eq!(numerator(4000, 3000, 640), Some(2)); // 1000×750
        assert_eq!(numerator(3024, 4032, 640), Some(2)); // 756×1008
        assert_eq!(numerator(1632, 1224, 640), Some(4)); // 816×612
        assert_eq!(numerator(1280, 960, 640), Some(4)); // 640×480
        assert_eq!(numerator(1279, 959, 640), Some(4)); // 640×480 (libjpeg rounds up)
        assert_eq!(numerator(1278, 958, 640), None);
        assert_eq!(numerator(600, 800, 640), None);
        assert_eq!(numerator(8000, 6000, 640), Some(1)); // 1000×750
        assert_eq!(numerator(0, 0, 640), None);
    }

    #[test]
    fn only_sequential_eight_bit_files_with_one_scan_per_component_are_reducible() {
        let base = Frame {
            sof: 0xC0,
            precision: 8,
            width: 4000,
            height: 3000,
            components: 3,
            scans: 1,
        };
        assert!(base.reducible());
        assert!(Frame {
            sof: 0xC1,
            scans: 3,
            ..base
        }
        .reducible());
        assert!(Frame {
            components: 1,
            ..base
        }
        .reducible());
        assert!(!Frame { sof: 0xC2, ..base }.reducible(), "progressive");
        assert!(!Frame { sof: 0xC9, ..base }.reducible(), "arithmetic");
        assert!(!Frame {
            precision: 12,
            ..base
        }
        .reducible());
        assert!(
            !Frame {
                components: 4,
                ..base
            }
            .reducible(),
            "CMYK"
        );
        assert!(
            !Frame { scans: 4, ..base }.reducible(),
            "more scans than components"
        );
        assert!(!Frame { scans: 0, ..base }.reducible());
        assert!(
            !Frame { height: 0, ..base }.reducible(),
            "height from a DNL marker"
        );
    }

    #[test]
    fn garbage_after_a_valid_header_is_an_error_not_a_panic() {
        let img = RgbImage::from_fn(256, 192, |x, y| image::Rgb([x as u8, y as u8, 77]));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        let half = decode(&jpeg, 4).unwrap();
        assert_eq!(half.dimensions(), (128, 96));
        // The colours survive the reduced decode (one 8×8 block averages to its centre).
        let p = half.get_pixel(64, 48);
        assert!(
            (i32::from(p[0]) - 128).abs() < 12 && (i32::from(p[2]) - 77).abs() < 12,
            "{p:?}"
        );
        // Cut inside the headers: an error. (Cut inside the entropy-coded data libjpeg pads with grey
        // and warns; `decode::decode_photo` refuses such a file before it gets here.)
        for cut in [2usize, 20, 200] {
            assert!(decode(&jpeg[..cut], 4).is_err(), "cut at {cut}");
        }
        let mut broken = jpeg.clone();
        // Overwrite the SOF's component count with 0: a fatal libjpeg error, caught.
        let sof = broken.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        broken[sof + 9] = 0;
        assert!(decode(&broken, 4).is_err_and(|e| e.to_string().starts_with("JPEG: ")));
    }
}
