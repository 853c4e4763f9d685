//! Console operators' roles (issue 22). The console decides from the role what an operator may do:
//! a viewer reads, a reviewer also decides reviews and sees their evidence, an admin also manages
//! API keys, webhooks, the tenant's settings and the other operators.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Reviewer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Reviewer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Approve or reject a review, and look at its photos.
    pub fn can_review(self) -> bool {
        matches!(self, Role::Reviewer | Role::Admin)
    }

    /// Keys, webhooks, settings, operators.
    pub fn can_administer(self) -> bool {
        self == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_grant_upwards() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(Role::parse("root"), None);
        assert!(!Role::Viewer.can_review() && !Role::Viewer.can_administer());
        assert!(Role::Reviewer.can_review() && !Role::Reviewer.can_administer());
        assert!(Role::Admin.can_review() && Role::Admin.can_administer());
    }
}
