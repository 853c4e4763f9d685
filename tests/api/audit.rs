//! The audit log is hash-chained per tenant: it verifies, and an edited row is detected.

use crate::helpers::*;
use jpki_face::store::{verify_audit_chain, AuditEvent, ChainVerdict};

crate::on_both_backends!(audit_chain_verifies_and_detects_an_edited_row);

async fn audit_chain_verifies_and_detects_an_edited_row(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        app.enrollment_session().await;
    }
    // Concurrent appends keep one unbroken chain.
    let appends = (0..10).map(|i| {
        let store = app.ctx.svc.store.clone();
        let tenant = app.tenant_id.clone();
        tokio::spawn(async move {
            store
                .append_audit(&AuditEvent::new(
                    &tenant,
                    jpki_face::domain::AuditKind::SessionCreated,
                    &format!("s{i}"),
                    serde_json::json!({"i": i}),
                ))
                .await
        })
    });
    for r in futures::future::join_all(appends).await {
        r.unwrap().unwrap();
    }
    let verdict = verify_audit_chain(app.ctx.svc.store.as_ref(), &app.tenant_id)
        .await
        .unwrap();
    // tenant.created + 3 sessions + 10 events
    assert_eq!(verdict, ChainVerdict::Intact { rows: 14 });

    let (other, _) = app.other_tenant().await;
    assert_eq!(
        verify_audit_chain(app.ctx.svc.store.as_ref(), &other)
            .await
            .unwrap(),
        ChainVerdict::Intact { rows: 1 }
    );

    // Someone edits row 3 directly in the database.
    let sql = "UPDATE audit_log SET details = '{\"purpose\":\"transaction\"}' WHERE tenant_id = $1 AND seq = 3";
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db_url).await.unwrap();
            sqlx::query(sql)
                .bind(&app.tenant_id)
                .execute(&pool)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
            sqlx::query(sql)
                .bind(&app.tenant_id)
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    let verdict = verify_audit_chain(app.ctx.svc.store.as_ref(), &app.tenant_id)
        .await
        .unwrap();
    assert_eq!(verdict, ChainVerdict::Broken { seq: 3 });
}
