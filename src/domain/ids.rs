//! Ids as newtypes that keep their prefix: an `EnrollmentId` is always `enr_` plus 32 hex digits, so an
//! id of one kind can never be passed where another is meant, and a malformed id from a client is
//! refused before it reaches a query.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(super::new_id($prefix))
            }

            /// `Some` only for `<prefix>_` followed by 32 lower-case hex digits.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                (rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| Self(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).ok_or_else(|| format!("not a {} id: {s:?}", $prefix))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

id_type!(
    /// A tenant: `ten_…`.
    TenantId,
    "ten"
);
id_type!(
    /// A session: `ses_…`.
    SessionId,
    "ses"
);
id_type!(
    /// An enrollment: `enr_…`.
    EnrollmentId,
    "enr"
);
id_type!(
    /// A transaction-time verification: `ver_…`.
    VerificationId,
    "ver"
);
id_type!(
    /// A webhook endpoint of a tenant: `whk_…`.
    WebhookId,
    "whk"
);
id_type!(
    /// A webhook event (the id receivers de-duplicate by): `evt_…`.
    EventId,
    "evt"
);
id_type!(
    /// One event's delivery to one endpoint: `dlv_…`.
    DeliveryId,
    "dlv"
);
id_type!(
    /// A console operator of a tenant: `opr_…`.
    OperatorId,
    "opr"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_prefix_and_refuse_others() {
        let e = EnrollmentId::new();
        assert!(e.as_str().starts_with("enr_"));
        assert_eq!(EnrollmentId::parse(e.as_str()), Some(e.clone()));
        assert_eq!(
            SessionId::parse(e.as_str()),
            None,
            "an enrollment id is no session id"
        );
        assert_eq!(EnrollmentId::parse("enr_"), None);
        assert_eq!(EnrollmentId::parse("enr_ZZ"), None);
        assert_eq!(EnrollmentId::parse(&format!("{}0", e)), None, "too long");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<EnrollmentId>(&json).unwrap(), e);
        assert!(serde_json::from_str::<EnrollmentId>("\"ses_00\"").is_err());
    }
}
