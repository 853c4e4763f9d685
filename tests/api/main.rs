//! Black-box tests of the HTTP API: the real app on 127.0.0.1:0, talked to over HTTP, once on
//! SQLite (temp dir) and once on PostgreSQL (a fresh database per test).

mod helpers;

mod audit;
mod browser;
mod cards;
mod claims;
mod console;
mod crypto_at_rest;
mod enrollments;
mod errors;
mod exactly_once;
mod hardening;
mod house;
mod liveness;
mod masks;
mod ops;
mod readiness;
mod reviews;
mod search;
mod search_scale;
mod selfie_step;
mod sessions;
mod store_contract;
mod transactions;
mod webdriver;
mod webhooks;
