//! jpki-face: self-hosted eKYC with the My Number Card.
//!
//! The layout mirrors the architecture (see `../shared/spec/architecture.md`):
//! - [`http`]: routes, extractors, auth, the one error type, OpenAPI: no business rules;
//! - [`usecase`]: one module per flow (sessions, enrollment, verification, status checks, idempotency);
//! - [`card`]: parsing and verifying the 券面AP / 入力補助AP / JPKI data (pure, no I/O);
//! - [`jlis`]: the certificate validity adapter (OCSP, CRL, static dev mode);
//! - [`face`]: image decoding, the ONNX models, quality, templates, the worker pool;
//! - [`store`]: the storage trait and its Postgres and SQLite implementations;
//! - [`crypto`]: envelope encryption and crypto-shredding;
//! - [`jobs`]: the periodic-job loop of the background jobs;
//! - [`claims`]: verified claims for the RP (OIDC4IDA `verified_claims`, signed; the JWKS);
//! - [`webhooks`]: signed webhooks to the RP (signature, SSRF rules, retry schedule, delivery worker);
//! - [`devcard`]: the test-card generator (development only);
//! - [`cli`]: the operator command line, one file per command, and its one dispatch;
//! - [`app`]: application wiring (store, keys, listener, background jobs).
//! - [`devcard`]: the test-card generator and the virtual card behind PC/SC (development only);
//! - [`apdu`]: the card's APDU vocabulary; [`reader`]: reading a card over PC/SC (`jpki-face read`).
#![deny(unsafe_code)]

pub mod apdu;
pub mod app;
pub mod card;
pub mod claims;
pub mod cli;
pub mod config;
pub mod crypto;
#[cfg(feature = "devcard")]
pub mod devcard;
pub mod domain;
pub mod face;
pub mod http;
pub mod jlis;
pub mod jobs;
pub mod liveness;
pub mod lockout;
#[cfg(feature = "reader")]
pub mod reader;
pub mod redact;
pub mod store;
pub mod telemetry;
pub mod totp;
pub mod usecase;
pub mod webhooks;
