//! Application assembly: open the store, apply migrations, load keys, bind the listener, serve
//! until shutdown. Tests call [`Application::build`] with port 0 and read the actual address.

use crate::cli::{Command, KeyCommand, TenantCommand};
use crate::config::Settings;
use crate::crypto::{KekSource, KeyRing};
use crate::domain::{
    credential_hash, new_id, now_millis, prefix, IssuedCredential, TenantId, API_KEY_PREFIX,
};
use crate::http::{self, ApiContext};
use crate::redact::Secret;
use crate::store::{self, KeyRef, Store, Tenant, TenantSettings};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Components built from the settings unless given: tests share one face engine per process and
/// may inject a validity checker with a controlled clock.
#[derive(Default, Clone)]
pub struct Components {
    pub face: Option<crate::face::FaceEngine>,
    pub validity: Option<Arc<dyn crate::jlis::ValidityChecker>>,
    /// Sees every response (tests validate them against the OpenAPI document).
    pub observer: Option<http::Observer>,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    context: ApiContext,
}

impl Application {
    /// Everything but serving: store (migrated), keys, listener bound (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Components::default()).await
    }

    /// As [`Application::build`], with some components supplied by the caller.
    pub async fn build_with(settings: Settings, components: Components) -> anyhow::Result<Self> {
        let trust = crate::card::TrustStore::from_config(&settings.card)
            .context("loading the card trust store (card.trust_dir)")?;
        let (cvc_issuers, roots) = trust.counts();
        if cvc_issuers == 0 || roots == 0 {
            tracing::warn!(
                cvc_issuers,
                jpki_roots = roots,
                "card.trust_dir configures no CVC issuer or no JPKI root: every card will be rejected"
            );
        }
        let validity = match components.validity {
            Some(v) => v,
            None => crate::jlis::build_checker(&settings.jlis, settings.environment)
                .context("building the J-LIS validity checker ([jlis])")?,
        };
        let face = match components.face {
            Some(f) => f,
            None => crate::face::FaceEngine::start(&settings.face)
                .context("starting the face engine ([face]; run `make models`)")?,
        };
        let store = open_store(&settings).await?;
        store.migrate().await.context("applying migrations")?;
        let (keys, source) = KeyRing::from_settings(&settings.crypto, settings.environment)?;
        match source {
            KekSource::Configured => {}
            KekSource::DevFileLoaded(path) => {
                tracing::warn!(path = %path.display(), "using the development key-encryption key; configure crypto.kek for real data")
            }
            KekSource::DevFileGenerated(path) => {
                tracing::warn!(path = %path.display(), "generated a development key-encryption key; configure crypto.kek for real data")
            }
        }
        let bind = settings.bind_addr()?;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        let local_addr = listener.local_addr()?;
        let limiter = Arc::new(http::ratelimit::TenantLimiter::new(
            settings.server.tenant_rate_per_sec,
            settings.server.tenant_burst,
        ));
        let context = ApiContext {
            limiter,
            observer: components.observer,
            settings: Arc::new(settings),
            store,
            keys: Arc::new(keys),
            metrics: crate::telemetry::metrics_handle(),
            trust: Arc::new(trust),
            validity,
            face,
        };
        Ok(Self {
            listener,
            local_addr,
            context,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn context(&self) -> &ApiContext {
        &self.context
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let server = &self.context.settings.server;
        let limits = http::serve::ConnectionLimits {
            max_connections: server.max_connections,
            header_timeout: Duration::from_secs(server.header_timeout_secs),
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
        };
        let jobs = BackgroundJobs::start(&self.context);
        let router = http::router(self.context);
        let served = http::serve::serve(self.listener, router, limits, shutdown).await;
        jobs.stop().await;
        served
    }
}

/// The periodic work of a replica: the webhook delivery worker, the scheduled status checks and
/// the retention job. Each stops at the shutdown signal after finishing what it is doing.
pub struct BackgroundJobs {
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BackgroundJobs {
    pub fn start(ctx: &ApiContext) -> Self {
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let settings = &ctx.settings;
        let mut tasks = Vec::new();
        if settings.webhooks.worker_enabled {
            let worker = crate::webhooks::deliver::Worker {
                store: ctx.store.clone(),
                keys: ctx.keys.clone(),
                settings: settings.webhooks.clone(),
                environment: settings.environment,
            };
            tasks.push(tokio::spawn(worker.run(shutdown.subscribe())));
        }
        if settings.status_checks.enabled {
            let scheduler = crate::usecase::scheduled::Scheduler {
                svc: ctx.services(),
            };
            tasks.push(tokio::spawn(scheduler.run(shutdown.subscribe())));
        }
        if settings.retention.enabled {
            tasks.push(tokio::spawn(crate::usecase::retention::run(
                ctx.services(),
                shutdown.subscribe(),
            )));
        }
        Self { shutdown, tasks }
    }

    /// Signals the jobs and waits for them (bounded: an attempt in flight has its own timeout).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .is_err()
            {
                tracing::warn!("a background job did not stop within 30 s");
            }
        }
    }
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(
        &settings.database.url,
        settings.database.max_connections,
        Duration::from_secs(settings.database.acquire_timeout_secs),
    )
    .await
    .context("opening the database (database.url)")
}

/// A new tenant and its first API key. The key is returned once; only its hash is stored.
pub async fn create_tenant(
    store: &dyn Store,
    name: &str,
) -> anyhow::Result<(Tenant, String, Secret<String>)> {
    create_tenant_with(store, name, TenantSettings::default()).await
}

pub async fn create_tenant_with(
    store: &dyn Store,
    name: &str,
    settings: TenantSettings,
) -> anyhow::Result<(Tenant, String, Secret<String>)> {
    let tenant = Tenant {
        id: TenantId::new(),
        name: name.to_string(),
        settings,
        created_at: now_millis(),
    };
    store.create_tenant(&tenant).await?;
    let (key_id, key) = create_api_key(store, &tenant.id).await?;
    store
        .append_audit(&crate::store::AuditEvent::new(
            &tenant.id,
            "tenant.created",
            tenant.id.as_str(),
            serde_json::json!({"key_id": key_id}),
        ))
        .await?;
    Ok((tenant, key_id, key))
}

pub async fn create_api_key(
    store: &dyn Store,
    tenant_id: &TenantId,
) -> anyhow::Result<(String, Secret<String>)> {
    let credential = IssuedCredential::new(API_KEY_PREFIX);
    let key_id = new_id(prefix::API_KEY);
    store
        .add_api_key(&key_id, tenant_id, &credential.hash, now_millis())
        .await?;
    Ok((key_id, credential.token))
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

fn print_key(json: bool, tenant_id: &TenantId, key_id: &str, key: &Secret<String>) {
    if json {
        println!(
            "{}",
            serde_json::json!({"tenant_id": tenant_id, "key_id": key_id, "api_key": key.expose()})
        );
    } else {
        println!("tenant_id: {tenant_id}\nkey_id:    {key_id}\napi_key:   {}\n(the API key is shown only now; store it safely)", key.expose());
    }
}

/// Runs the commands that need the async runtime.
pub async fn run_command(command: Command, mut settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init_logging(&settings.log);
    match command {
        Command::Serve { bind, demo_tenant } => {
            if let Some(bind) = bind {
                settings.server.bind = bind;
                settings.bind_addr()?;
            }
            let app = Application::build(settings).await?;
            if demo_tenant {
                let (tenant, key_id, key) =
                    create_tenant(app.context().store.as_ref(), "demo").await?;
                println!("demo tenant created\n");
                print_key(false, &tenant.id, &key_id, &key);
                println!("\ntry: curl -s -X POST http://{}/v1/sessions -H 'authorization: Bearer {}' -H 'content-type: application/json' -d '{{\"purpose\":\"enrollment\",\"subject_ref\":\"customer-1\"}}'\n", app.local_addr(), key.expose());
            }
            tracing::info!(addr = %app.local_addr(), backend = app.context().store.backend(), "listening");
            println!("jpki-face listening on http://{}", app.local_addr());
            app.run_until(shutdown_signal()).await?;
            Ok(())
        }
        Command::Migrate => {
            let store = open_store(&settings).await?;
            store.migrate().await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Tenant { command } => {
            let store = open_store(&settings).await?;
            store.migrate().await?;
            match command {
                TenantCommand::Create {
                    name,
                    json,
                    liveness,
                } => {
                    let (tenant, key_id, key) = create_tenant_with(
                        store.as_ref(),
                        &name,
                        TenantSettings {
                            liveness,
                            ..TenantSettings::default()
                        },
                    )
                    .await?;
                    print_key(json, &tenant.id, &key_id, &key);
                }
                TenantCommand::List { json } => {
                    let tenants = store.list_tenants().await?;
                    for t in tenants {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"id": t.id, "name": t.name, "created_at": crate::domain::rfc3339(t.created_at)})
                            );
                        } else {
                            println!(
                                "{}\t{}\t{}",
                                t.id,
                                t.name,
                                crate::domain::rfc3339(t.created_at)
                            );
                        }
                    }
                }
                TenantCommand::Key {
                    command: KeyCommand::Create { tenant, json },
                } => {
                    let tenant = match TenantId::parse(&tenant) {
                        Some(id) => store.get_tenant(&id).await?,
                        None => None,
                    }
                    .with_context(|| format!("no tenant {tenant}"))?;
                    let (key_id, key) = create_api_key(store.as_ref(), &tenant.id).await?;
                    print_key(json, &tenant.id, &key_id, &key);
                }
                TenantCommand::Key {
                    command: KeyCommand::Revoke { key },
                } => {
                    let revoked = if key.starts_with(API_KEY_PREFIX) {
                        store
                            .revoke_api_key(KeyRef::Hash(&credential_hash(&key)), now_millis())
                            .await?
                    } else {
                        store.revoke_api_key(KeyRef::Id(&key), now_millis()).await?
                    };
                    anyhow::ensure!(revoked, "no live API key matches");
                    println!("revoked");
                }
            }
            Ok(())
        }
        Command::Face { .. } | Command::Calibrate(_) => {
            anyhow::bail!("this command runs without the async runtime (see main.rs)")
        }
        #[cfg(feature = "devcard")]
        Command::Dev { .. } => {
            anyhow::bail!("this command runs without the async runtime (see main.rs)")
        }
        #[cfg(feature = "reader")]
        Command::Read(_) => {
            anyhow::bail!("this command runs without the async runtime (see main.rs)")
        }
    }
}
