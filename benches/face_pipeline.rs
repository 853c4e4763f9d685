//! Criterion benchmarks of the face engine's stages on one thread (one ONNX Runtime intra-op thread):
//! JP2 decode, detection (letterbox + YuNet), embedding (alignment + SFace), the whole selfie pipeline.
//! Needs `scripts/fetch-models.sh`. Run: `cargo bench --bench face_pipeline` (see docs/performance.md).

use criterion::{criterion_group, criterion_main, Criterion};
use jpki_face::face::decode::{decode_photo, DecodeLimits, Sniffed};
use jpki_face::face::{Bench, FaceConfig, ImageKind};
use std::path::PathBuf;

#[path = "../tests/face_support/jp2.rs"]
#[allow(dead_code)]
mod jp2;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn setup() -> (Bench, Vec<u8>) {
    let cfg = FaceConfig {
        models_dir: root().join("models"),
        ort_library: root().join("models/libonnxruntime.so.1.31.1"),
        ..FaceConfig::default()
    };
    let bench =
        Bench::new(&cfg).unwrap_or_else(|e| panic!("run scripts/fetch-models.sh first: {e}"));
    let photo =
        std::fs::read(root().join("models/samples/Female_42_1_1_1.jpg")).expect("sample portrait");
    (bench, photo)
}

fn stages(c: &mut Criterion) {
    let (mut bench, photo) = setup();
    let img = bench.decode(&photo, ImageKind::Selfie).expect("decodes");
    let face = bench
        .detect(&img)
        .expect("detects")
        .into_iter()
        .next()
        .expect("a face");
    let mut g = c.benchmark_group("face");
    g.sample_size(30);
    g.bench_function("decode_jpeg_1280x960", |b| {
        b.iter(|| bench.decode(&photo, ImageKind::Selfie).unwrap())
    });
    g.bench_function("detect_yunet", |b| b.iter(|| bench.detect(&img).unwrap()));
    g.bench_function("embed_sface", |b| {
        b.iter(|| bench.embed(&img, &face).unwrap())
    });
    g.bench_function("selfie_pipeline", |b| {
        b.iter(|| bench.pipeline(&photo, ImageKind::Selfie).unwrap())
    });
    // A chip-photo-sized JP2 (300 px wide, lossy 20:1) made from the portrait.
    let small = image::imageops::resize(
        &img,
        300,
        300 * img.height() / img.width(),
        image::imageops::FilterType::Triangle,
    );
    let j2 = jp2::encode(&small, 20.0);
    g.bench_function("decode_jp2_chip_photo", |b| {
        b.iter(|| bench.decode(&j2, ImageKind::ChipPhoto).unwrap())
    });
    // Phone-camera sizes made from the portrait (quality 90): a 12-megapixel selfie is decoded at 1/4
    // scale (src/face/jpeg_reduced.rs), a 2-megapixel one at 1/2; `full` is the decode without reduction.
    let phone = |long: u32| {
        let k = long as f32 / img.width().max(img.height()) as f32;
        let (w, h) = (
            (img.width() as f32 * k) as u32,
            (img.height() as f32 * k) as u32,
        );
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&image::imageops::resize(
                &img,
                w,
                h,
                image::imageops::FilterType::Triangle,
            ))
            .expect("encodes");
        out
    };
    let limits = DecodeLimits::new(FaceConfig::default().selfie_max_pixels);
    for (name, bytes) in [("12mp", phone(4000)), ("2mp", phone(1632))] {
        g.bench_function(format!("decode_jpeg_{name}_full"), |b| {
            b.iter(|| decode_photo(&bytes, Sniffed::Jpeg, &limits, None).unwrap())
        });
        g.bench_function(format!("decode_jpeg_{name}_reduced"), |b| {
            b.iter(|| decode_photo(&bytes, Sniffed::Jpeg, &limits, Some(640)).unwrap())
        });
        g.bench_function(format!("selfie_pipeline_{name}"), |b| {
            b.iter(|| bench.pipeline(&bytes, ImageKind::Selfie).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
