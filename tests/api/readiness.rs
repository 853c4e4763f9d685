//! `/readyz` turns unready when the database becomes unreachable and ready again when it returns.
//! PostgreSQL sits behind a TCP proxy the test controls; the shared server is never stopped.

use crate::helpers::*;
use std::time::Duration;

async fn readiness(app: &TestApp) -> (u16, serde_json::Value) {
    let response = app
        .client
        .get(app.url("/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn wait_for(app: &TestApp, want: u16) -> serde_json::Value {
    for _ in 0..40 {
        let (status, body) = readiness(app).await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("/readyz never answered {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let (direct_url, name) = fresh_pg_database().await;
    let admin = pg_admin_url();
    let user_part = admin
        .split("://")
        .nth(1)
        .and_then(|s| s.split('@').next())
        .unwrap_or("postgres");
    let proxied = format!("postgres://{user_part}@127.0.0.1:{}/{name}", proxy.port);
    assert!(direct_url.ends_with(&name));
    let mut options = AppOptions::new(Backend::Postgres);
    options.db_url = Some(proxied);
    let app = spawn_app_with(options).await;

    let (status, body) = readiness(&app).await;
    assert_eq!(status, 200, "{body}");

    proxy.down();
    let body = wait_for(&app, 503).await;
    assert_eq!(body["status"], "not_ready");
    assert_ne!(body["checks"]["database"], "ok");

    proxy.up();
    let body = wait_for(&app, 200).await;
    assert_eq!(body["checks"]["database"], "ok");
    // And the API works again.
    app.enrollment_session().await;
}
