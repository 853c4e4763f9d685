//! A minimal JPEG 2000 (JP2) encoder over the `openjp2` crate, for making chip photos in tests.
//! `unsafe` because openjp2 keeps OpenJPEG's C-style API (raw pointers, stream callbacks); the test
//! crate is not under the library's `deny(unsafe_code)`.
use image::RgbImage;
use openjp2::openjpeg::*;
use std::ffi::c_void;

struct Sink {
    buf: Vec<u8>,
    pos: usize,
}

unsafe extern "C" fn write(data: *mut c_void, n: usize, user: *mut c_void) -> usize {
    // SAFETY: `user` is the `Sink` passed to opj_stream_set_user_data, alive for the whole encode;
    // `data` holds `n` readable bytes per OpenJPEG's stream contract.
    let (sink, bytes) = unsafe {
        (
            &mut *(user as *mut Sink),
            std::slice::from_raw_parts(data as *const u8, n),
        )
    };
    let end = sink.pos + n;
    if sink.buf.len() < end {
        sink.buf.resize(end, 0);
    }
    sink.buf[sink.pos..end].copy_from_slice(bytes);
    sink.pos = end;
    n
}

unsafe extern "C" fn skip(n: i64, user: *mut c_void) -> i64 {
    // SAFETY: as in `write`.
    let sink = unsafe { &mut *(user as *mut Sink) };
    sink.pos = (sink.pos as i64 + n).max(0) as usize;
    if sink.buf.len() < sink.pos {
        sink.buf.resize(sink.pos, 0);
    }
    n
}

unsafe extern "C" fn seek(to: i64, user: *mut c_void) -> i32 {
    // SAFETY: as in `write`.
    let sink = unsafe { &mut *(user as *mut Sink) };
    sink.pos = to.max(0) as usize;
    if sink.buf.len() < sink.pos {
        sink.buf.resize(sink.pos, 0);
    }
    1
}

/// Lossy JP2 at the given compression ratio.
pub fn encode(img: &RgbImage, ratio: f32) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let mut params: Vec<openjp2::opj_image_comptparm> = (0..3)
        .map(|_| openjp2::opj_image_comptparm {
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
    let mut sink = Sink {
        buf: Vec::new(),
        pos: 0,
    };
    // SAFETY: every pointer comes from the matching OpenJPEG constructor and is checked for null;
    // the image, codec and stream are destroyed once, after the last use; `sink` outlives the stream.
    unsafe {
        let image = opj_image_create(3, params.as_mut_ptr(), OPJ_COLOR_SPACE::OPJ_CLRSPC_SRGB);
        assert!(!image.is_null());
        (*image).x1 = w;
        (*image).y1 = h;
        let comps = (*image).comps_mut().expect("components");
        for (c, comp) in comps.iter_mut().enumerate() {
            let data = comp.data_mut().expect("component data");
            for (i, p) in img.pixels().enumerate() {
                data[i] = i32::from(p.0[c]);
            }
        }
        let mut cp = opj_cparameters_t {
            tcp_numlayers: 1,
            cp_disto_alloc: 1,
            irreversible: 1,
            tcp_mct: 1,
            ..Default::default()
        };
        cp.tcp_rates[0] = ratio;
        let codec = opj_create_compress(OPJ_CODEC_FORMAT::OPJ_CODEC_JP2);
        assert!(!codec.is_null());
        assert_eq!(opj_setup_encoder(codec, &mut cp, image), 1, "setup");
        let stream = opj_stream_create(1 << 16, 0);
        opj_stream_set_write_function(stream, Some(write));
        opj_stream_set_skip_function(stream, Some(skip));
        opj_stream_set_seek_function(stream, Some(seek));
        opj_stream_set_user_data(stream, &mut sink as *mut Sink as *mut c_void, None);
        assert_eq!(opj_start_compress(codec, image, stream), 1, "start");
        assert_eq!(opj_encode(codec, stream), 1, "encode");
        assert_eq!(opj_end_compress(codec, stream), 1, "end");
        opj_stream_destroy(stream);
        opj_destroy_codec(codec);
        opj_image_destroy(image);
    }
    sink.buf
}
