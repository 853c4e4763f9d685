//! The exact 1:N gallery (issue 21, core) on **synthetic** templates: random unit vectors (uniform in
//! the cube, normalised), string ids shaped like enrollment UUIDs. One thread throughout.
//! Criterion: one query at 10 k, 100 k and 1 M rows, a batch of 64 queries at 1 M, building 1 M rows.
//! Then, at each size, a manual loop prints p50/p99 over 200 single queries (criterion gives no
//! percentiles), how many rows the compact scan re-ranked in f32, and the memory held; and one timed
//! build of 1 M rows. Reports numbers, asserts nothing.
//! Run: `cargo bench --bench gallery` (see docs/performance.md).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jpki_face::face::gallery::{Gallery, ModelTag, SearchStats, DIM, MAX_BATCH};
use jpki_face::face::Template;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

const THRESHOLD: f32 = 0.4;
const LIMIT: usize = 10;

fn tag() -> ModelTag {
    ModelTag {
        model_id: "sface-2021dec".into(),
        model_hash: "ab".repeat(32),
        preprocessing_version: 1,
    }
}

fn template(vector: Vec<f32>) -> Template {
    let m = tag();
    Template {
        model_id: m.model_id,
        model_hash: m.model_hash,
        preprocessing_version: m.preprocessing_version,
        vector,
    }
}

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// The rows' vectors, made once so a build measures inserting only.
fn vectors(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).flat_map(|_| random_unit(&mut rng)).collect()
}

/// Inserts every row through one reused `Template` (as a feed from the store would).
fn build(flat: &[f32], ids: &[String]) -> Gallery<String> {
    let mut g = Gallery::with_capacity(tag(), ids.len());
    let mut t = template(vec![0.0; DIM]);
    for (row, id) in flat.chunks_exact(DIM).zip(ids) {
        t.vector.copy_from_slice(row);
        g.insert(id.clone(), &t).expect("valid template");
    }
    g
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(42);
    let queries: Vec<Template> = (0..MAX_BATCH)
        .map(|_| template(random_unit(&mut rng)))
        .collect();
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` (make test) this binary only
    // smoke-tests the code paths on small galleries, so that CI does not scan a million rows in a
    // debug build.
    let full = std::env::args().any(|a| a == "--bench");
    let million = if full { 1_000_000 } else { 10_000 };
    let sizes: &[usize] = if full {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[1_000, 10_000]
    };
    let flat = vectors(million, 1);
    let ids: Vec<String> = (0..million).map(id).collect();

    for &n in sizes {
        let g = build(&flat[..n * DIM], &ids[..n]);
        c.bench_function(&format!("gallery/search_1q/{n}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(g.search(&queries[i], THRESHOLD, LIMIT).expect("query"))
            })
        });
        if n == million {
            c.bench_function(&format!("gallery/search_batch64/{n}"), |b| {
                b.iter(|| black_box(g.search_batch(&queries, THRESHOLD, LIMIT).expect("batch")))
            });
        }
        percentiles(&g, &mut rng, if full { 200 } else { 10 });
        let bytes = g.memory_bytes();
        println!(
            "gallery memory at {n} rows (String ids of 36 bytes): {:.1} MiB total, {:.1} MiB f32 matrix, {:.1} MiB i8 copy, {} bytes/row",
            bytes as f64 / 1048576.0,
            (n * DIM * 4) as f64 / 1048576.0,
            (n * (DIM + 8)) as f64 / 1048576.0,
            bytes / n
        );
    }
    let t = Instant::now();
    let g = black_box(build(&flat, &ids));
    println!(
        "gallery/build/{million} manual: {:.2?} ({} rows)",
        t.elapsed(),
        g.len()
    );
    drop(g);

    c.bench_function(&format!("gallery/build/{million}"), |b| {
        b.iter_batched(
            || (),
            |_| black_box(build(&flat, &ids)),
            BatchSize::PerIteration,
        )
    });
}

/// p50/p99 of single queries and per-query time in full batches, over `count` fresh queries each.
fn percentiles(g: &Gallery<String>, rng: &mut StdRng, count: usize) {
    let qs: Vec<Template> = (0..count).map(|_| template(random_unit(rng))).collect();
    let mut total = SearchStats::default();
    let mut times: Vec<Duration> = qs
        .iter()
        .map(|q| {
            let t = Instant::now();
            let (hits, stats) = g.search_counted(q, THRESHOLD, LIMIT).expect("query");
            let e = t.elapsed();
            black_box(hits);
            total.scanned += stats.scanned;
            total.reranked += stats.reranked;
            e
        })
        .collect();
    times.sort();
    let pick = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "gallery/search_1q/{} manual, {count} queries: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        g.len(),
        pick(0.50),
        pick(0.99),
        times[times.len() - 1]
    );
    println!(
        "gallery/search_1q/{} re-ranked in f32: {:.2} rows per query (of {})",
        g.len(),
        total.reranked as f64 / count as f64,
        total.scanned / count
    );
    // Top-10 with no threshold: the cut is the 10th best exact score so far.
    let mut reranked = 0;
    let mut times_k: Vec<Duration> = qs
        .iter()
        .take(50)
        .map(|q| {
            let t = Instant::now();
            let (hits, stats) = g
                .search_counted(q, f32::NEG_INFINITY, LIMIT)
                .expect("query");
            let e = t.elapsed();
            black_box(hits);
            reranked += stats.reranked;
            e
        })
        .collect();
    times_k.sort();
    println!(
        "gallery/search_top10_nothreshold/{} manual, {} queries: p50 {:.2?}, max {:.2?}, {:.1} rows re-ranked per query",
        g.len(),
        times_k.len(),
        times_k[times_k.len() / 2],
        times_k[times_k.len() - 1],
        reranked as f64 / times_k.len() as f64
    );
    let t = Instant::now();
    let mut n = 0;
    for group in qs.chunks(MAX_BATCH) {
        n += black_box(g.search_batch(group, THRESHOLD, LIMIT).expect("batch")).len();
    }
    println!(
        "gallery/search_batch/{} manual: {n} queries in {:.2?} = {:.2?} per query",
        g.len(),
        t.elapsed(),
        t.elapsed() / n as u32
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
