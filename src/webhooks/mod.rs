//! Signed webhooks to the RP: the configuration, the Standard Webhooks signature, the SSRF rules for
//! endpoint URLs, the retry schedule and the delivery worker that drains the outbox.
//!
//! Events are written to the outbox by the store in the transaction of the change that caused them
//! (see [`crate::store::OutboxEvent`]); the worker here claims due deliveries (a lease, SKIP LOCKED on
//! PostgreSQL), sends them at least once and records every attempt.

pub mod backoff;
pub mod config;
pub mod deliver;
pub mod sign;
pub mod ssrf;

pub use config::WebhookSettings;
