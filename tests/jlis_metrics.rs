//! The checker's metrics (requests, outcomes, latencies, cache hits, breaker state), captured with a
//! test recorder while checks run against a real `openssl ocsp` responder. Needs `openssl` on PATH.

#[path = "support/jlis_pki.rs"]
mod jlis_pki;

use jlis_pki::{pki, start_responder, ResponderOpts};
use jpki_face::config::Environment;
use jpki_face::jlis::{build_checker_with_clock, FailureKind, JlisConfig, Mode, OffsetClock};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Keeps every value by "name{label=value,…}" (labels sorted).
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<BTreeMap<String, f64>>>);

struct Cell {
    key: String,
    store: Capture,
}

impl Capture {
    fn get(&self, key: &str) -> f64 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0.0)
    }
    fn cell(&self, prefix: &str, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Arc::new(Cell {
            key: format!("{prefix}{}{{{}}}", key.name(), labels.join(",")),
            store: self.clone(),
        })
    }
}

impl Cell {
    fn update(&self, f: impl FnOnce(&mut f64)) {
        let mut map = self.store.0.lock().unwrap();
        f(map.entry(self.key.clone()).or_insert(0.0));
    }
}

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.update(|x| *x += v as f64);
    }
    fn absolute(&self, v: u64) {
        self.update(|x| *x = v as f64);
    }
}
impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        self.update(|x| *x += v);
    }
    fn decrement(&self, v: f64) {
        self.update(|x| *x -= v);
    }
    fn set(&self, v: f64) {
        self.update(|x| *x = v);
    }
}
impl HistogramFn for Cell {
    // Histograms are captured as their sample count.
    fn record(&self, _v: f64) {
        self.update(|x| *x += 1.0);
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell("", key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell("", key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell("count:", key))
    }
}

#[test]
fn checks_report_requests_outcomes_cache_hits_and_breaker_state() {
    let p = pki("metrics");
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        // Current-thread runtime: every metric is recorded on this thread, inside the local recorder.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let responder = start_responder(p, ResponderOpts::default());
            let mut cfg = JlisConfig {
                mode: Mode::Ocsp,
                ..JlisConfig::default()
            };
            cfg.ocsp.url = responder.url();
            cfg.ocsp.retries = 0;
            cfg.breaker.failure_threshold = 1;
            let c = build_checker_with_clock(
                &cfg,
                Environment::Development,
                Arc::new(OffsetClock::new()),
            )
            .unwrap();
            assert!(c.check(&p.target(&p.good)).await.is_ok());
            assert!(c.check(&p.target(&p.good)).await.unwrap().from_cache);
            drop(responder);
            let e = c.check(&p.target(&p.key_compromise)).await.unwrap_err();
            assert_eq!(e.kind(), FailureKind::Connect);
            let e = c.check(&p.target(&p.key_compromise)).await.unwrap_err();
            assert_eq!(e.kind(), FailureKind::BreakerOpen);
        });
    });
    let g = |k: &str| capture.get(k);
    assert_eq!(g("jlis_checks_total{method=ocsp,outcome=good}"), 2.0);
    assert_eq!(g("jlis_checks_total{method=ocsp,outcome=connect}"), 1.0);
    assert_eq!(
        g("jlis_checks_total{method=ocsp,outcome=breaker_open}"),
        1.0
    );
    assert_eq!(g("jlis_cache_hits_total{method=ocsp}"), 1.0);
    assert_eq!(g("jlis_cache_misses_total{method=ocsp}"), 3.0);
    assert_eq!(g("jlis_requests_total{method=ocsp,outcome=ok}"), 1.0);
    assert_eq!(g("jlis_requests_total{method=ocsp,outcome=connect}"), 1.0);
    assert_eq!(g("count:jlis_request_duration_seconds{method=ocsp}"), 2.0);
    assert_eq!(g("count:jlis_check_duration_seconds{method=ocsp}"), 4.0);
    assert_eq!(g("jlis_breaker_open{method=ocsp}"), 1.0);
    assert_eq!(g("jlis_breaker_opened_total{method=ocsp}"), 1.0);
}
