//! The store's contract, run against both backends: every read is scoped by tenant, writes that
//! belong together are atomic, sessions are consumed once.

use crate::helpers::*;
use jpki_face::crypto::{Owner, RecordKind};
use jpki_face::domain::{
    new_id, now_millis, prefix, EnrollmentId, Purpose, SessionId, TemplateSource, TenantId,
    VerificationDecision, VerificationId, WebhookId,
};
use jpki_face::lockout::Lockout;
use jpki_face::redact::Secret;
use jpki_face::store::{
    AuditEvent, CountedTable, NewEnrollment, NewSession, NewVerification, NewWebhookEndpoint,
    Store, StoreError, StoredTemplate, VerificationWrite,
};

pub const TEST_NAME: &str = "山田　太郎";

/// A session plus an enrollment (sealed identity, one sealed template) for `tenant_id`.
pub async fn insert_enrollment(app: &TestApp, tenant_id: &TenantId, status: &str) -> EnrollmentId {
    let session_id = insert_session(app, tenant_id).await;
    let enrollment = new_enrollment(app, tenant_id, &session_id, status);
    let audit = AuditEvent::new(
        tenant_id,
        jpki_face::domain::AuditKind::EnrollmentCreated,
        enrollment.id.as_str(),
        serde_json::json!({"status": status}),
    );
    app.ctx
        .svc
        .store
        .create_enrollment(&enrollment, &audit, None, &[])
        .await
        .expect("enrollment stored");
    enrollment.id
}

pub async fn insert_session(app: &TestApp, tenant_id: &TenantId) -> SessionId {
    let now = now_millis();
    let session = NewSession {
        id: SessionId::new(),
        tenant_id: tenant_id.clone(),
        purpose: Purpose::Enrollment,
        subject_ref: Some("customer-1".into()),
        enrollment_id: None,
        context: None,
        client_token_hash: rand::random(),
        nonce: rand::random(),
        liveness: None,
        created_at: now,
        expires_at: now + 600_000,
    };
    let audit = AuditEvent::new(
        tenant_id,
        jpki_face::domain::AuditKind::SessionCreated,
        session.id.as_str(),
        serde_json::json!({}),
    );
    app.ctx
        .svc
        .store
        .create_session(&session, &audit, None)
        .await
        .expect("session stored");
    session.id
}

pub fn new_enrollment(
    app: &TestApp,
    tenant_id: &TenantId,
    session_id: &SessionId,
    status: &str,
) -> NewEnrollment {
    let id = EnrollmentId::new();
    let owner = Owner {
        tenant_id,
        enrollment_id: &id,
    };
    let (dek, wrapped) = app.ctx.svc.keys.new_data_key(owner);
    let identity = serde_json::json!({"name": TEST_NAME, "birth_date": "1990-01-02"}).to_string();
    let template: Vec<u8> = (0..128u32)
        .flat_map(|i| (i as f32 / 128.0).to_le_bytes())
        .collect();
    NewEnrollment {
        id: id.clone(),
        tenant_id: tenant_id.clone(),
        session_id: session_id.clone(),
        subject_ref: Some("customer-1".into()),
        status: jpki_face::domain::EnrollmentStatus::parse(status).expect("a status"),
        document: serde_json::json!({"status": status}).to_string(),
        identity_sealed: Some(dek.seal(owner, RecordKind::Identity, identity.as_bytes())),
        revocation_sealed: None,
        wrapped_key: Some(wrapped),
        templates: vec![StoredTemplate {
            id: new_id(prefix::TEMPLATE),
            source: TemplateSource::EnrollmentSelfie,
            model_id: "test-model".into(),
            model_hash: "00".into(),
            preprocessing_version: "1".into(),
            sealed: Secret::new(dek.seal(owner, RecordKind::Template, &template)),
        }],
        evidence: Vec::new(),
        created_at: now_millis(),
    }
}

/// Every row of every table as text (bytes decoded lossily), for "is X stored in plaintext" checks.
pub async fn dump_database(app: &TestApp) -> String {
    const TABLES: &[&str] = &[
        "tenants",
        "api_keys",
        "sessions",
        "enrollments",
        "face_templates",
        "verifications",
        "audit_log",
        "idempotency_keys",
        "webhook_endpoints",
        "webhook_events",
        "webhook_deliveries",
        "webhook_attempts",
        "session_selfies",
    ];
    macro_rules! dump_rows {
        ($rows:expr, $out:expr) => {
            for row in $rows {
                use sqlx::{Column, Row};
                for (i, column) in row.columns().iter().enumerate() {
                    let value = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                        v.unwrap_or_default()
                    } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
                        String::from_utf8_lossy(&v.unwrap_or_default()).into_owned()
                    } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                        v.map(|v| v.to_string()).unwrap_or_default()
                    } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                        v.map(|v| v.to_string()).unwrap_or_default()
                    } else {
                        String::new()
                    };
                    $out.push_str(&format!("{}={}\t", column.name(), value));
                }
                $out.push('\n');
            }
        };
    }
    let mut out = String::new();
    for table in TABLES {
        let sql = format!("SELECT * FROM {table}");
        match app.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
                dump_rows!(sqlx::query(&sql).fetch_all(&pool).await.unwrap(), out);
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
                dump_rows!(sqlx::query(&sql).fetch_all(&pool).await.unwrap(), out);
            }
        }
    }
    out
}

crate::on_both_backends!(
    every_read_is_scoped_by_tenant,
    a_session_is_consumed_once_and_atomically,
    lockout_counters_are_written_by_compare_and_set,
    an_endpoint_is_disabled_only_from_the_failure_count_seen
);

async fn every_read_is_scoped_by_tenant(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.ctx.svc.store.as_ref();
    let (tenant_b, _) = app.other_tenant().await;
    let enrollment = insert_enrollment(&app, &app.tenant_id, "verified").await;
    let session = insert_session(&app, &app.tenant_id).await;

    assert!(store
        .get_enrollment(&app.tenant_id, &enrollment)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_enrollment(&tenant_b, &enrollment)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .list_enrollments(&app.tenant_id, Some("customer-1"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_enrollments(&app.tenant_id, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .list_enrollments(&tenant_b, Some("customer-1"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_enrollments(&tenant_b, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .templates(&app.tenant_id, &enrollment)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .templates(&tenant_b, &enrollment)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_session(&app.tenant_id, &session)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_session(&tenant_b, &session)
        .await
        .unwrap()
        .is_none());

    let audit = AuditEvent::new(
        &tenant_b,
        jpki_face::domain::AuditKind::EnrollmentDeleted,
        enrollment.as_str(),
        serde_json::json!({}),
    );
    assert!(!store
        .delete_enrollment(&tenant_b, &enrollment, &audit, now_millis(), &[])
        .await
        .unwrap());
    assert!(!store
        .update_enrollment_status(
            &tenant_b,
            &enrollment,
            &jpki_face::store::StatusChange {
                from: jpki_face::domain::EnrollmentStatus::Verified,
                to: jpki_face::domain::EnrollmentStatus::Revoked,
                document: "{}",
            },
            &audit,
            now_millis(),
            &[],
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .get_enrollment(&app.tenant_id, &enrollment)
            .await
            .unwrap()
            .unwrap()
            .status,
        jpki_face::domain::EnrollmentStatus::Verified
    );
    assert_eq!(app.count(CountedTable::Templates).await, 1);
}

async fn a_session_is_consumed_once_and_atomically(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.ctx.svc.store.as_ref();
    let session = insert_session(&app, &app.tenant_id).await;
    let first = new_enrollment(&app, &app.tenant_id, &session, "verified");
    let audit = AuditEvent::new(
        &app.tenant_id,
        jpki_face::domain::AuditKind::EnrollmentCreated,
        first.id.as_str(),
        serde_json::json!({}),
    );
    store
        .create_enrollment(&first, &audit, None, &[])
        .await
        .unwrap();
    let audit_rows = app.count(CountedTable::Audit).await;

    let second = new_enrollment(&app, &app.tenant_id, &session, "verified");
    let err = store
        .create_enrollment(&second, &audit, None, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SessionConsumed), "{err}");
    assert_eq!(app.count(CountedTable::Enrollments).await, 1);
    assert_eq!(app.count(CountedTable::Templates).await, 1);
    assert_eq!(
        app.count(CountedTable::Audit).await,
        audit_rows,
        "no partial audit row"
    );

    // Concurrent consumers of one session: exactly one wins.
    let session = insert_session(&app, &app.tenant_id).await;
    let attempts = (0..8).map(|_| {
        let e = new_enrollment(&app, &app.tenant_id, &session, "verified");
        let store = app.ctx.svc.store.clone();
        let tenant = app.tenant_id.clone();
        tokio::spawn(async move {
            let audit = AuditEvent::new(
                &tenant,
                jpki_face::domain::AuditKind::EnrollmentCreated,
                e.id.as_str(),
                serde_json::json!({}),
            );
            store.create_enrollment(&e, &audit, None, &[]).await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(won, 1, "{results:?}");
    assert_eq!(app.count(CountedTable::Enrollments).await, 2);
    assert!(matches!(
        jpki_face::store::verify_audit_chain(store, &app.tenant_id)
            .await
            .unwrap(),
        jpki_face::store::ChainVerdict::Intact { .. }
    ));
}

/// The store applies the counters it is given only if they are still the ones they were computed
/// from: a write based on a stale read writes nothing at all (no verification, no audit row).
async fn lockout_counters_are_written_by_compare_and_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.ctx.svc.store.as_ref();
    let enrollment = insert_enrollment(&app, &app.tenant_id, "verified").await;
    let fresh = store
        .get_enrollment(&app.tenant_id, &enrollment)
        .await
        .unwrap()
        .unwrap()
        .lockout();
    let now = now_millis();
    let one_failure = Lockout {
        failed_count: 1,
        failure_window_start: Some(now),
        locked_until: None,
    };
    let verification = |decision| NewVerification {
        id: VerificationId::new(),
        tenant_id: app.tenant_id.clone(),
        enrollment_id: enrollment.clone(),
        session_id: None,
        decision,
        document: "{}".into(),
        created_at: now,
    };
    let audit = [AuditEvent::new(
        &app.tenant_id,
        jpki_face::domain::AuditKind::VerificationCreated,
        enrollment.as_str(),
        serde_json::json!({}),
    )];
    assert!(
        record(
            store,
            &audit,
            verification(VerificationDecision::NoMatch),
            fresh,
            one_failure
        )
        .await
    );
    let audit_rows = app.count(CountedTable::Audit).await;
    // A concurrent attempt computed from the same (now stale) counters loses.
    assert!(
        !record(
            store,
            &audit,
            verification(VerificationDecision::NoMatch),
            fresh,
            one_failure
        )
        .await
    );
    assert_eq!(app.count(CountedTable::Verifications).await, 1);
    assert_eq!(app.count(CountedTable::Audit).await, audit_rows);
    let row = store
        .get_enrollment(&app.tenant_id, &enrollment)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.lockout(), one_failure);
    // Read again, it wins.
    assert!(
        record(
            store,
            &audit,
            verification(VerificationDecision::Match),
            one_failure,
            fresh
        )
        .await
    );
    assert_eq!(app.count(CountedTable::Verifications).await, 2);
    // Another tenant's enrollment is never written.
    let (tenant_b, _) = app.other_tenant().await;
    let mut other = verification(VerificationDecision::NoMatch);
    other.tenant_id = tenant_b;
    assert!(!record(store, &audit, other, fresh, one_failure).await);
}

async fn an_endpoint_is_disabled_only_from_the_failure_count_seen(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.ctx.svc.store.as_ref();
    let id = WebhookId::new();
    let audit = |event: jpki_face::domain::AuditKind| {
        AuditEvent::new(&app.tenant_id, event, id.as_str(), serde_json::json!({}))
    };
    store
        .create_webhook(
            &NewWebhookEndpoint {
                id: id.clone(),
                tenant_id: app.tenant_id.clone(),
                url: "https://example.com/hook".into(),
                events: vec!["enrollment.created".into()],
                secret_sealed: vec![1, 2, 3],
                created_at: now_millis(),
            },
            &audit(jpki_face::domain::AuditKind::WebhookCreated),
        )
        .await
        .unwrap();
    let disabled_events = || async {
        store
            .audit_rows(&app.tenant_id)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.event == "webhook.disabled")
            .count()
    };
    // The count changed since it was read (a delivery reset it): nothing happens.
    assert!(!disable(store, &app.tenant_id, &id, 3).await.unwrap());
    assert_eq!(disabled_events().await, 0);
    assert!(disable(store, &app.tenant_id, &id, 0).await.unwrap());
    assert_eq!(disabled_events().await, 1);
    // Already disabled: no second event.
    assert!(!disable(store, &app.tenant_id, &id, 0).await.unwrap());
    assert_eq!(disabled_events().await, 1);
    let row = store
        .get_webhook(&app.tenant_id, &id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.disabled_at.is_some());
    assert_eq!(row.disabled_reason.as_deref(), Some("consecutive_failures"));
}

async fn record(
    store: &dyn Store,
    audit: &[AuditEvent],
    verification: NewVerification,
    seen: Lockout,
    next: Lockout,
) -> bool {
    store
        .record_verification(&VerificationWrite {
            verification: &verification,
            seen,
            next,
            audit,
            answer: None,
            events: &[],
        })
        .await
        .unwrap()
}

async fn disable(
    store: &dyn Store,
    tenant_id: &TenantId,
    id: &WebhookId,
    seen: i64,
) -> Result<bool, StoreError> {
    let audit = AuditEvent::new(
        tenant_id,
        jpki_face::domain::AuditKind::WebhookDisabled,
        id.as_str(),
        serde_json::json!({}),
    );
    store
        .disable_webhook(
            tenant_id,
            id,
            seen,
            "consecutive_failures",
            &audit,
            now_millis(),
        )
        .await
}
