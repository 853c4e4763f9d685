//! Keeping a replica's galleries equal to the database: a start-up build that unseals every live
//! enrollment's selfie template and every watchlist entry (in parallel, off the async runtime), then
//! a poll of the change feed `gallery_changes` (`seq > last`, every `search.poll_interval_ms`) that
//! re-reads each named row. The feed holds ids only; the vectors are unsealed here, in memory.

use super::index::{FaceIndex, FaceMeta, Galleries};
use crate::card::Identity;
use crate::crypto::{EntryOwner, KeyRing, Owner, RecordKind};
use crate::domain::{now_millis, EnrollmentId, TenantId};
use crate::face::Template;
use crate::store::{EnrollmentFace, FeedKind, FeedOp, GalleryChange, WatchlistRow};
use crate::usecase::Services;
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows read per page of a build, and feed rows per poll query.
const PAGE: i64 = 5_000;

/// What a build did.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildReport {
    pub enrollments: usize,
    pub watchlist: usize,
    /// Rows that could not be unsealed or were of another model (logged, left out).
    pub skipped: usize,
    pub seq: i64,
    pub elapsed: Duration,
    /// Of `elapsed`: waiting for the database's pages, and unsealing them (on every core).
    pub read: Duration,
    pub unseal: Duration,
    pub memory_bytes: usize,
}

/// An enrollment's row, unsealed: its template and what the duplicate check needs.
fn open_face(
    keys: &KeyRing,
    index: &FaceIndex,
    row: &EnrollmentFace,
) -> anyhow::Result<(Template, FaceMeta)> {
    let owner = Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.enrollment_id,
    };
    let dek = keys.unwrap_key(owner, &row.wrapped_key)?;
    let plain = zeroize::Zeroizing::new(dek.open(
        owner,
        RecordKind::Template,
        row.template.sealed.expose(),
    )?);
    let template = Template::from_bytes(&plain).map_err(|e| anyhow::anyhow!("{e}"))?;
    let identity = zeroize::Zeroizing::new(dek.open(
        owner,
        RecordKind::Identity,
        row.identity_sealed.expose(),
    )?);
    let identity: Identity = serde_json::from_slice(&identity)?;
    Ok((
        template,
        FaceMeta {
            status: row.status,
            identity: index.identity_tag(&identity),
        },
    ))
}

/// A watchlist entry's template, unsealed.
pub(super) fn open_watch(keys: &KeyRing, row: &WatchlistRow) -> anyhow::Result<Template> {
    let owner = EntryOwner {
        tenant_id: &row.tenant_id,
        entry_id: &row.id,
    };
    let dek = keys.unwrap_key(owner, &row.wrapped_key)?;
    let plain = zeroize::Zeroizing::new(dek.open(
        owner,
        RecordKind::Template,
        row.template_sealed.expose(),
    )?);
    Template::from_bytes(&plain).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Unseals one page on every core (AES-GCM and JSON: CPU work, kept off the async executor).
fn open_page(
    keys: &KeyRing,
    index: &FaceIndex,
    rows: &[EnrollmentFace],
) -> Vec<Option<(Template, FaceMeta)>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(rows.len().max(1));
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|row| match open_face(keys, index, row) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                tracing::warn!(enrollment_id = %row.enrollment_id, error = %e, "gallery: template left out (cannot unseal)");
                                None
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Builds every tenant's galleries from the database and swaps them in; the index is ready after.
/// The feed position is read first: a change committed during the build is applied again by the
/// next poll (applying is idempotent), so nothing falls between the two.
pub async fn build(svc: &Services, index: &Arc<FaceIndex>) -> anyhow::Result<BuildReport> {
    let started = Instant::now();
    let seq = svc
        .store
        .gallery_feed_bounds()
        .await?
        .map_or(0, |(_, hi)| hi);
    let mut built = Galleries::new(index.model().clone());
    let mut report = BuildReport {
        seq,
        ..BuildReport::default()
    };
    // One query streams the rows; each batch is unsealed on the blocking pool while the next is read.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let read = async {
        let t = Instant::now();
        let sent = svc.store.stream_enrollment_faces(PAGE as usize, tx).await;
        (sent, t.elapsed())
    };
    let consume = async {
        let mut unseal = Duration::ZERO;
        while let Some(page) = rx.recv().await {
            let (keys, idx) = (svc.keys.clone(), index.clone());
            let t = Instant::now();
            let (rows, opened) = tokio::task::spawn_blocking(move || {
                let opened = open_page(&keys, &idx, &page);
                (page, opened)
            })
            .await
            .context("gallery build worker")?;
            unseal += t.elapsed();
            for (row, opened) in rows.iter().zip(opened) {
                let inserted = opened.map(|(template, meta)| {
                    built.upsert_face(&row.tenant_id, row.enrollment_id.as_str(), &template, meta)
                });
                match inserted {
                    Some(Ok(())) => report.enrollments += 1,
                    Some(Err(e)) => {
                        tracing::warn!(enrollment_id = %row.enrollment_id, error = %e, "gallery: template left out");
                        report.skipped += 1;
                    }
                    None => report.skipped += 1,
                }
            }
        }
        Ok::<Duration, anyhow::Error>(unseal)
    };
    let ((sent, read_time), unsealed) = tokio::join!(read, consume);
    report.unseal = unsealed?;
    report.read = read_time;
    sent?;
    let mut after: Option<String> = None;
    loop {
        let rows = svc
            .store
            .all_watchlist_entries(after.as_deref(), PAGE)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for row in &rows {
            match open_watch(&svc.keys, row)
                .and_then(|t| Ok(built.upsert_watch(&row.tenant_id, &row.id, &t)?))
            {
                Ok(()) => report.watchlist += 1,
                Err(e) => {
                    tracing::warn!(entry_id = %row.id, error = %e, "watchlist: entry left out");
                    report.skipped += 1;
                }
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    report.memory_bytes = built.memory_bytes();
    index.replace(built, seq);
    report.elapsed = started.elapsed();
    tracing::info!(
        enrollments = report.enrollments,
        watchlist = report.watchlist,
        skipped = report.skipped,
        seq = report.seq,
        elapsed_ms = report.elapsed.as_millis() as u64,
        read_ms = report.read.as_millis() as u64,
        unseal_ms = report.unseal.as_millis() as u64,
        memory_bytes = report.memory_bytes,
        "gallery built"
    );
    metrics::gauge!("gallery_templates").set(report.enrollments as f64);
    Ok(report)
}

/// Applies one enrollment's current state: in the gallery if it is live with a template, else out.
pub async fn refresh_enrollment(
    svc: &Services,
    index: &FaceIndex,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> anyhow::Result<()> {
    match svc.store.enrollment_face(tenant_id, id).await? {
        Some(row) => match open_face(&svc.keys, index, &row) {
            Ok((template, meta)) => {
                if let Err(e) = index.upsert_face(tenant_id, id.as_str(), &template, meta) {
                    tracing::warn!(enrollment_id = %id, error = %e, "gallery: template left out");
                    index.remove_face(tenant_id, id.as_str());
                }
            }
            Err(e) => {
                tracing::warn!(enrollment_id = %id, error = %e, "gallery: template left out (cannot unseal)");
                index.remove_face(tenant_id, id.as_str());
            }
        },
        None => {
            index.remove_face(tenant_id, id.as_str());
        }
    }
    Ok(())
}

async fn refresh_watch(
    svc: &Services,
    index: &FaceIndex,
    tenant_id: &TenantId,
    id: &str,
) -> anyhow::Result<()> {
    match svc.store.watchlist_entry(tenant_id, id).await? {
        Some(row) => match open_watch(&svc.keys, &row) {
            Ok(t) => {
                if let Err(e) = index.upsert_watch(tenant_id, id, &t) {
                    tracing::warn!(entry_id = %id, error = %e, "watchlist: entry left out");
                    index.remove_watch(tenant_id, id);
                }
            }
            Err(e) => {
                tracing::warn!(entry_id = %id, error = %e, "watchlist: entry left out");
                index.remove_watch(tenant_id, id);
            }
        },
        None => {
            index.remove_watch(tenant_id, id);
        }
    }
    Ok(())
}

async fn apply(svc: &Services, index: &FaceIndex, c: &GalleryChange) -> anyhow::Result<()> {
    match (c.kind, c.op) {
        (FeedKind::Enrollment, FeedOp::Remove) => {
            index.remove_face(&c.tenant_id, &c.subject_id);
        }
        (FeedKind::Enrollment, FeedOp::Upsert) => match EnrollmentId::parse(&c.subject_id) {
            Some(id) => refresh_enrollment(svc, index, &c.tenant_id, &id).await?,
            None => tracing::warn!(seq = c.seq, "gallery feed: not an enrollment id"),
        },
        (FeedKind::Watchlist, FeedOp::Remove) => {
            index.remove_watch(&c.tenant_id, &c.subject_id);
        }
        (FeedKind::Watchlist, FeedOp::Upsert) => {
            refresh_watch(svc, index, &c.tenant_id, &c.subject_id).await?
        }
    }
    Ok(())
}

/// One poll: applies every feed row after the index's position, in order. If rows the index has
/// not seen were pruned meanwhile (a replica cut off for longer than the feed is kept), rebuilds.
pub async fn poll_once(svc: &Services, index: &Arc<FaceIndex>) -> anyhow::Result<usize> {
    if !index.is_ready() {
        return build(svc, index).await.map(|r| r.enrollments);
    }
    let last = index.applied_seq();
    if let Some((lo, _)) = svc.store.gallery_feed_bounds().await? {
        if lo > last + 1 && last > 0 {
            tracing::warn!(
                last,
                oldest = lo,
                "gallery feed pruned past this replica: rebuilding"
            );
            return build(svc, index).await.map(|r| r.enrollments);
        }
    }
    let mut applied = 0;
    let mut after = last;
    loop {
        let changes = svc.store.gallery_changes_after(after, PAGE).await?;
        for c in &changes {
            apply(svc, index, c).await?;
            index.set_applied_seq(c.seq);
            after = c.seq;
            applied += 1;
        }
        if (changes.len() as i64) < PAGE {
            break;
        }
    }
    Ok(applied)
}

/// The replica's job: build, then poll until shutdown; prune old feed rows now and then.
pub async fn run(
    svc: Services,
    index: Arc<FaceIndex>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let cfg = &svc.settings.search;
    let period = Duration::from_millis(cfg.poll_interval_ms.max(10));
    let keep_ms = (cfg.feed_retention_secs as i64).saturating_mul(1000);
    let mut last_prune = Instant::now();
    let prune_every = Duration::from_secs(3_600);
    crate::jobs::every("gallery feed poll", period, shutdown, || {
        let (svc, index) = (&svc, &index);
        let prune = last_prune.elapsed() >= prune_every;
        if prune {
            last_prune = Instant::now();
        }
        async move {
            poll_once(svc, index).await?;
            if prune {
                svc.store
                    .prune_gallery_changes(now_millis() - keep_ms)
                    .await?;
            }
            Ok::<(), anyhow::Error>(())
        }
    })
    .await;
}
