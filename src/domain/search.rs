//! The vocabulary of 1:N face search (issue 21): what a tenant does with a duplicate face or a
//! watchlist hit, and its target false positive identification rate.

use serde::{Deserialize, Serialize};

/// What an enrollment that finds a duplicate face (or a watchlist entry) becomes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    /// Not checked (duplicate check only: every enrollment is checked against the watchlist).
    #[default]
    Off,
    /// Stays `verified`; the reason, the other ids (API key only), an audit event and a webhook.
    Flag,
    /// Waits for a person: the enrollment goes `in_review` (issue 22). A verify only flags.
    Review,
    /// Decided `rejected` with the reason.
    Reject,
}

impl CheckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Off => "off",
            CheckMode::Flag => "flag",
            CheckMode::Review => "review",
            CheckMode::Reject => "reject",
        }
    }

    /// Whether a hit rejects the enrollment (`review` sends it to a person instead:
    /// `enrollment::decide::route_to_review`).
    pub fn rejects(self) -> bool {
        self == CheckMode::Reject
    }
}

/// A rate in (0, 1), e.g. a target FPIR. Compared by bits so settings holding one stay `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rate(pub f64);

impl PartialEq for Rate {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Rate {}

impl Rate {
    /// `Some` for a finite rate strictly between 0 and 1.
    pub fn valid(self) -> Option<f64> {
        (self.0.is_finite() && self.0 > 0.0 && self.0 < 1.0).then_some(self.0)
    }
}
