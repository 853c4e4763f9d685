//! `spawn_app` and typed request helpers shared by the API tests.

use jpki_face::app::{Application, Components};
use jpki_face::config::Settings;
use jpki_face::http::ApiContext;
use jpki_face::usecase::tenants::create_tenant;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One face engine per test process (loading the models per test would dominate the run time).
pub fn shared_face_engine() -> jpki_face::face::FaceEngine {
    static ENGINE: std::sync::OnceLock<jpki_face::face::FaceEngine> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            // Tests run many uploads at once on a 2-core machine: a deep queue and a long deadline
            // (the face engine's own tests cover the full-queue answer).
            let settings = Settings::from_toml_overrides(
                "[face]\nqueue_capacity = 2048\njob_deadline_ms = 300000\n",
            )
            .expect("defaults");
            let engine = jpki_face::face::FaceEngine::start(&settings.face)
                .expect("the face models must be fetched for the tests: run `make models`");
            assert!(
                engine.wait_ready(std::time::Duration::from_secs(120)),
                "face engine warm-up"
            );
            engine
        })
        .clone()
}

/// The admin URL of the test PostgreSQL server (`make test` makes sure it is up).
pub fn pg_admin_url() -> String {
    std::env::var("JPKI_FACE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, empty database on the test server; returns its URL with `host:port` replaceable.
pub async fn fresh_pg_database() -> (String, String) {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL must be reachable at {admin} for the tests (make test starts it): {e}"
            )
        });
    let name = format!("jpki_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("admin url has a database");
    (format!("{base}/{name}"), name)
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub ctx: ApiContext,
    pub tenant_id: jpki_face::domain::TenantId,
    pub api_key: String,
    pub backend: Backend,
    pub db_url: String,
    /// The KEK (base64): a second instance on the same database needs it to unseal.
    pub kek: String,
    /// Responses that did not match the OpenAPI document (checked when the app is dropped).
    pub violations: Violations,
    _dir: tempfile::TempDir,
}

pub struct AppOptions {
    pub backend: Backend,
    /// Extra TOML layered over the test defaults.
    pub toml: String,
    /// Overrides the database URL (e.g. to go through a proxy).
    pub db_url: Option<String>,
    /// A validity checker to use instead of the configured one.
    pub validity: Option<std::sync::Arc<dyn jpki_face::jlis::ValidityChecker>>,
    /// Start a face engine from the settings instead of sharing the process's one.
    pub own_face_engine: bool,
    /// The KEK (base64) instead of a fresh one: a second instance on the same database.
    pub kek: Option<String>,
}

impl AppOptions {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            toml: String::new(),
            db_url: None,
            validity: None,
            own_face_engine: false,
            kek: None,
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(AppOptions::new(backend)).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_url = match (&options.db_url, options.backend) {
        (Some(url), _) => url.clone(),
        (None, Backend::Sqlite) => format!("sqlite://{}/test.db", dir.path().display()),
        (None, Backend::Postgres) => fresh_pg_database().await.0,
    };
    let kek = options.kek.clone().unwrap_or_else(base64_kek);
    let toml = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nrequest_deadline_secs = 600\ntenant_rate_per_sec = 0.0\n[idempotency]\nreservation_secs = 900\n[database]\nurl = \"{db_url}\"\nacquire_timeout_secs = 2\n[crypto]\nkek = \"{kek}\"\n[log]\nfilter = \"warn\"\n[claims]\ndev_key_file = \"{}/dev-claims-key.b64\"\n",
        dir.path().display()
    );
    let settings = Settings::from_toml_layers(&[&toml, &options.toml]).expect("test settings");
    let violations = Violations::default();
    let components = Components {
        face: (!options.own_face_engine).then(shared_face_engine),
        validity: options.validity.clone(),
        observer: Some(validating_observer(violations.clone())),
    };
    let app = Application::build_with(settings, components)
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let ctx = app.context().clone();
    let (tenant, _key_id, key) = create_tenant(ctx.svc.store.as_ref(), "test-tenant")
        .await
        .expect("tenant");
    tokio::spawn(app.run_until(std::future::pending()));
    // The 1:N galleries are built in the background at start-up (readiness waits for them).
    for _ in 0..1200 {
        if ctx.svc.faces.is_ready() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ctx.svc.faces.is_ready(), "the face gallery was not built");
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        ctx,
        tenant_id: tenant.id,
        api_key: key.expose().clone(),
        backend: options.backend,
        db_url,
        kek,
        violations,
        _dir: dir,
    }
}

fn base64_kek() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Rows of `table` that belong to the test tenant.
    pub async fn count(&self, table: jpki_face::store::CountedTable) -> i64 {
        jpki_face::store::inspect::count_rows(&self.db_url, table, &self.tenant_id)
            .await
            .expect("count rows")
    }

    /// A second tenant with its own key.
    pub async fn other_tenant(&self) -> (jpki_face::domain::TenantId, String) {
        let (tenant, _, key) = create_tenant(self.ctx.svc.store.as_ref(), "other-tenant")
            .await
            .expect("tenant");
        (tenant.id, key.expose().clone())
    }

    pub async fn post_session(&self, bearer: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/sessions"))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Opens an enrollment session with the test tenant's key and returns its JSON.
    pub async fn enrollment_session(&self) -> Value {
        let response = self
            .post_session(
                &self.api_key,
                &json!({"purpose": "enrollment", "subject_ref": "customer-1"}),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.expect("json")
    }
}

/// Asserts a problem-details answer with the given status and code; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status for expected code {code}"
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(
        body["request_id"],
        header_id.as_str(),
        "problem names the request id"
    );
    assert!(!header_id.is_empty());
    body
}

/// Generates `#[tokio::test]`s that run a test function once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::helpers::Backend::Postgres).await } )*
        }
    };
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy that can cut every connection and refuse new ones while "down".
pub struct Proxy {
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted2 = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                accepted2.fetch_add(1, Ordering::SeqCst);
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            accepted,
            up,
            cut,
        }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// A handle that cuts every open connection (new ones are still accepted).
    pub fn cutter(&self) -> watch::Sender<u64> {
        self.cut.clone()
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The OpenAPI document as JSON, and validators compiled from it, shared by the whole test process.
fn openapi_json() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(jpki_face::http::openapi::document()).expect("document")
    })
}

type Validators = std::sync::Mutex<std::collections::HashMap<String, Arc<jsonschema::Validator>>>;

fn validator(key: String, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    static CACHE: std::sync::OnceLock<Validators> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return Ok(v.clone());
    }
    // The response schema as the root, with the document's components beside it so that
    // `#/components/schemas/…` references resolve.
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        other => return Err(format!("schema of {key} is not an object: {other}")),
    };
    root.insert("components".into(), openapi_json()["components"].clone());
    let compiled = jsonschema::draft202012::new(&Value::Object(root))
        .map_err(|e| format!("schema of {key} does not compile: {e}"))?;
    let compiled = Arc::new(compiled);
    cache.lock().unwrap().insert(key, compiled.clone());
    Ok(compiled)
}

/// Checks one response against the document: the status is documented for the route, the content
/// type is the documented one, and a JSON body validates against its schema. `None` when it does.
pub fn openapi_violation(
    method: &str,
    route: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Option<String> {
    let doc = openapi_json();
    let method = method.to_ascii_lowercase();
    let Some(operation) = doc["paths"].get(route).and_then(|p| p.get(&method)) else {
        return Some(format!("{method} {route} is not in the document"));
    };
    let Some(response) = operation["responses"].get(status.to_string()) else {
        return Some(format!(
            "{method} {route}: status {status} is not documented"
        ));
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return (!body.is_empty())
            .then(|| format!("{method} {route} {status}: a body where none is documented"));
    };
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let Some(media) = content.get(mime) else {
        return Some(format!(
            "{method} {route} {status}: served as {mime:?}, documented as {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let schema = media.get("schema")?;
    if !mime.ends_with("json") {
        return None;
    }
    let instance: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("{method} {route} {status}: body is not JSON: {e}")),
    };
    let key = format!("{method} {route} {status} {mime}");
    let validator = match validator(key.clone(), schema) {
        Ok(v) => v,
        Err(e) => return Some(e),
    };
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| format!("{key}: {}", errors.join("; ")))
}

/// What the observer of one test app found wrong.
pub type Violations = Arc<std::sync::Mutex<Vec<String>>>;

/// An observer that validates every response against the document and records what is wrong.
pub fn validating_observer(violations: Violations) -> jpki_face::http::Observer {
    Arc::new(move |method, route, status, headers, body| {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(v) = openapi_violation(method.as_str(), route, status, content_type, body) {
            violations.lock().unwrap().push(v);
        }
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let violations = self.violations.lock().unwrap();
        assert!(
            violations.is_empty(),
            "responses that do not match /openapi.json:\n{}",
            violations.join("\n")
        );
    }
}

/// The client token of a session document (`POST /v1/sessions`' answer).
pub fn client_token(session: &Value) -> String {
    session["client_token"]
        .as_str()
        .expect("the session has a client token")
        .to_string()
}

// Enrolling and verifying over HTTP, shared by every suite.

use crate::cards::{cards, photo, A_SELFIE};

/// The multipart form of an enrollment: the card JSON, the selfie file and extra text fields.
pub fn enrollment_form(
    card: &serde_json::Value,
    selfie: &str,
    extra: &[(&str, String)],
) -> reqwest::multipart::Form {
    let bytes = std::fs::read(photo(selfie)).unwrap();
    let mut form = reqwest::multipart::Form::new()
        .part(
            "card",
            reqwest::multipart::Part::text(card.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "selfie",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("selfie.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
    for (name, value) in extra {
        form = form.text(name.to_string(), value.clone());
    }
    form
}

/// Sends an enrollment as multipart: the card JSON and the selfie file.
pub async fn post_enrollment(
    app: &TestApp,
    bearer: &str,
    card: &serde_json::Value,
    selfie: &str,
    extra: &[(&str, String)],
) -> reqwest::Response {
    app.client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(bearer)
        .multipart(enrollment_form(card, selfie, extra))
        .send()
        .await
        .expect("request")
}

/// The multipart form of a transaction-time verify: the selfie file and extra text fields.
pub fn verify_form(selfie: &str, extra: &[(&str, String)]) -> reqwest::multipart::Form {
    let bytes = std::fs::read(photo(selfie)).unwrap();
    let mut form = reqwest::multipart::Form::new().part(
        "selfie",
        reqwest::multipart::Part::bytes(bytes)
            .file_name("s.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    for (name, value) in extra {
        form = form.text(name.to_string(), value.clone());
    }
    form
}

/// A transaction-time verify with the selfie file.
pub async fn post_verify(
    app: &TestApp,
    bearer: &str,
    selfie: &str,
    extra: &[(&str, String)],
) -> reqwest::Response {
    app.client
        .post(app.url("/v1/transactions/verify"))
        .bearer_auth(bearer)
        .multipart(verify_form(selfie, extra))
        .send()
        .await
        .expect("request")
}

/// Opens a session for `purpose` (and `enrollment_id` for transactions) with the tenant's key.
pub async fn open_session(app: &TestApp, body: serde_json::Value) -> serde_json::Value {
    let response = app.post_session(&app.api_key, &body).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// A verified enrollment of person A; returns its id.
pub async fn enroll_person_a(app: &TestApp) -> String {
    enroll_card(app, &cards().a).await
}

/// A verified enrollment of `person`'s test card with person A's selfie; returns its id.
pub async fn enroll_card(app: &TestApp, person: &jpki_face::devcard::PersonId) -> String {
    let session = app.enrollment_session().await;
    let card = cards().sign(person, &session);
    let response = post_enrollment(app, &client_token(&session), &card, A_SELFIE, &[]).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "verified", "{body:#}");
    body["id"].as_str().unwrap().to_string()
}

/// An enrollment upload with an Idempotency-Key.
pub async fn enroll_keyed(
    app: &TestApp,
    bearer: &str,
    card: &serde_json::Value,
    key: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/v1/enrollments"))
        .bearer_auth(bearer)
        .header("idempotency-key", key)
        .multipart(enrollment_form(card, A_SELFIE, &[]))
        .send()
        .await
        .expect("request")
}
