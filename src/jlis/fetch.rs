//! HTTP transport for both checkers: connect/total timeouts, a body size cap, bounded retries with
//! exponential backoff, and per-attempt metrics.

use super::{Failure, FailureKind, Method};
use std::time::{Duration, Instant};

pub(crate) struct Fetcher {
    client: reqwest::Client,
    method: Method,
    retries: u32,
    backoff: Duration,
    max_bytes: usize,
}

pub(crate) struct FetchSettings {
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub max_bytes: usize,
}

/// What to send.
pub(crate) enum Req<'a> {
    Get {
        url: &'a str,
    },
    Post {
        url: &'a str,
        content_type: &'static str,
        accept: &'static str,
        body: Vec<u8>,
    },
}

impl Fetcher {
    pub(crate) fn new(
        method: Method,
        s: FetchSettings,
        proxy: Option<&crate::redact::Secret<String>>,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(s.connect_timeout_ms.max(1)))
            .timeout(Duration::from_millis(s.timeout_ms.max(1)))
            // Responders answer directly; a redirect would be a misconfiguration (or an attack).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(p) = proxy {
            // The error text could echo the URL and its credentials: keep it generic.
            let proxy = reqwest::Proxy::all(p.expose().as_str())
                .map_err(|_| "jlis.http_proxy is not a valid proxy URL".to_string())?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            method,
            retries: s.retries,
            backoff: Duration::from_millis(s.backoff_ms),
            max_bytes: s.max_bytes,
        })
    }

    /// Sends `req`, retrying transient failures; `validate` may reject a body as retryable
    /// (e.g. OCSP `tryLater`) or final.
    pub(crate) async fn fetch<T>(
        &self,
        req: &Req<'_>,
        mut validate: impl FnMut(Vec<u8>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut attempt: u32 = 0;
        loop {
            let result = self.once(req).await.and_then(&mut validate);
            match result {
                Err(f) if f.kind.is_retryable() && attempt < self.retries => {
                    let wait = self
                        .backoff
                        .checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
                        .unwrap_or(Duration::from_secs(60));
                    tracing::debug!(
                        method = self.method.as_str(),
                        kind = f.kind.as_str(),
                        attempt,
                        "jlis request failed; retrying"
                    );
                    metrics::counter!("jlis_retries_total", "method" => self.method.as_str())
                        .increment(1);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn once(&self, req: &Req<'_>) -> Result<Vec<u8>, Failure> {
        let started = Instant::now();
        let builder = match req {
            Req::Get { url } => self.client.get(*url),
            Req::Post {
                url,
                content_type,
                accept,
                body,
            } => self
                .client
                .post(*url)
                .header(reqwest::header::CONTENT_TYPE, *content_type)
                .header(reqwest::header::ACCEPT, *accept)
                .body(body.clone()),
        };
        let result = async {
            let mut resp = builder.send().await.map_err(transport_failure)?;
            if !resp.status().is_success() {
                return Err(Failure::new(
                    FailureKind::HttpStatus,
                    format!("HTTP {}", resp.status().as_u16()),
                ));
            }
            if let Some(len) = resp.content_length() {
                if len > self.max_bytes as u64 {
                    return Err(too_large(self.max_bytes));
                }
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(transport_failure)? {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(too_large(self.max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }
        .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(f) => f.kind.as_str(),
        };
        metrics::counter!("jlis_requests_total", "method" => self.method.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("jlis_request_duration_seconds", "method" => self.method.as_str())
            .record(started.elapsed().as_secs_f64());
        result
    }
}

fn too_large(max: usize) -> Failure {
    Failure::new(
        FailureKind::TooLarge,
        format!("response larger than {max} bytes"),
    )
}

fn transport_failure(e: reqwest::Error) -> Failure {
    // reqwest's Display omits the cause; walk the chain for the operator's log.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Transport
    };
    Failure::new(kind, detail)
}
