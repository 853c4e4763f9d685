//! Application assembly: open the store, apply migrations, load keys, bind the listener, serve
//! until shutdown, with the background jobs of a replica. Tests call [`Application::build`] with
//! port 0 and read the actual address. The command line is [`crate::cli`].

use crate::config::Settings;
use crate::crypto::{KekSource, KeyRing};
use crate::http::{self, ApiContext};
use crate::store::{self, Store};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

// The admin use cases lived here; kept at their old path for the tests that call them.

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
        let claims = claims_keys(&settings)?;
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
            svc: crate::usecase::Services {
                settings: Arc::new(settings.use_cases()),
                store,
                keys: Arc::new(keys),
                trust: Arc::new(trust),
                validity,
                faces: Arc::new(crate::usecase::search::FaceIndex::new(face.model_tag())),
                face,
            },
            server: Arc::new(settings.server.clone()),
            limiter,
            auth_failures: Arc::new(http::ratelimit::AuthFailureBudget::new(
                settings.server.auth_failures_per_sec,
                settings.server.auth_failure_burst,
            )),
            observer: components.observer,
            claims: Arc::new(claims),
            metrics: crate::telemetry::metrics_handle(),
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
        let server = &self.context.server;
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
        let settings = &ctx.svc.settings;
        let mut tasks = Vec::new();
        if settings.webhooks.worker_enabled {
            let worker = crate::webhooks::deliver::Worker {
                store: ctx.svc.store.clone(),
                keys: ctx.svc.keys.clone(),
                settings: settings.webhooks.clone(),
                environment: settings.environment,
            };
            tasks.push(tokio::spawn(worker.run(shutdown.subscribe())));
        }
        if settings.status_checks.enabled {
            let scheduler = crate::usecase::scheduled::Scheduler {
                svc: ctx.svc.clone(),
            };
            tasks.push(tokio::spawn(scheduler.run(shutdown.subscribe())));
        }
        // Builds this replica's 1:N galleries, then follows the change feed (readiness waits).
        tasks.push(tokio::spawn(crate::usecase::search::sync::run(
            ctx.svc.clone(),
            ctx.svc.faces.clone(),
            shutdown.subscribe(),
        )));
        if settings.retention.enabled {
            tasks.push(tokio::spawn(crate::usecase::retention::run(
                ctx.svc.clone(),
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

/// The verified-claims signing key (`[claims]`); development may generate one, production may not.
fn claims_keys(settings: &Settings) -> anyhow::Result<crate::claims::ClaimsKeys> {
    use crate::claims::{ClaimsKeys, KeySource};
    let (keys, source) = ClaimsKeys::from_settings(&settings.claims, settings.environment)
        .context("loading the verified-claims signing key ([claims])")?;
    match source {
        KeySource::Configured => {}
        KeySource::DevFileLoaded(path) => {
            tracing::warn!(path = %path.display(), "using the development claims signing key; configure claims.signing_key for real use")
        }
        KeySource::DevFileGenerated(path) => {
            tracing::warn!(path = %path.display(), "generated a development claims signing key; configure claims.signing_key for real use")
        }
    }
    Ok(keys)
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
