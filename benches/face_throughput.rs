//! Throughput of the worker pool with 1 and 2 workers on the sample portraits, and where a job's time
//! goes (ONNX Runtime inference vs everything else). Prints a small report; asserts nothing.
//! Run: `cargo bench --bench face_throughput` (see docs/performance.md).

use bytes::Bytes;
use jpki_face::face::{FaceConfig, FaceEngine, ImageKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// This process's CPU time (user + system) from /proc, in seconds; None off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of those.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// Nanoseconds this process's threads spent runnable but waiting for a CPU (sum of the run-queue delays
/// in /proc/self/task/*/schedstat). Tells "no free core" apart from waiting inside the engine.
fn runqueue_wait_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let mut photos: Vec<Bytes> = std::fs::read_dir(root().join("models/samples"))
        .unwrap_or_else(|e| panic!("run scripts/fetch-models.sh first: {e}"))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jpg"))
        .map(|e| Bytes::from(std::fs::read(e.path()).expect("sample")))
        .collect();
    photos.sort();
    photos.truncate(48);
    println!(
        "face throughput: {} sample portraits per run, ORT intra-op threads = 1 per worker",
        photos.len()
    );
    let mut rates = Vec::new();
    for workers in [1usize, 2] {
        let cfg = FaceConfig {
            workers,
            // The plain pool (the idle-pool sessions are measured below).
            idle_intra_threads: 1,
            queue_capacity: 16,
            models_dir: root().join("models"),
            ort_library: root().join("models/libonnxruntime.so.1.31.1"),
            ..FaceConfig::default()
        };
        let engine = FaceEngine::start(&cfg).expect("engine starts");
        assert!(engine.wait_ready(Duration::from_secs(120)));
        // One untimed pass so caches and allocators are warm.
        for p in photos.iter().take(4) {
            let _ = engine.analyze_blocking(p.clone(), ImageKind::Selfie);
        }
        let next = AtomicUsize::new(0);
        let sums = Mutex::new([Duration::ZERO; 6]);
        let started = Instant::now();
        let cpu0 = cpu_seconds();
        let wait0 = runqueue_wait_ns();
        std::thread::scope(|s| {
            for _ in 0..workers * 2 {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = photos.get(i) else { break };
                    let a = engine
                        .analyze_blocking(p.clone(), ImageKind::Selfie)
                        .expect("analysis");
                    let t = a.timings;
                    let mut s = sums.lock().unwrap();
                    for (k, d) in [t.decode, t.preprocess, t.detect, t.postprocess, t.embed]
                        .into_iter()
                        .enumerate()
                    {
                        s[k] += d;
                    }
                    s[5] += t.decode + t.preprocess + t.detect + t.postprocess + t.embed;
                });
            }
        });
        let elapsed = started.elapsed();
        let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
        let waited = runqueue_wait_ns()
            .zip(wait0)
            .map(|(b, a)| b.saturating_sub(a));
        let n = photos.len() as f64;
        let rate = n / elapsed.as_secs_f64();
        let s = sums.into_inner().unwrap();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n;
        let inference = ms(s[2]) + ms(s[4]);
        let other = ms(s[0]) + ms(s[1]) + ms(s[3]);
        println!(
            "workers={workers}: {rate:.2} images/s ({:.0} ms wall for {n}); per image: decode {:.1} ms, letterbox {:.1} ms, \
             YuNet {:.1} ms, quality+align {:.2} ms, SFace {:.1} ms; non-ORT {:.1} ms = {:.0}% of inference",
            elapsed.as_secs_f64() * 1000.0,
            ms(s[0]),
            ms(s[1]),
            ms(s[2]),
            ms(s[3]),
            ms(s[4]),
            other,
            100.0 * other / inference
        );
        if let Some(cpu) = cpu {
            println!(
                "  CPU time {:.0} ms per image (wall x workers = {:.0} ms): the rest of the wall time the workers \
                 waited for a core",
                cpu * 1000.0 / n,
                elapsed.as_secs_f64() * 1000.0 * workers as f64 / n
            );
        }
        if let Some(w) = waited {
            println!(
                "  run-queue wait {:.0} ms per image: time the workers were ready to run but every core was busy",
                w as f64 / 1e6 / n
            );
        }
        rates.push(rate);
        drop(engine);
    }
    if let [one, two] = rates[..] {
        println!("speed-up 2 workers / 1 worker: {:.2}x", two / one);
    }
    idle_pool(&photos);
}

/// Issue 25: 2 workers with and without the idle-pool sessions (`idle_intra_threads`): latency of one
/// job at a time (one client), and throughput with 4 clients.
fn idle_pool(photos: &[Bytes]) {
    for idle in [1usize, 2] {
        let cfg = FaceConfig {
            workers: 2,
            idle_intra_threads: idle,
            queue_capacity: 16,
            models_dir: root().join("models"),
            ort_library: root().join("models/libonnxruntime.so.1.31.1"),
            ..FaceConfig::default()
        };
        let engine = FaceEngine::start(&cfg).expect("engine starts");
        assert!(engine.wait_ready(Duration::from_secs(120)));
        for p in photos.iter().take(4) {
            let _ = engine.analyze_blocking(p.clone(), ImageKind::Selfie);
        }
        let mut one: Vec<f64> = Vec::new();
        let mut mask_ms = 0f64;
        for p in photos {
            let t = Instant::now();
            let a = engine
                .analyze_blocking(p.clone(), ImageKind::Selfie)
                .expect("analysed");
            one.push(t.elapsed().as_secs_f64() * 1000.0);
            mask_ms += a.timings.mask.as_secs_f64() * 1000.0;
        }
        one.sort_by(f64::total_cmp);
        let p50 = one[one.len() / 2];
        let mean = one.iter().sum::<f64>() / one.len() as f64;
        let next = AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = photos.get(i % photos.len()) else {
                        break;
                    };
                    if i >= photos.len() * 2 {
                        break;
                    }
                    let _ = engine.analyze_blocking(p.clone(), ImageKind::Selfie);
                });
            }
        });
        let rate = (photos.len() * 2) as f64 / started.elapsed().as_secs_f64();
        println!(
            "idle_intra_threads={idle}, 2 workers: one at a time p50 {p50:.1} ms, mean {mean:.1} ms \
             (mask check {:.1} ms of it); 4 clients {rate:.2} images/s",
            mask_ms / photos.len() as f64
        );
    }
}
