//! 1:N face search (issue 21): every replica keeps, per tenant, an exact in-memory gallery of the
//! live enrollments' selfie templates and of the watchlist ([`index`]), built at start-up from the
//! sealed templates and kept current through the database's change feed ([`sync`]). Enrollments
//! are checked against it for duplicate faces and watchlist hits ([`check`]); the RP searches it
//! ([`find`], `POST /v1/faces/search`) and keeps its watchlist ([`watchlist`]).
//!
//! Nothing new is stored in clear: the feed holds ids, the watchlist is sealed like templates.

pub mod check;
pub mod find;
pub mod index;
pub mod sync;
pub mod watchlist;

pub use check::{Candidate, DuplicateCheck, Findings, HitResult, WatchlistCheck, WatchlistMatch};
pub use index::FaceIndex;

use serde::Deserialize;

/// `[search]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchSettings {
    /// How often a replica polls the change feed.
    pub poll_interval_ms: u64,
    /// Feed rows older than this are pruned (a replica cut off for longer rebuilds).
    pub feed_retention_secs: u64,
    /// Target false positive identification rate per search when the tenant sets none.
    pub default_target_fpir: f64,
    /// Most candidates one search (or one check) returns.
    pub max_limit: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            feed_retention_secs: 86_400,
            default_target_fpir: 1e-3,
            max_limit: 100,
        }
    }
}

impl SearchSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.poll_interval_ms == 0 {
            return Err(("search.poll_interval_ms", "must be at least 1".into()));
        }
        if self.feed_retention_secs < 60 {
            return Err(("search.feed_retention_secs", "must be at least 60".into()));
        }
        if !(self.default_target_fpir > 0.0 && self.default_target_fpir < 1.0) {
            return Err((
                "search.default_target_fpir",
                "must be between 0 and 1 (exclusive)".into(),
            ));
        }
        if !(1..=1000).contains(&self.max_limit) {
            return Err(("search.max_limit", "must be between 1 and 1000".into()));
        }
        Ok(())
    }
}
