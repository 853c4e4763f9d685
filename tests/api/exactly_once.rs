//! Exactly once under retries and races (issue 15), on both backends: replays that work, a key
//! reserved before the work runs, keys bound to the caller, answers stored in the same transaction
//! as what they answer, and a lockout that parallel attempts cannot race past.

use crate::cards::*;
use crate::helpers::*;
use jpki_face::store::CountedTable;
use serde_json::{json, Value};
use std::time::Duration;

crate::on_both_backends!(
    a_retry_after_201_replays_the_same_answer,
    concurrent_requests_with_one_key_run_the_work_once,
    a_retry_after_revocation_unavailable_runs_again,
    a_client_token_cannot_plant_an_answer_for_the_backend,
    parallel_wrong_faces_lock_the_enrollment_without_lost_updates,
    deleting_an_enrollment_destroys_its_stored_answers,
    connection_kills_leave_no_enrollment_a_retry_cannot_learn,
);

async fn parts(response: reqwest::Response) -> (u16, bool, Vec<u8>) {
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, replayed, response.bytes().await.unwrap().to_vec())
}

async fn audit_events(app: &TestApp, event: &str) -> usize {
    app.ctx
        .svc
        .store
        .audit_rows(&app.tenant_id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event == event)
        .count()
}

async fn a_retry_after_201_replays_the_same_answer(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let (status, replayed, first) =
        parts(enroll_keyed(&app, &client_token(&session), &card, "enr-try-1").await).await;
    assert_eq!((status, replayed), (201, false));
    let body: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    // The flaky phone sends it again: same key, same body. The 201 comes back, byte for byte.
    let (status, replayed, again) =
        parts(enroll_keyed(&app, &client_token(&session), &card, "enr-try-1").await).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    // The same key with another body is a conflict; no key at all meets the consumed session.
    let other = cards.sign(&cards.b, &session);
    let response = enroll_keyed(&app, &client_token(&session), &other, "enr-try-1").await;
    assert_problem(response, 409, "idempotency_conflict").await;
    let response = post_enrollment(&app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_problem(response, 409, "session_consumed").await;
    assert_eq!(app.count(CountedTable::Enrollments).await, 1);

    // The verify endpoint replays too (API key, server to server).
    let id = body["id"].as_str().unwrap().to_string();
    let verify = || async {
        app.client
            .post(app.url("/v1/transactions/verify"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "ver-try-1")
            .multipart(verify_form(A_LATER, &[("enrollment_id", id.clone())]))
            .send()
            .await
            .unwrap()
    };
    let (s1, r1, b1) = parts(verify().await).await;
    let (s2, r2, b2) = parts(verify().await).await;
    assert_eq!((s1, r1, s2, r2), (200, false, 200, true));
    assert_eq!(b1, b2);
    assert_eq!(app.count(CountedTable::Verifications).await, 1);
}

async fn concurrent_requests_with_one_key_run_the_work_once(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let requests = (0..10).map(|_| {
        let (app, token, card) = (&app, client_token(&session), card.clone());
        async move { parts(enroll_keyed(app, &token, &card, "same-key").await).await }
    });
    let answers = futures::future::join_all(requests).await;
    let fresh: Vec<_> = answers.iter().filter(|(s, r, _)| *s == 201 && !r).collect();
    let replays: Vec<_> = answers.iter().filter(|(s, r, _)| *s == 201 && *r).collect();
    let in_progress = answers
        .iter()
        .filter(|(s, _, b)| {
            *s == 409
                && serde_json::from_slice::<Value>(b).unwrap()["code"] == "idempotency_in_progress"
        })
        .count();
    assert_eq!(
        fresh.len(),
        1,
        "exactly one request ran the work: {answers:?}"
    );
    assert_eq!(
        fresh.len() + replays.len() + in_progress,
        10,
        "the rest replayed or were told to wait"
    );
    for (_, _, body) in &replays {
        assert_eq!(body, &fresh[0].2);
    }
    assert_eq!(app.count(CountedTable::Enrollments).await, 1);
    assert_eq!(audit_events(&app, "enrollment.created").await, 1);
    // Once it has finished, a late retry replays it.
    let (status, replayed, body) =
        parts(enroll_keyed(&app, &client_token(&session), &card, "same-key").await).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(body, fresh[0].2);
}

async fn a_retry_after_revocation_unavailable_runs_again(backend: Backend) {
    let cards = cards();
    // The OCSP responder sits behind a proxy that is down for the first attempt.
    let target: &'static str =
        Box::leak(format!("127.0.0.1:{}", cards.responder_port()).into_boxed_str());
    let proxy = Proxy::start(target).await;
    let mut options = AppOptions::new(backend);
    options.toml = cards.toml(proxy.port);
    let app = spawn_app_with(options).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    proxy.down();
    let response = enroll_keyed(&app, &client_token(&session), &card, "after-503").await;
    assert!(response.headers().get("retry-after").is_some());
    assert_problem(response, 503, "revocation_unavailable").await;
    assert_eq!(app.count(CountedTable::Enrollments).await, 0);
    proxy.up();
    let (status, replayed, body) =
        parts(enroll_keyed(&app, &client_token(&session), &card, "after-503").await).await;
    assert_eq!(
        (status, replayed),
        (201, false),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "verified");
    assert_eq!(app.count(CountedTable::Enrollments).await, 1);
}

async fn a_client_token_cannot_plant_an_answer_for_the_backend(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let mine = enroll_person_a(&app).await;
    let victims = enroll_person_a(&app).await;
    let session = open_session(
        &app,
        json!({"purpose": "transaction", "enrollment_id": mine}),
    )
    .await;
    // A field the client path would ignore is refused outright.
    let planted = app
        .client
        .post(app.url("/v1/transactions/verify"))
        .bearer_auth(client_token(&session))
        .header("idempotency-key", "shared-key")
        .multipart(verify_form(B_SELFIE, &[("enrollment_id", victims.clone())]))
        .send()
        .await
        .unwrap();
    assert_problem(planted, 400, "malformed_request").await;
    // The client token's own verify under the key the backend will use.
    let (status, _, client_body) = parts(
        app.client
            .post(app.url("/v1/transactions/verify"))
            .bearer_auth(client_token(&session))
            .header("idempotency-key", "shared-key")
            .multipart(verify_form(B_SELFIE, &[]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let client_body: Value = serde_json::from_slice(&client_body).unwrap();
    assert_eq!(client_body["enrollment_id"], mine.as_str());
    assert_eq!(client_body["decision"], "no_match");
    // The backend's request with that key is its own: it runs, for the enrollment it names.
    let (status, replayed, backend_body) = parts(
        app.client
            .post(app.url("/v1/transactions/verify"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "shared-key")
            .multipart(verify_form(A_LATER, &[("enrollment_id", victims.clone())]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, replayed), (200, false));
    let backend_body: Value = serde_json::from_slice(&backend_body).unwrap();
    assert_eq!(backend_body["enrollment_id"], victims.as_str());
    assert_eq!(backend_body["decision"], "match");
}

async fn parallel_wrong_faces_lock_the_enrollment_without_lost_updates(backend: Backend) {
    let cards = cards();
    let mut options = cards.app_options(backend);
    options
        .toml
        .push_str("[verification.lockout]\nmax_failures = 5\nwindow_secs = 900\nlock_secs = 900\n");
    let app = spawn_app_with(options).await;
    let id = enroll_person_a(&app).await;
    let attempts = (0..20).map(|_| {
        let (app, id) = (&app, id.clone());
        async move {
            let response = post_verify(app, &app.api_key, B_SELFIE, &[("enrollment_id", id)]).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let no_match = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["decision"] == "no_match")
        .count();
    let locked = answers
        .iter()
        .filter(|(s, b)| *s == 423 && b["code"] == "enrollment_locked")
        .count();
    assert_eq!(no_match + locked, 20, "{answers:?}");
    assert!(no_match >= 5, "at least the limit ran: {no_match}");
    // Every attempt that ran is recorded and counted: no lost update.
    assert_eq!(
        app.count(CountedTable::Verifications).await as usize,
        no_match
    );
    let row = app
        .ctx
        .svc
        .store
        .get_enrollment(
            &app.tenant_id,
            &jpki_face::domain::EnrollmentId::parse(&id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.failed_count as usize, no_match, "relative counting");
    assert!(row.locked_until.is_some(), "locked");
    assert_eq!(
        audit_events(&app, "enrollment.locked").await,
        1,
        "locked once"
    );
    // The right face during the lock is refused too.
    let response = post_verify(&app, &app.api_key, A_LATER, &[("enrollment_id", id)]).await;
    assert!(response.headers().get("retry-after").is_some());
    assert_problem(response, 423, "enrollment_locked").await;
}

async fn deleting_an_enrollment_destroys_its_stored_answers(backend: Backend) {
    let cards = cards();
    let app = spawn_app_with(cards.app_options(backend)).await;
    let session = app.enrollment_session().await;
    let card = cards.sign(&cards.a, &session);
    let (status, _, body) =
        parts(enroll_keyed(&app, &client_token(&session), &card, "to-delete").await).await;
    assert_eq!(status, 201);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let id = body["id"].as_str().unwrap();
    // The stored answer holds the identity: sealed under the enrollment's key, not the KEK.
    let sealed_under: Vec<Option<String>> = sql_strings(
        &app,
        &format!("SELECT sealed_under FROM idempotency_keys WHERE tenant_id = '{}' AND resource_id = '{id}'", app.tenant_id),
    )
    .await;
    assert_eq!(sealed_under, vec![Some(id.to_string())]);
    let response = app
        .client
        .delete(app.url(&format!("/v1/enrollments/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.count(CountedTable::IdempotencyKeys).await,
        0,
        "the stored answer went with the enrollment"
    );
    let left = sql_strings(
        &app,
        &format!(
            "SELECT resource_id FROM idempotency_keys WHERE tenant_id = '{}'",
            app.tenant_id
        ),
    )
    .await;
    assert!(!left.contains(&Some(id.to_string())));
    // What the RP said about the person when opening the session is gone with the enrollment.
    let subject = sql_strings(
        &app,
        &format!(
            "SELECT subject_ref FROM sessions WHERE id = '{}'",
            session["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(subject, vec![None]);
    // A retry of the deleted enrollment's key cannot bring it back.
    let response = enroll_keyed(&app, &client_token(&session), &card, "to-delete").await;
    assert_problem(response, 409, "session_consumed").await;
}

/// One text column of a query, straight from the database (no service code in between).
async fn sql_strings(app: &TestApp, sql: &str) -> Vec<Option<String>> {
    use sqlx::Row;
    if app.db_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
        rows.iter().map(|r| r.get::<Option<String>, _>(0)).collect()
    } else {
        let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
        rows.iter().map(|r| r.get::<Option<String>, _>(0)).collect()
    }
}

/// Enrollments through a database connection that is cut every 150 ms: every client retries with its
/// key until it learns its enrollment, and every stored enrollment is one a client learned.
async fn connection_kills_leave_no_enrollment_a_retry_cannot_learn(backend: Backend) {
    let cards = cards();
    let mut options = cards.app_options(backend);
    let proxy = match backend {
        Backend::Postgres => {
            let proxy = Proxy::start("127.0.0.1:5432").await;
            let (_, name) = fresh_pg_database().await;
            options.db_url = Some(format!(
                "postgres://postgres@127.0.0.1:{}/{name}",
                proxy.port
            ));
            Some(proxy)
        }
        // SQLite has no connection to kill: the same flow still has to hold.
        Backend::Sqlite => None,
    };
    // A request that died keeps its key for 30 s at most; retries keep coming for up to 90 s.
    options
        .toml
        .push_str("[server]\nrequest_deadline_secs = 20\n[idempotency]\nreservation_secs = 30\n");
    let app = spawn_app_with(options).await;
    let mut jobs = Vec::new();
    for i in 0..8 {
        let session = app.enrollment_session().await;
        let card = cards.sign(&cards.a, &session);
        jobs.push((client_token(&session), card, format!("storm-{i}")));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = proxy.as_ref().map(|p| {
        let cut = p.cutter();
        let stop = stop.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                cut.send_modify(|n| *n += 1);
            }
        })
    });
    let clients = jobs.iter().map(|(token, card, key)| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            let mut last = (0, Value::Null);
            while started.elapsed() < Duration::from_secs(90) {
                let response = enroll_keyed(app, token, card, key).await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                match status {
                    201 => return Ok(body["id"].as_str().unwrap().to_string()),
                    503 => {}
                    409 if body["code"] == "idempotency_in_progress" => {}
                    _ => panic!("unexpected answer {status}: {body}"),
                }
                last = (status, body);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(last)
        }
    });
    let learned: Vec<Result<String, (u16, Value)>> = futures::future::join_all(clients).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(k) = killer {
        k.await.unwrap();
    }
    let learned: Vec<String> = learned
        .into_iter()
        .map(|id| id.expect("every client learned its enrollment"))
        .collect();
    assert_eq!(
        app.count(CountedTable::Enrollments).await as usize,
        learned.len()
    );
    let stored = sql_strings(
        &app,
        &format!(
            "SELECT id FROM enrollments WHERE tenant_id = '{}'",
            app.tenant_id
        ),
    )
    .await;
    for id in stored {
        assert!(
            learned.contains(&id.unwrap()),
            "an enrollment no client learned"
        );
    }
}
