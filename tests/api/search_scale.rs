//! Measurements for docs/performance.md (issue 21), not tests: ignored by default, they assert no
//! timing and print what they measured. Run one with, e.g.,
//! `JPKI_SCALE_N=100000 cargo test --release --test api -- --ignored --nocapture search_scale::postgres_build`.
//!
//! They fill a tenant's gallery with N synthetic enrollments (random unit vectors, sealed exactly as
//! real ones under per-enrollment keys, with a sealed identity), then time the start-up build
//! (`usecase::search::sync::build`: paged reads + unsealing) and enrollments with the duplicate check
//! off and on.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::crypto::{Owner, RecordKind};
use jpki_face::domain::{now_millis, EnrollmentId, SessionId};
use jpki_face::face::Template;
use std::time::Instant;

fn n() -> usize {
    std::env::var("JPKI_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Inserts `n` synthetic verified enrollments with sealed identity and selfie template.
async fn fill(app: &TestApp, n: usize) {
    use rand::{Rng, SeedableRng};
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    let tag = app.ctx.svc.face.model_tag();
    let identity = serde_json::json!({"name": "合成\u{3000}太郎", "name_alt": "", "birth_date": "1980-01-01",
        "sex": "male", "address": "東京都", "address_alt": ""});
    let identity = serde_json::to_vec(&identity).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let now = now_millis();
    let started = Instant::now();
    const BATCH: usize = 500;
    let mut done = 0;
    while done < n {
        let k = BATCH.min(n - done);
        let mut sessions = Vec::with_capacity(k);
        let mut enrollments = Vec::with_capacity(k);
        let mut templates = Vec::with_capacity(k);
        for _ in 0..k {
            let (sid, eid) = (SessionId::new(), EnrollmentId::new());
            let owner = Owner {
                tenant_id: &app.tenant_id,
                enrollment_id: &eid,
            };
            let (dek, wrapped) = app.ctx.svc.keys.new_data_key(owner);
            let t = Template {
                model_id: tag.model_id.clone(),
                model_hash: tag.model_hash.clone(),
                preprocessing_version: tag.preprocessing_version,
                vector: (0..128).map(|_| rng.gen_range(-1.0f32..1.0)).collect(),
            };
            let sealed_t = dek.seal(owner, RecordKind::Template, &t.to_bytes());
            let sealed_i = dek.seal(owner, RecordKind::Identity, &identity);
            sessions.push((sid.clone(), rand::random::<[u8; 32]>()));
            enrollments.push((eid.clone(), sid, sealed_i, wrapped));
            templates.push((eid, sealed_t));
        }
        let mut q = String::from("INSERT INTO sessions (id, tenant_id, purpose, client_token_hash, nonce, created_at, expires_at, consumed_at) VALUES ");
        for i in 0..k {
            let b = i * 3;
            q.push_str(&format!(
                "{}(${}, $0T, 'enrollment', ${}, ${}, $0N, $0N, $0N)",
                if i > 0 { "," } else { "" },
                b + 1,
                b + 2,
                b + 3
            ));
        }
        let q = q
            .replace("$0T", &format!("'{}'", app.tenant_id))
            .replace("$0N", &now.to_string());
        let mut query = sqlx::query(&q);
        for (sid, hash) in &sessions {
            query = query
                .bind(sid.to_string())
                .bind(hash.to_vec())
                .bind(vec![0u8; 32]);
        }
        query.execute(&pool).await.unwrap();

        let mut q = String::from("INSERT INTO enrollments (id, tenant_id, session_id, status, document, identity_sealed, kek_id, wrapped_dek, created_at, updated_at) VALUES ");
        for i in 0..k {
            let b = i * 5;
            q.push_str(&format!(
                "{}(${}, $0T, ${}, 'verified', '{{}}', ${}, ${}, ${}, $0N, $0N)",
                if i > 0 { "," } else { "" },
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            ));
        }
        let q = q
            .replace("$0T", &format!("'{}'", app.tenant_id))
            .replace("$0N", &now.to_string());
        let mut query = sqlx::query(&q);
        for (eid, sid, sealed_i, wrapped) in &enrollments {
            query = query
                .bind(eid.to_string())
                .bind(sid.to_string())
                .bind(sealed_i.clone())
                .bind(wrapped.kek_id.clone())
                .bind(wrapped.blob.clone());
        }
        query.execute(&pool).await.unwrap();

        let mut q = String::from("INSERT INTO face_templates (id, tenant_id, enrollment_id, source, model_id, model_hash, preprocessing_version, sealed, created_at) VALUES ");
        for i in 0..k {
            let b = i * 3;
            q.push_str(&format!(
                "{}(${}, $0T, ${}, 'enrollment_selfie', $0M, $0H, '1', ${}, $0N)",
                if i > 0 { "," } else { "" },
                b + 1,
                b + 2,
                b + 3
            ));
        }
        let q = q
            .replace("$0T", &format!("'{}'", app.tenant_id))
            .replace("$0N", &now.to_string())
            .replace("$0M", &format!("'{}'", tag.model_id))
            .replace("$0H", &format!("'{}'", tag.model_hash));
        let mut query = sqlx::query(&q);
        for (eid, sealed_t) in &templates {
            query = query
                .bind(jpki_face::domain::new_id("tpl"))
                .bind(eid.to_string())
                .bind(sealed_t.clone());
        }
        query.execute(&pool).await.unwrap();
        done += k;
    }
    pool.close().await;
    println!(
        "filled {n} synthetic enrollments in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn set_duplicate_check(app: &TestApp, mode: &str) {
    let pool = sqlx::AnyPool::connect(&app.db_url).await.unwrap();
    sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
        .bind(format!("{{\"duplicate_check\":\"{mode}\"}}"))
        .bind(app.tenant_id.to_string())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(backend: Backend) {
    sqlx::any::install_default_drivers();
    let mut options = cards().app_options(backend);
    options.toml.push_str("[status_checks]\nenabled = false\n");
    let app = spawn_app_with(options).await;
    let n = n();
    fill(&app, n).await;
    let svc = &app.ctx.svc;
    for round in 0..2 {
        let report = jpki_face::usecase::search::sync::build(svc, &svc.faces)
            .await
            .unwrap();
        println!(
            "build {round}: {} enrollments, {} skipped, {:.2} s (reading {:.2} s, unsealing {:.2} s, overlapped; {:.1} µs per template), gallery memory {} bytes ({:.0} bytes per template)",
            report.enrollments,
            report.skipped,
            report.elapsed.as_secs_f64(),
            report.read.as_secs_f64(),
            report.unseal.as_secs_f64(),
            report.elapsed.as_secs_f64() * 1e6 / report.enrollments.max(1) as f64,
            report.memory_bytes,
            report.memory_bytes as f64 / report.enrollments.max(1) as f64,
        );
    }
    // The read alone (no unsealing).
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<jpki_face::store::EnrollmentFace>>(2);
    let count = async {
        let mut rows = 0;
        while let Some(page) = rx.recv().await {
            rows += page.len();
        }
        rows
    };
    let (sent, rows) = tokio::join!(svc.store.stream_enrollment_faces(5_000, tx), count);
    sent.unwrap();
    let read = started.elapsed().as_secs_f64();
    println!(
        "read only: {rows} rows in {read:.2} s ({:.0} rows/s)",
        rows as f64 / read
    );

    // Alternating modes request by request, so a change in the machine's load hits both alike.
    let (mut off, mut flag) = (Vec::new(), Vec::new());
    for i in 0..40 {
        let mode = if i % 2 == 0 { "off" } else { "flag" };
        set_duplicate_check(&app, mode).await;
        let session = app.enrollment_session().await;
        let card = cards().sign(&cards().a_other_identity, &session);
        let started = Instant::now();
        let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(response.status(), 201);
        if mode == "off" {
            off.push(ms)
        } else {
            flag.push(ms)
        }
    }
    for (mode, times) in [("off", &mut off), ("flag", &mut flag)] {
        times.sort_by(f64::total_cmp);
        println!(
            "enrollment, duplicate_check={mode}, gallery ~{}: p50 {:.1} ms, p90 {:.1} ms, min {:.1} ms, mean {:.1} ms ({} requests, sequential, alternating)",
            svc.faces.len(&app.tenant_id),
            pct(times, 0.5),
            pct(times, 0.9),
            times[0],
            times.iter().sum::<f64>() / times.len() as f64,
            times.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/performance.md, not a test"]
async fn postgres_build() {
    measure(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/performance.md, not a test"]
async fn sqlite_build() {
    measure(Backend::Sqlite).await
}
