//! `jpki-face serve` (migrations applied at start-up, until SIGTERM or Ctrl-C) and `jpki-face migrate`.

use super::tenant::print_key;
use crate::app::{open_store, Application};
use crate::config::Settings;
use crate::usecase::tenants::create_tenant;

pub(super) async fn serve(
    mut settings: Settings,
    bind: Option<String>,
    demo_tenant: bool,
) -> anyhow::Result<()> {
    if let Some(bind) = bind {
        settings.server.bind = bind;
        settings.bind_addr()?;
    }
    let app = Application::build(settings).await?;
    if demo_tenant {
        let (tenant, key_id, key) = create_tenant(app.context().svc.store.as_ref(), "demo").await?;
        println!("demo tenant created\n");
        print_key(false, &tenant.id, &key_id, &key);
        let password = crate::redact::Secret::new(hex::encode(crate::domain::random_bytes::<12>()));
        println!(
            "\ndemo console admin (login `admin`, password {}):",
            password.expose()
        );
        let admin = crate::usecase::operators::create_operator(
            app.context().svc.store.as_ref(),
            &app.context().svc.keys,
            &tenant.id,
            crate::usecase::operators::NewOperatorRequest {
                login: "admin".into(),
                role: crate::domain::Role::Admin,
                password,
            },
            None,
        )
        .await?;
        super::operator::print_operator(false, &admin);
        println!(
            "console: http://{}/console/ (tenant id {})",
            app.local_addr(),
            tenant.id
        );
        println!("\ntry: curl -s -X POST http://{}/v1/sessions -H 'authorization: Bearer {}' -H 'content-type: application/json' -d '{{\"purpose\":\"enrollment\",\"subject_ref\":\"customer-1\"}}'\n", app.local_addr(), key.expose());
    }
    tracing::info!(addr = %app.local_addr(), backend = app.context().svc.store.backend(), "listening");
    println!("jpki-face listening on http://{}", app.local_addr());
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

pub(super) async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    store.migrate().await?;
    println!("migrations applied ({})", store.backend());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutdown requested; draining in-flight requests");
}
