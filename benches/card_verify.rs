//! Full card verification (JSON decoding, every parser, all seven RSA signature checks, no network, no faces).
//!
//! `cargo bench --bench card_verify` (or `--profile dev` on a shared machine; see docs/performance.md).

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use jpki_face::card::{parse_card_json, verify_card, CardPolicy, SessionBinding};
use jpki_face::devcard::{PersonSpec, TestHierarchy};
use std::hint::black_box;
use std::path::PathBuf;

fn bench(c: &mut Criterion) {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(format!("card-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let h = TestHierarchy::init_with_key_cache(&dir, 7, Some(&tmp.join("devcard-keys")))
        .expect("hierarchy");
    let person = h
        .issue(&PersonSpec {
            with_hojo: true,
            ..Default::default()
        })
        .expect("issue");
    let nonce = [9u8; 32];
    let binding = SessionBinding {
        session_id: "ses_bench",
        nonce: &nonce,
    };
    let json = h.sign(&person, &binding).expect("sign").to_string();
    let trust = h.trust_store().expect("trust");
    let now = Utc::now();
    let sub = parse_card_json(json.as_bytes()).expect("parses");
    let report =
        verify_card(&sub, &trust, &CardPolicy::default(), &binding, now).expect("verifies");
    assert!(report.failures().is_empty());

    c.bench_function(
        "card_verify/full (json + parse + 7 signatures, with hojo)",
        |b| {
            b.iter(|| {
                let sub = parse_card_json(black_box(json.as_bytes())).expect("parses");
                black_box(
                    verify_card(&sub, &trust, &CardPolicy::default(), &binding, now)
                        .expect("verifies"),
                )
            })
        },
    );
    c.bench_function("card_verify/verify_card only", |b| {
        b.iter(|| {
            black_box(
                verify_card(
                    black_box(&sub),
                    &trust,
                    &CardPolicy::default(),
                    &binding,
                    now,
                )
                .expect("verifies"),
            )
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
