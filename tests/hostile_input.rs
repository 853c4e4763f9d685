//! Hostile input on the face side (issue 14): the JPEG 2000 bomb stops at our gate, before any decoder
//! allocates (checked by an allocation-tracking global allocator), also inside a validly signed test card;
//! the PNG bomb and a truncated JPEG are refused; a worker panic answers only its job and the pool heals;
//! a job stuck past its deadline is abandoned and its worker replaced; one tenant cannot take the queue.
//! Needs the models (`scripts/fetch-models.sh`, `make models`) for the engine tests.

use bytes::Bytes;
use chrono::Utc;
use jpki_face::card::{parse_card_json, verify_card, CardDataResult, SessionBinding};
use jpki_face::devcard::{PersonSpec, PhotoSource, TestHierarchy};
use jpki_face::face::decode::{self, DecodeError, DecodeLimits, Sniffed};
use jpki_face::face::jp2gate::{self, GateLimits, GateRule};
use jpki_face::face::{FaceConfig, FaceEngine, FaceError, ImageKind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------------
// Allocation tracking: live bytes and their peak on the current thread, and the largest single request.

struct Tracking;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    LARGEST.fetch_max(size, Ordering::Relaxed);
    let _ = LIVE.try_with(|l| {
        let now = l.get() + size as isize;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn note_dealloc(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get() - size as isize));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_dealloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        note_dealloc(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Runs `f` and returns its result and the most bytes it held live at once on this thread.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

// ---------------------------------------------------------------------------------------------------
// Hostile images, built here (nothing committed).

/// The 49 KB bomb of issue 14: a raw J2K codestream declaring 2000×2000 pixels, 16,384 components and
/// 100 tiles (200×200), then a COD, a QCD, one tile-part and EOC.
fn j2k_bomb() -> Vec<u8> {
    let comps: u16 = 16_384;
    let mut v = vec![0xFF, 0x4F, 0xFF, 0x51];
    v.extend_from_slice(&(38 + 3 * comps).to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    for x in [2000u32, 2000, 0, 0, 200, 200, 0, 0] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&comps.to_be_bytes());
    for _ in 0..comps {
        v.extend_from_slice(&[7, 1, 1]);
    }
    v.extend_from_slice(&[0xFF, 0x52, 0, 12, 0, 0, 0, 1, 0, 5, 4, 4, 0, 0]);
    v.extend_from_slice(&[0xFF, 0x5C, 0, 5, 0x41, 0x48, 0x80]);
    v.extend_from_slice(&[0xFF, 0x90, 0, 10, 0, 0, 0, 0, 0, 14, 0, 1, 0xFF, 0x93]);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG declaring `w`×`h` 16-bit RGBA (valid IHDR CRC), a token IDAT and IEND.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn portrait() -> Vec<u8> {
    let p = root().join("models/samples/Female_40_1_1_1.jpg");
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/fetch-models.sh (make models)",
            p.display()
        )
    })
}

// ---------------------------------------------------------------------------------------------------
// The gate and the decoders, without models.

#[test]
fn the_49_kb_j2k_bomb_is_refused_by_the_gate_with_no_allocation_beyond_the_gate() {
    let bomb = j2k_bomb();
    assert!(bomb.len() > 49_000 && bomb.len() < 50_000, "{}", bomb.len());
    let (result, peak) = peak_during(|| jp2gate::check(&bomb, &GateLimits::default()));
    // 2000 px sides are beyond the chip-photo bound (1024) …
    assert_eq!(result.unwrap_err().rule, GateRule::Dimensions);
    // The gate only borrows the input; its one allocation is the error's detail text.
    assert!(peak < 1024, "the gate held {peak} bytes");
    // … and with a bound that lets the size pass, the 16,384 components are refused.
    let loose = GateLimits {
        max_side_px: 4096,
        max_tiles: 1000,
    };
    let (result, peak) = peak_during(|| jp2gate::check(&bomb, &loose));
    assert_eq!(result.unwrap_err().rule, GateRule::Components);
    assert!(peak < 1024, "the gate held {peak} bytes");

    // Through the decoder entry point: the same refusal, still no decoder buffers (openjp2 took 2 GB).
    let (result, peak) =
        peak_during(|| decode::decode_jpeg2000(&bomb, &DecodeLimits::new(4_000_000)));
    assert!(
        matches!(&result, Err(DecodeError::Refused(e)) if e.rule == GateRule::Dimensions),
        "{result:?}"
    );
    assert!(peak < 4096, "decode_jpeg2000 held {peak} bytes");
}

#[test]
fn the_gate_refuses_tile_and_dimension_bombs_too() {
    // The bomb with three components: now the tile grid (100 tiles) and the 2000 px sides are the rules.
    let mut v = vec![0xFF, 0x4F, 0xFF, 0x51, 0, 47, 0, 0];
    for x in [2000u32, 2000, 0, 0, 200, 200, 0, 0] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&[0, 3, 7, 1, 1, 7, 1, 1, 7, 1, 1]);
    let loose = GateLimits {
        max_side_px: 4096,
        max_tiles: 4,
    };
    assert_eq!(
        jp2gate::check(&v, &loose).unwrap_err().rule,
        GateRule::Tiles
    );
    assert_eq!(
        jp2gate::check(&v, &GateLimits::default()).unwrap_err().rule,
        GateRule::Dimensions
    );
}

#[test]
fn a_real_chip_photo_from_the_encoder_passes_the_gate_and_decodes() {
    let img = jpki_face::devcard::synthetic_face(5);
    let jp2 = jpki_face::devcard::encode_jp2(&img, 20.0).unwrap();
    let h = jp2gate::check(&jp2, &GateLimits::default()).expect("the encoder's JP2 passes");
    assert_eq!((h.width, h.height, h.components), (240, 320, 3));
    assert!(h.jp2);
    let rgb = decode::decode_jpeg2000(&jp2, &DecodeLimits::new(4_000_000)).unwrap();
    assert_eq!(rgb.dimensions(), (240, 320));
    // Cut anywhere: refused by the gate, never decoded as a partial picture.
    for cut in [1usize, 2, 10, 100, jp2.len() / 2] {
        let r = decode::decode_jpeg2000(&jp2[..jp2.len() - cut], &DecodeLimits::new(4_000_000));
        assert!(
            matches!(r, Err(DecodeError::Refused(_))),
            "cut {cut}: {r:?}"
        );
    }
    // Garbage after the codestream box.
    let mut trailing = jp2.clone();
    trailing.extend_from_slice(b"\0\0\0\x08skip");
    assert_eq!(
        jp2gate::check(&trailing, &GateLimits::default())
            .unwrap_err()
            .rule,
        GateRule::TrailingData
    );
}

#[test]
fn a_png_declaring_40_mp_of_16_bit_rgba_is_refused_before_decoding() {
    // 8000×5000 = 40 MP, at the selfie pixel limit; 16-bit RGBA would need 320 MB plus the RGB copy.
    let bomb = png_bomb(8000, 5000);
    let (result, peak) =
        peak_during(|| decode::decode_raster(&bomb, Sniffed::Png, &DecodeLimits::new(40_000_000)));
    assert!(
        matches!(result, Err(DecodeError::TooLarge(_))),
        "{result:?}"
    );
    assert!(peak < 1 << 20, "the refusal held {peak} bytes");
}

#[test]
fn a_jpeg_cut_in_half_is_refused_not_decoded_as_a_partial_picture() {
    let full = portrait();
    let limits = DecodeLimits::new(40_000_000);
    assert!(decode::decode_raster(&full, Sniffed::Jpeg, &limits).is_ok());
    let half = &full[..full.len() / 2];
    assert!(
        matches!(
            decode::decode_raster(half, Sniffed::Jpeg, &limits),
            Err(DecodeError::Truncated(_))
        ),
        "a half JPEG must be refused"
    );
}

// ---------------------------------------------------------------------------------------------------
// The bomb in a validly signed card.

const NONCE: [u8; 32] = [7; 32];

fn binding() -> SessionBinding<'static> {
    SessionBinding {
        session_id: "ses_hostile",
        nonce: &NONCE,
    }
}

#[test]
fn the_bomb_inside_a_validly_signed_card_verifies_and_is_then_refused_by_the_gate() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(format!("hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let h = TestHierarchy::init_with_key_cache(&dir, 7, Some(&tmp.join("devcard-keys")))
        .expect("test hierarchy");
    let bomb = j2k_bomb();
    let person = h
        .issue(&PersonSpec {
            photo: PhotoSource::Raw(bomb.clone()),
            ..Default::default()
        })
        .expect("issue");
    let json = h.sign(&person, &binding()).expect("sign");
    let sub = parse_card_json(json.to_string().as_bytes()).expect("card JSON");
    let report = verify_card(
        &sub,
        &h.trust_store().expect("trust"),
        &jpki_face::card::CardPolicy {
            require_hojo: false,
        },
        &binding(),
        Utc::now(),
    )
    .expect("parses");
    // The issuer signature covers the bomb: the card is genuine, so only the gate stands in the way.
    assert_eq!(report.card_data.result, CardDataResult::Valid);
    assert_eq!(report.chip_photo, bomb, "DF27 carries the bytes as given");
    let (result, peak) = peak_during(|| jp2gate::check(&report.chip_photo, &GateLimits::default()));
    assert_eq!(result.unwrap_err().rule, GateRule::Dimensions);
    assert!(peak < 1024, "the gate held {peak} bytes");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------------
// The engine (real models).

/// `\xFF\xD8\xFF` + "PANIC": sniffed as a JPEG, so it reaches a worker, where the hook fires.
const PANIC_MARKER: &str = "ffd8ff50414e4943";
/// `\xFF\xD8\xFF` + "STALL".
const STALL_MARKER: &str = "ffd8ff5354414c4c";

fn config(workers: usize, queue_capacity: usize) -> FaceConfig {
    FaceConfig {
        workers,
        queue_capacity,
        models_dir: root().join("models"),
        ort_library: root().join("models/libonnxruntime.so.1.31.1"),
        test_panic_marker: Some(PANIC_MARKER.into()),
        test_stall_marker: Some(STALL_MARKER.into()),
        ..FaceConfig::default()
    }
}

fn start(cfg: &FaceConfig) -> FaceEngine {
    let engine = FaceEngine::start(cfg).unwrap_or_else(|e| {
        panic!("the face models are needed: run scripts/fetch-models.sh (make models).\n{e}")
    });
    assert!(
        engine.wait_ready(Duration::from_secs(120)),
        "engine did not warm up"
    );
    engine
}

fn marked(marker: &str) -> Bytes {
    let mut b = hex::decode(marker).unwrap();
    b.extend_from_slice(&[0u8; 64]);
    Bytes::from(b)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `cond` every 10 ms for up to `limit`; a bound on waiting, not a timing assertion.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn the_bomb_never_reaches_the_pool() {
    let engine = start(&config(1, 8));
    let before = engine.stats().jobs_submitted;
    let bomb = Bytes::from(j2k_bomb());
    let (result, peak) = peak_during(|| engine.analyze_blocking(bomb, ImageKind::ChipPhoto));
    match result {
        Err(FaceError::TooLarge { detail }) => {
            assert!(detail.contains("rule dimensions"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.stats().jobs_submitted, before, "no job was queued");
    assert!(peak < 64 * 1024, "the refusal held {peak} bytes");
    // A truncated selfie is refused by the worker, with a detail that says so.
    let full = portrait();
    match engine.analyze_blocking(
        Bytes::from(full[..full.len() / 2].to_vec()),
        ImageKind::Selfie,
    ) {
        Err(FaceError::Undecodable { detail }) => {
            assert!(detail.starts_with("truncated"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_worker_panic_fails_that_job_only_and_the_pool_heals() {
    let engine = start(&config(2, 8));
    let rt = runtime();
    assert!(engine.is_ready());
    let r = rt.block_on(engine.analyze(marked(PANIC_MARKER), ImageKind::Selfie));
    assert!(matches!(r, Err(FaceError::WorkerPanicked)), "{r:?}");
    // The panicked worker left service before its job was answered; its replacement is still loading.
    assert!(
        !engine.is_ready(),
        "readiness must dip while a worker is missing"
    );
    assert_eq!(engine.stats().worker_panics, 1);
    // The next request is served (by the surviving worker or the replacement).
    let ok = rt.block_on(engine.analyze(Bytes::from(portrait()), ImageKind::Selfie));
    assert!(ok.is_ok(), "{ok:?}");
    assert!(
        engine.wait_ready(Duration::from_secs(120)),
        "the pool did not recover"
    );
    let s = engine.stats();
    assert_eq!((s.workers_alive, s.worker_panics), (2, 1));
    assert!(s.worker_restarts >= 1, "{s:?}");
    // Twice more, so every original worker may have been replaced: still healthy.
    for _ in 0..2 {
        let r = rt.block_on(engine.analyze(marked(PANIC_MARKER), ImageKind::Selfie));
        assert!(matches!(r, Err(FaceError::WorkerPanicked)), "{r:?}");
        assert!(engine.wait_ready(Duration::from_secs(120)));
    }
    let ok = rt.block_on(engine.analyze(Bytes::from(portrait()), ImageKind::Selfie));
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(engine.stats().worker_panics, 3);
}

#[test]
fn a_job_past_its_deadline_is_abandoned_and_its_worker_replaced() {
    let mut cfg = config(1, 8);
    // Long enough for a real analysis on a loaded machine; the stalled job overruns it regardless.
    cfg.job_deadline_ms = 5000;
    let engine = start(&cfg);
    let rt = runtime();
    let r = rt.block_on(engine.analyze(marked(STALL_MARKER), ImageKind::Selfie));
    assert!(matches!(r, Err(FaceError::DeadlineExceeded)), "{r:?}");
    assert!(
        eventually(Duration::from_secs(30), || engine.stats().jobs_abandoned
            == 1),
        "{:?}",
        engine.stats()
    );
    assert!(
        engine.wait_ready(Duration::from_secs(120)),
        "no replacement worker"
    );
    assert!(engine.stats().worker_restarts >= 1);
    // The replacement serves: the single stalled worker no longer blocks the pool.
    let ok = rt.block_on(engine.analyze(Bytes::from(portrait()), ImageKind::Selfie));
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(engine.stats().jobs_abandoned, 1);
}

#[test]
fn one_tenant_flooding_gets_tenant_queue_full_while_another_is_served() {
    let mut cfg = config(1, 8);
    cfg.tenant_queue_share = 0.25;
    let engine = start(&cfg);
    assert_eq!(engine.tenant_queue_cap(), 2);
    let photo = Bytes::from(portrait());
    let rt = runtime();
    let (flood, other) = rt.block_on(async {
        // Every submission happens in the first poll of join_all, long before one analysis ends.
        let flood =
            (0..10).map(|_| engine.analyze_for("tenant-a", photo.clone(), ImageKind::Selfie));
        let other =
            (0..2).map(|_| engine.analyze_for("tenant-b", photo.clone(), ImageKind::Selfie));
        let flood = futures::future::join_all(flood);
        let other = futures::future::join_all(other);
        futures::future::join(flood, other).await
    });
    let full = flood
        .iter()
        .filter(|r| matches!(r, Err(FaceError::TenantQueueFull { retry_after_secs }) if *retry_after_secs >= 1))
        .count();
    let ok = flood.iter().filter(|r| r.is_ok()).count();
    assert!(full >= 1, "the flooder was never limited: {flood:?}");
    assert_eq!(full + ok, 10, "{flood:?}");
    assert!(ok >= 2, "the flooder keeps its share: {flood:?}");
    for r in &other {
        assert!(r.is_ok(), "the other tenant must be served: {r:?}");
    }
    // Every claim is released once the jobs are done.
    assert_eq!(engine.tenant_jobs("tenant-a"), 0);
    assert_eq!(engine.tenant_jobs("tenant-b"), 0);
    // `analyze` without a tenant still works.
    assert!(rt
        .block_on(engine.analyze(photo, ImageKind::Selfie))
        .is_ok());
}
