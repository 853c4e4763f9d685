//! The JPEG 2000 gate in front of openjp2: any bytes, and patches of a valid JP2 from the devcard encoder.
#![no_main]
use jpki_face::face::jp2gate::{check, GateLimits, MAX_DECOMPOSITION_LEVELS, MAX_TILES};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common/mod.rs"]
mod common;

fn sample() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| {
        jpki_face::devcard::encode_jp2(&jpki_face::devcard::synthetic_face(1), 30.0)
            .expect("encode the sample")
    })
}

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((m, rest)) if m & 1 == 1 => common::patched(sample(), rest),
        _ => data.to_vec(),
    };
    let limits = GateLimits::default();
    if let Ok(h) = check(&bytes, &limits) {
        assert!(h.width >= 1 && h.width <= limits.max_side_px);
        assert!(h.height >= 1 && h.height <= limits.max_side_px);
        assert!(h.components == 1 || h.components == 3);
        assert!(h.tiles >= 1 && h.tiles <= MAX_TILES);
        assert!(h.decomposition_levels <= MAX_DECOMPOSITION_LEVELS);
    }
});
