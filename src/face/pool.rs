//! The engine's worker pool: a bounded queue feeding N worker threads, each owning its ONNX Runtime
//! sessions and running [`super::pipeline`] on one job at a time; per-tenant shares of the queue; an
//! overload answered at once. The async runtime only enqueues and awaits a oneshot reply.
//!
//! The pool heals itself: a panic in a worker answers that one job with [`FaceError::WorkerPanicked`]
//! and the worker thread ends; a job still running past its deadline is abandoned (its worker is
//! detached and finishes or stalls on its own, without taking more jobs). A supervisor thread notices
//! either and starts a replacement, which loads its own sessions and warms up; `is_ready` is false while
//! fewer workers than configured are in service. Counters: `face_worker_panics_total`,
//! `face_worker_restarts_total`, `face_jobs_abandoned_total` (also in [`PoolStats`]).

use super::align;
use super::calibration::{CalibrationTable, Threshold};
use super::config::FaceConfig;
use super::models::{self, absolute, FaceInitError, ModelPaths, Models};
use super::pipeline::{accepted_format, check_chip_photo, run_pipeline, Sessions};
use super::template::{ModelMismatch, Template};
use super::{FaceAnalysis, FaceError, ImageKind};
use bytes::Bytes;
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use image::RgbImage;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Job {
    image: Bytes,
    kind: ImageKind,
    queued: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Result<FaceAnalysis, FaceError>>,
    /// The submitter's span (request id …), entered on the worker.
    span: tracing::Span,
    /// Held while the job is queued or running; releases the tenant's share when dropped (the worker
    /// drops it just before replying, so a caller that got its answer sees its share released).
    tenant: Option<TenantSlot>,
}

type TenantCounts = Arc<Mutex<HashMap<String, usize>>>;

/// One job's claim on its tenant's share of the queue.
struct TenantSlot {
    counts: TenantCounts,
    tenant: String,
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// Counters of the pool since start (also exported as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Jobs accepted into the queue (by `analyze`, `analyze_for` and `analyze_blocking`).
    pub jobs_submitted: u64,
    pub worker_panics: u64,
    pub worker_restarts: u64,
    pub jobs_abandoned: u64,
    /// Workers warmed up and in service now.
    pub workers_alive: usize,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    panics: AtomicU64,
    restarts: AtomicU64,
    abandoned: AtomicU64,
}

/// One worker thread as the supervisor sees it.
struct Slot {
    id: usize,
    /// The deadline of the job it is running, if any.
    busy_until: Mutex<Option<Instant>>,
    /// Warmed up and counted in `alive`.
    in_service: AtomicBool,
    /// Given up on by the supervisor (stuck past a deadline); it must take no more jobs.
    abandoned: AtomicBool,
    /// The thread has ended (or is unwinding).
    exited: AtomicBool,
    /// It ended because its sessions would not load.
    load_failed: AtomicBool,
}

impl Slot {
    fn new(id: usize) -> Self {
        Self {
            id,
            busy_until: Mutex::new(None),
            in_service: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            exited: AtomicBool::new(false),
            load_failed: AtomicBool::new(false),
        }
    }

    fn set_busy(&self, until: Option<Instant>) {
        *self.busy_until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    fn busy_until(&self) -> Option<Instant> {
        *self.busy_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the worker out of service, once.
    fn retire(&self, alive: &AtomicUsize) {
        if self.in_service.swap(false, Ordering::AcqRel) {
            alive.fetch_sub(1, Ordering::AcqRel);
            metrics::gauge!("face_workers_alive").set(alive.load(Ordering::Acquire) as f64);
        }
    }
}

/// The test-only fault hooks (`face.test_panic_marker`, `face.test_stall_marker`).
#[derive(Clone, Default)]
struct Faults {
    panic_marker: Option<Vec<u8>>,
    stall_marker: Option<Vec<u8>>,
}

impl Faults {
    fn from_config(cfg: &FaceConfig) -> Result<Faults, FaceInitError> {
        let parse = |name: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, FaceInitError> {
            match v.as_deref() {
                None => Ok(None),
                Some(hex_str) => match hex::decode(hex_str.trim()) {
                    Ok(b) if !b.is_empty() => Ok(Some(b)),
                    _ => Err(FaceInitError::Worker(format!(
                        "face.{name} must be non-empty hex"
                    ))),
                },
            }
        };
        let f = Faults {
            panic_marker: parse("test_panic_marker", &cfg.test_panic_marker)?,
            stall_marker: parse("test_stall_marker", &cfg.test_stall_marker)?,
        };
        if f.panic_marker.is_some() || f.stall_marker.is_some() {
            tracing::warn!("face engine test fault hooks are enabled; never do this in production");
        }
        Ok(f)
    }

    /// Panics or stalls when the image starts with a marker (runs inside the worker's catch_unwind).
    fn inject(&self, image: &[u8], slot: &Slot, deadline: Instant) {
        if self
            .panic_marker
            .as_deref()
            .is_some_and(|m| image.starts_with(m))
        {
            panic!("face worker test hook: the panic marker matched");
        }
        if self
            .stall_marker
            .as_deref()
            .is_some_and(|m| image.starts_with(m))
        {
            // Until the supervisor abandons this worker (or a minute past the deadline at most).
            let give_up = deadline + Duration::from_secs(60);
            while !slot.abandoned.load(Ordering::Acquire) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// What a worker thread needs to load its sessions.
#[derive(Clone)]
struct Loader {
    env: ort::environment::Environment,
    paths: ModelPaths,
}

struct Inner {
    tx: Sender<Job>,
    cfg: FaceConfig,
    workers: usize,
    /// Workers warmed up and in service.
    alive: AtomicUsize,
    slots: Mutex<Vec<Arc<Slot>>>,
    counters: Counters,
    tenants: TenantCounts,
    /// Moving average of a job's service time, in microseconds, for Retry-After.
    avg_job_us: AtomicU64,
    model_id: String,
    model_hash: String,
    calibration: CalibrationTable,
}

/// The face engine. Cheap to clone; the workers stop when the last clone is dropped.
#[derive(Clone)]
pub struct FaceEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FaceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceEngine")
            .field("model", &self.model_label())
            .field("workers", &self.inner.workers)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// Everything a worker thread (first or replacement) is started with.
#[derive(Clone)]
struct WorkerKit {
    rx: Receiver<Job>,
    /// Workers running a job now (for the idle-pool rule of [`Workers::pick`]).
    running: Arc<AtomicUsize>,
    /// Intra-op threads of the idle-pool sessions (`face.idle_intra_threads`); 1 = none loaded.
    idle_threads: usize,
    loader: Loader,
    faults: Faults,
    events: Sender<()>,
    next_id: Arc<AtomicUsize>,
}

impl FaceEngine {
    /// Verifies the model files against the manifest, loads ONNX Runtime, starts the workers (each loads
    /// its sessions; this waits for that) and lets them warm up in the background: `is_ready` turns true
    /// when every worker has run its models once (both session sets).
    pub fn start(cfg: &FaceConfig) -> Result<FaceEngine, FaceInitError> {
        let manifest = models::manifest()?;
        let paths = ModelPaths::verified(&cfg.models_dir, &manifest)?;
        let lib = absolute(cfg.effective_ort_library());
        // The pinned library is hash-checked too; an operator's ORT_DYLIB_PATH is their own choice.
        if std::env::var_os("ORT_DYLIB_PATH").is_none_or(|v| v.is_empty()) && lib.is_file() {
            models::verify(&lib, &manifest.runtime, "ONNX Runtime library")?;
        }
        let env = models::environment(&lib)?;
        let calibration = CalibrationTable::committed()
            .map_err(|e| FaceInitError::Manifest(format!("config/face-calibration.toml: {e}")))?;
        let faults = Faults::from_config(cfg)?;

        let workers = cfg.effective_workers().max(1);
        let (tx, rx) = bounded::<Job>(cfg.queue_capacity.max(1));
        let inner = Arc::new(Inner {
            tx,
            cfg: cfg.clone(),
            workers,
            alive: AtomicUsize::new(0),
            slots: Mutex::new(Vec::new()),
            counters: Counters::default(),
            tenants: Arc::new(Mutex::new(HashMap::new())),
            avg_job_us: AtomicU64::new(50_000),
            model_id: manifest.recognizer.id.clone(),
            model_hash: manifest.recognizer.template_hash().to_string(),
            calibration,
        });
        let (events, events_rx) = unbounded::<()>();
        let kit = WorkerKit {
            rx,
            loader: Loader { env, paths },
            faults,
            events,
            next_id: Arc::new(AtomicUsize::new(0)),
            running: Arc::new(AtomicUsize::new(0)),
            idle_threads: cfg.idle_intra_threads.max(1),
        };
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            spawn_worker(&inner, &kit, Some(loaded_tx.clone()))?;
        }
        drop(loaded_tx);
        for _ in 0..workers {
            match loaded_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(FaceInitError::Worker(
                        "a worker exited while loading".into(),
                    ))
                }
            }
        }
        let weak = Arc::downgrade(&inner);
        let tick = Duration::from_millis((cfg.job_deadline_ms / 4).clamp(5, 100));
        std::thread::Builder::new()
            .name("face-supervisor".into())
            .spawn(move || supervise(weak, kit, events_rx, tick))
            .map_err(|e| FaceInitError::Worker(e.to_string()))?;
        tracing::info!(workers, model = %format!("{}@{}", inner.model_id, &inner.model_hash[..12.min(inner.model_hash.len())]), "face engine started");
        Ok(FaceEngine { inner })
    }

    /// True while every configured worker is warmed up and in service (false during start-up and while
    /// a replacement for a panicked or abandoned worker is loading).
    pub fn is_ready(&self) -> bool {
        self.inner.alive.load(Ordering::Acquire) >= self.inner.workers
    }

    /// Blocks (a thread, not the runtime) until ready or the timeout passes; for tools and tests.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.is_ready() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    pub fn config(&self) -> &FaceConfig {
        &self.inner.cfg
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.counters;
        PoolStats {
            jobs_submitted: c.submitted.load(Ordering::Relaxed),
            worker_panics: c.panics.load(Ordering::Relaxed),
            worker_restarts: c.restarts.load(Ordering::Relaxed),
            jobs_abandoned: c.abandoned.load(Ordering::Relaxed),
            workers_alive: self.inner.alive.load(Ordering::Acquire),
        }
    }

    /// Size and format checks, and for the chip photo the JPEG 2000 gate: all before the queue, so a
    /// refused image never occupies a worker.
    fn precheck(&self, image: &Bytes, kind: ImageKind) -> Result<(), FaceError> {
        let cfg = &self.inner.cfg;
        let max = match kind {
            ImageKind::Selfie => cfg.selfie_max_bytes,
            ImageKind::ChipPhoto => cfg.chip_photo_max_bytes,
        };
        if image.len() > max {
            return Err(FaceError::TooLarge {
                detail: format!("{} bytes exceeds the limit of {max}", image.len()),
            });
        }
        accepted_format(image, kind)?;
        if kind == ImageKind::ChipPhoto {
            check_chip_photo(cfg, image)?;
        }
        Ok(())
    }

    fn job(
        &self,
        image: Bytes,
        kind: ImageKind,
        tenant: Option<TenantSlot>,
    ) -> (Job, oneshot::Receiver<Result<FaceAnalysis, FaceError>>) {
        let (reply, rx) = oneshot::channel();
        let now = Instant::now();
        let deadline = now + Duration::from_millis(self.inner.cfg.job_deadline_ms);
        (
            Job {
                image,
                kind,
                queued: now,
                deadline,
                reply,
                span: tracing::Span::current(),
                tenant,
            },
            rx,
        )
    }

    fn retry_after_secs(&self) -> u64 {
        self.backlog_secs(self.inner.tx.capacity().unwrap_or(1))
    }

    fn backlog_secs(&self, jobs: usize) -> u64 {
        let backlog_us =
            self.inner.avg_job_us.load(Ordering::Relaxed) * jobs as u64 / self.inner.workers as u64;
        backlog_us.div_ceil(1_000_000).max(1)
    }

    /// The most jobs one tenant may hold: `tenant_queue_share` of the queue, at least one.
    pub fn tenant_queue_cap(&self) -> usize {
        let cap = self.inner.tx.capacity().unwrap_or(1) as f64;
        let share = self.inner.cfg.tenant_queue_share.clamp(0.0, 1.0);
        ((cap * share).floor() as usize).max(1)
    }

    /// Jobs a tenant holds now (queued or running).
    pub fn tenant_jobs(&self, tenant: &str) -> usize {
        let counts = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(tenant).copied().unwrap_or(0)
    }

    fn claim_tenant(&self, tenant: &str) -> Result<TenantSlot, FaceError> {
        let cap = self.tenant_queue_cap();
        let mut counts = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let held = counts.entry(tenant.to_string()).or_insert(0);
        if *held >= cap {
            let held = *held;
            drop(counts);
            metrics::counter!("face_jobs_total", "outcome" => "tenant_queue_full").increment(1);
            return Err(FaceError::TenantQueueFull {
                retry_after_secs: self.backlog_secs(held),
            });
        }
        *held += 1;
        Ok(TenantSlot {
            counts: self.inner.tenants.clone(),
            tenant: tenant.to_string(),
        })
    }

    /// Analyses one image on the pool. A full queue answers `Overloaded` at once; a job that waits or runs
    /// past its deadline answers `DeadlineExceeded`.
    pub async fn analyze(&self, image: Bytes, kind: ImageKind) -> Result<FaceAnalysis, FaceError> {
        self.submit(None, image, kind).await
    }

    /// As [`Self::analyze`], counted against `tenant`'s share of the queue: when the tenant already holds
    /// `tenant_queue_share × queue_capacity` jobs (queued or running) it gets `TenantQueueFull` at once,
    /// while other tenants are still served.
    pub async fn analyze_for(
        &self,
        tenant: &str,
        image: Bytes,
        kind: ImageKind,
    ) -> Result<FaceAnalysis, FaceError> {
        self.submit(Some(tenant), image, kind).await
    }

    async fn submit(
        &self,
        tenant: Option<&str>,
        image: Bytes,
        kind: ImageKind,
    ) -> Result<FaceAnalysis, FaceError> {
        // Served while at least one worker is in service; `is_ready` (for /readyz) wants all of them.
        if self.inner.alive.load(Ordering::Acquire) == 0 {
            return Err(FaceError::NotReady);
        }
        self.precheck(&image, kind)?;
        let slot = tenant.map(|t| self.claim_tenant(t)).transpose()?;
        let (job, rx) = self.job(image, kind, slot);
        let deadline = job.deadline;
        match self.inner.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("face_jobs_total", "outcome" => "overloaded").increment(1);
                return Err(FaceError::Overloaded {
                    retry_after_secs: self.retry_after_secs(),
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(FaceError::Internal),
        }
        self.inner
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("face_queue_depth").set(self.inner.tx.len() as f64);
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(FaceError::Internal),
            // Dropping the receiver tells the worker to skip the job if it has not started.
            Err(_) => Err(FaceError::DeadlineExceeded),
        }
    }

    /// Analyses one image from a plain thread, waiting for queue space (back-pressure instead of
    /// `Overloaded`): for the CLI, calibration and benchmarks. Never call it on the async runtime.
    pub fn analyze_blocking(
        &self,
        image: Bytes,
        kind: ImageKind,
    ) -> Result<FaceAnalysis, FaceError> {
        self.precheck(&image, kind)?;
        let (mut job, rx) = self.job(image, kind, None);
        // Batch tools queue deliberately; their deadline is generous.
        job.deadline = Instant::now() + Duration::from_secs(3600);
        self.inner.tx.send(job).map_err(|_| FaceError::Internal)?;
        self.inner
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        rx.blocking_recv().map_err(|_| FaceError::Internal)?
    }

    /// Cosine similarity of two templates of the same model.
    pub fn compare(&self, a: &Template, b: &Template) -> Result<f32, ModelMismatch> {
        a.cosine(b)
    }

    /// The score threshold for a target false match rate, from the committed calibration table.
    pub fn threshold_for_fmr(&self, fmr: f64) -> Threshold {
        self.inner.calibration.threshold_for_fmr(fmr)
    }

    /// `<model id>@<first 12 hex digits of its SHA-256>`.
    pub fn model_label(&self) -> String {
        format!(
            "{}@{}",
            self.inner.model_id,
            &self.inner.model_hash[..12.min(self.inner.model_hash.len())]
        )
    }

    /// What this engine's templates are made by (the 1:N galleries hold only these).
    pub fn model_tag(&self) -> super::gallery::ModelTag {
        super::gallery::ModelTag {
            model_id: self.inner.model_id.clone(),
            model_hash: self.inner.model_hash.clone(),
            preprocessing_version: super::template::PREPROCESSING_VERSION,
        }
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.inner.tx.len()
    }

    pub fn workers(&self) -> usize {
        self.inner.workers
    }
}

/// Starts one worker thread: it loads its sessions, warms up, enters service and takes jobs.
fn spawn_worker(
    inner: &Arc<Inner>,
    kit: &WorkerKit,
    loaded: Option<std::sync::mpsc::Sender<Result<(), FaceInitError>>>,
) -> Result<(), FaceInitError> {
    let id = kit.next_id.fetch_add(1, Ordering::Relaxed);
    let slot = Arc::new(Slot::new(id));
    inner
        .slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(slot.clone());
    let kit = kit.clone();
    // Workers hold a weak handle, so dropping the last FaceEngine closes the queue and ends them.
    let weak = Arc::downgrade(inner);
    let thread_slot = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("face-worker-{id}"))
        .spawn(move || {
            let slot = thread_slot;
            let _exit = ExitGuard {
                slot: slot.clone(),
                engine: weak.clone(),
                events: kit.events.clone(),
            };
            match Workers::load(&kit.loader, kit.idle_threads) {
                Ok(mut m) => {
                    if let Some(tx) = loaded {
                        let _ = tx.send(Ok(()));
                    }
                    worker(&mut m, &kit, weak, &slot);
                }
                Err(e) => {
                    tracing::error!(worker = id, error = %e, "face worker could not load its models");
                    slot.load_failed.store(true, Ordering::Release);
                    if let Some(tx) = loaded {
                        let _ = tx.send(Err(e));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        slot.exited.store(true, Ordering::Release);
        slot.load_failed.store(true, Ordering::Release);
        return Err(FaceInitError::Worker(e.to_string()));
    }
    Ok(())
}

/// Runs when a worker thread ends, normally or by unwinding: out of service, and the supervisor told.
struct ExitGuard {
    slot: Arc<Slot>,
    engine: Weak<Inner>,
    events: Sender<()>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.engine.upgrade() {
            self.slot.retire(&inner.alive);
        }
        self.slot.exited.store(true, Ordering::Release);
        let _ = self.events.send(());
    }
}

/// The supervisor: abandons workers stuck past their job's deadline and replaces every worker that
/// ended or was abandoned, until the engine is dropped.
fn supervise(engine: Weak<Inner>, kit: WorkerKit, events: Receiver<()>, tick: Duration) {
    let mut backoff_until: Option<Instant> = None;
    loop {
        match events.recv_timeout(tick) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = engine.upgrade() else {
            return;
        };
        let now = Instant::now();
        let missing = {
            let mut slots = inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            for s in slots.iter() {
                // A tick of grace: the caller has answered DeadlineExceeded by then.
                let stuck = s.busy_until().is_some_and(|d| now > d + tick);
                if stuck && !s.abandoned.swap(true, Ordering::AcqRel) {
                    s.retire(&inner.alive);
                    inner.counters.abandoned.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("face_jobs_abandoned_total").increment(1);
                    tracing::warn!(
                        worker = s.id,
                        "face job ran past its deadline; worker abandoned and replaced"
                    );
                }
                if s.exited.load(Ordering::Acquire) && s.load_failed.load(Ordering::Acquire) {
                    backoff_until = Some(now + Duration::from_secs(1));
                }
            }
            slots.retain(|s| {
                !s.exited.load(Ordering::Acquire) && !s.abandoned.load(Ordering::Acquire)
            });
            inner.workers.saturating_sub(slots.len())
        };
        if missing == 0 || backoff_until.is_some_and(|t| now < t) {
            continue;
        }
        for _ in 0..missing {
            match spawn_worker(&inner, &kit, None) {
                Ok(()) => {
                    inner.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("face_worker_restarts_total").increment(1);
                    tracing::info!("face worker replaced");
                }
                Err(e) => {
                    tracing::error!(error = %e, "face worker could not be replaced");
                    backoff_until = Some(now + Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

/// A worker's sessions: the regular ones (one intra-op thread each), and, when
/// `face.idle_intra_threads` > 1, a second set of the detector and the recogniser with that many
/// threads, used for a job only when no other worker is running one and none is waiting (issue 25: one
/// request alone uses both cores, and under load every worker stays on one thread, so throughput is
/// what it was). Such a job runs the mask classifier on the regular set's session, on a thread of its
/// own, while the recogniser runs (see [`Sessions::Idle`]).
struct Workers {
    narrow: Models,
    wide: Option<Models>,
}

impl Workers {
    fn load(loader: &Loader, idle_threads: usize) -> Result<Workers, FaceInitError> {
        Ok(Workers {
            narrow: Models::load(&loader.env, &loader.paths, 1)?,
            wide: (idle_threads > 1)
                .then(|| Models::load_without_mask(&loader.env, &loader.paths, idle_threads))
                .transpose()?,
        })
    }

    /// The sessions for the job just taken: the wide ones only when this is the only job in the pool.
    fn pick(&mut self, others_running: usize, queued: usize) -> Sessions<'_> {
        match &mut self.wide {
            Some(wide) if others_running == 0 && queued == 0 => Sessions::Idle {
                wide,
                narrow: &mut self.narrow,
            },
            _ => Sessions::One(&mut self.narrow),
        }
    }
}

fn worker(workers: &mut Workers, kit: &WorkerKit, engine: Weak<Inner>, slot: &Slot) {
    warm_up(&mut workers.narrow);
    if let Some(wide) = workers.wide.as_mut() {
        warm_up(wide);
    }
    serve(workers, kit, engine, slot);
}

/// The first run of a session allocates and plans; do it before taking traffic.
fn warm_up(models: &mut Models) {
    let blank = RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]));
    let _ = models.detect(&blank, 0.5, 0.3);
    let _ = models.embed(&align::AlignedFace {
        rgb_planar: vec![0.0; 3 * 112 * 112],
        grey: vec![0.0; 112 * 112],
    });
    if models.has_mask() {
        let (side, second) = (super::mask::INPUT_SIDE, super::mask::SECOND_INPUT_SIDE);
        let _ = models.mask(&super::mask::MaskInput {
            nhwc: vec![0.0; side * side * 3],
        });
        let _ = models.mask_second(&super::mask::SecondMaskInput {
            nchw: vec![0.0; 3 * second * second],
        });
    }
}

fn serve(workers: &mut Workers, kit: &WorkerKit, engine: Weak<Inner>, slot: &Slot) {
    let Some(inner) = engine.upgrade() else {
        return;
    };
    if !slot.in_service.swap(true, Ordering::AcqRel) {
        let alive = inner.alive.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!("face_workers_alive").set(alive as f64);
        if alive == inner.workers {
            tracing::info!("face engine warm");
        }
    }
    let cfg = inner.cfg.clone();
    let (model_id, model_hash) = (inner.model_id.clone(), inner.model_hash.clone());
    drop(inner);
    let rx = &kit.rx;
    while let Ok(mut job) = rx.recv() {
        let tenant = job.tenant.take();
        let started = Instant::now();
        metrics::gauge!("face_queue_depth").set(rx.len() as f64);
        metrics::histogram!("face_queue_wait_seconds")
            .record(started.duration_since(job.queued).as_secs_f64());
        if job.reply.is_closed() {
            continue;
        }
        if started > job.deadline {
            metrics::counter!("face_jobs_total", "outcome" => "deadline").increment(1);
            drop(tenant);
            let _ = job.reply.send(Err(FaceError::DeadlineExceeded));
            continue;
        }
        let _span = job.span.clone().entered();
        slot.set_busy(Some(job.deadline));
        let others_running = kit.running.fetch_add(1, Ordering::AcqRel);
        let models = workers.pick(others_running, rx.len());
        let idle = matches!(models, Sessions::Idle { .. });
        let result = catch_unwind(AssertUnwindSafe(|| {
            kit.faults.inject(&job.image, slot, job.deadline);
            run_pipeline(models, &cfg, &job.image, job.kind, &model_id, &model_hash)
        }));
        kit.running.fetch_sub(1, Ordering::AcqRel);
        slot.set_busy(None);
        let spent = started.elapsed();
        let Ok(result) = result else {
            // The sessions may be in any state after a panic: answer this job, then end the thread;
            // the supervisor starts a fresh worker.
            if let Some(inner) = engine.upgrade() {
                inner.counters.panics.fetch_add(1, Ordering::Relaxed);
                slot.retire(&inner.alive);
            }
            metrics::counter!("face_worker_panics_total").increment(1);
            metrics::counter!("face_jobs_total", "outcome" => "panic").increment(1);
            tracing::error!(
                worker = slot.id,
                kind = ?job.kind,
                "face worker panicked; the job fails and the worker is replaced"
            );
            drop(tenant);
            let _ = job.reply.send(Err(FaceError::WorkerPanicked));
            return;
        };
        metrics::histogram!("face_job_seconds").record(spent.as_secs_f64());
        if let Ok(a) = &result {
            let t = &a.timings;
            tracing::debug!(
                idle,
                total_us = spent.as_micros() as u64,
                decode_us = t.decode.as_micros() as u64,
                preprocess_us = t.preprocess.as_micros() as u64,
                detect_us = t.detect.as_micros() as u64,
                postprocess_us = t.postprocess.as_micros() as u64,
                mask_us = t.mask.as_micros() as u64,
                embed_us = t.embed.as_micros() as u64,
                "face job"
            );
            let inference = a.timings.detect + a.timings.embed + a.timings.mask;
            metrics::histogram!("face_inference_seconds").record(inference.as_secs_f64());
        }
        metrics::counter!("face_jobs_total", "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
        if let Some(inner) = engine.upgrade() {
            let old = inner.avg_job_us.load(Ordering::Relaxed);
            let new = (old * 7 + spent.as_micros() as u64) / 8;
            inner.avg_job_us.store(new, Ordering::Relaxed);
        }
        drop(tenant);
        let _ = job.reply.send(result);
        if slot.abandoned.load(Ordering::Acquire) {
            // Replaced already: take no more jobs.
            return;
        }
    }
}
