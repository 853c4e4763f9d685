//! Card verification: 券面AP, 入力補助AP and the JPKI signing certificate (issue 3, card-data.md §0 steps 1–6, 8).
//!
//! Pure code: the only I/O is [`TrustStore::load`] reading the trust directory. The HTTP layer calls
//! [`parse_card_json`] on the `card` part, then [`verify_card`]; bytes that cannot be parsed at all give
//! [`InvalidCardData`] (API 422 `invalid_card_data`), and every check that runs gives a typed result in the
//! [`CardReport`]. Revocation (step 7) is the `jlis` module's job; the report carries what it needs.

mod cert;
mod hojo;
mod input;
mod kenmen;
mod record;
mod report;
mod rsakey;
pub mod tlv;
mod trust;
mod verify;

pub use cert::{parse_era_date, SigningCertificate};
pub use hojo::{HojoAttributes, HojoIntegrity};
pub use input::{parse_card_json, CardInputError, CardSubmission, HojoSubmission};
pub use kenmen::{three_hash_block, FaceRecord, THREE_HASH_DIGEST_INFO_PREFIX};
pub use record::{key_id_display, make_key_id, parse_cvc, Cvc, CvcFile};
pub use report::*;
pub use rsakey::{encode_card_key, parse_card_key, push_tlv};
pub use trust::{TrustError, TrustStore, TrustedRoot};
pub use verify::{tbs_card, tbs_jpki, verify_card, SessionBinding};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Configuration of the card checks (`[card]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CardConfig {
    /// Directory with `cvc-issuers/` and `jpki-roots/` (see [`TrustStore::load`]). Unset: nothing is trusted.
    pub trust_dir: Option<PathBuf>,
    /// Largest 券面AP face record accepted, in bytes.
    pub max_face_record_bytes: usize,
    /// The signing certificate must carry one of these certificatePolicies OIDs (dotted form). Default:
    /// the JPKI signing-certificate policy. J-LIS test cards carry `1.2.392.200149.8.5.1.0.20` instead.
    pub signing_policy_oids: Vec<String>,
}

/// The JPKI 署名用電子証明書 policy (J-LIS certificate profile; `jpki-cp-sign-class20`).
pub const JPKI_SIGNING_POLICY_OID: &str = "1.2.392.200149.8.5.1.1.20";

impl Default for CardConfig {
    fn default() -> Self {
        Self {
            trust_dir: None,
            max_face_record_bytes: 64 * 1024,
            signing_policy_oids: vec![JPKI_SIGNING_POLICY_OID.to_string()],
        }
    }
}

/// A `[card]` setting that is out of range or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: `{key}`: {why}")]
pub struct CardConfigError {
    pub key: &'static str,
    pub why: String,
}

impl CardConfig {
    /// Checks every value; the error names the key. Called at load time and by [`TrustStore::from_config`].
    pub fn validate(&self) -> Result<(), CardConfigError> {
        if !(1024..=1 << 20).contains(&self.max_face_record_bytes) {
            return Err(CardConfigError {
                key: "card.max_face_record_bytes",
                why: "must be between 1024 and 1048576".into(),
            });
        }
        if self.signing_policy_oids.is_empty() {
            return Err(CardConfigError {
                key: "card.signing_policy_oids",
                why: "must list at least one policy OID (the check cannot be switched off)".into(),
            });
        }
        if let Some(bad) = self
            .signing_policy_oids
            .iter()
            .find(|o| o.parse::<const_oid::ObjectIdentifier>().is_err())
        {
            return Err(CardConfigError {
                key: "card.signing_policy_oids",
                why: format!("{bad:?} is not a dotted OID"),
            });
        }
        Ok(())
    }
}

/// A tenant's card policy, passed to [`verify_card`] for each enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CardPolicy {
    /// Require the 入力補助AP records (the one-card binding, docs/card.md). Off: a submission without them
    /// is bound to the certificate only by birth date and sex.
    pub require_hojo: bool,
}

impl Default for CardPolicy {
    fn default() -> Self {
        Self { require_hojo: true }
    }
}

/// Bytes that cannot be parsed at all (API 422 `invalid_card_data`). `element` names the part, e.g. `kenmen.face/DF21`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid card data in {element}: {detail}")]
pub struct InvalidCardData {
    pub element: &'static str,
    /// Says what is wrong; never contains the submitted bytes.
    pub detail: String,
}

impl InvalidCardData {
    pub fn new(element: &'static str, detail: impl Into<String>) -> Self {
        Self {
            element,
            detail: detail.into(),
        }
    }

    /// The API's error code.
    pub fn code(&self) -> &'static str {
        "invalid_card_data"
    }
}

/// Sex as JIS X 0303 codes it (the card's DF23, the 入力補助AP's DF25 and the SAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// `0`
    NotKnown,
    /// `1`
    Male,
    /// `2`
    Female,
    /// `9`
    NotApplicable,
}

impl Sex {
    /// From the ASCII digit; other codes are refused.
    pub fn from_code(digit: u8) -> Option<Self> {
        match digit {
            b'0' => Some(Self::NotKnown),
            b'1' => Some(Self::Male),
            b'2' => Some(Self::Female),
            b'9' => Some(Self::NotApplicable),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::NotKnown => b'0',
            Self::Male => b'1',
            Self::Female => b'2',
            Self::NotApplicable => b'9',
        }
    }
}

/// 基本4情報 from the signing certificate's SAN. Personal data: `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identity {
    pub name: String,
    /// 氏名代替文字: characters the card could not encode, usually empty.
    pub name_alt: String,
    pub birth_date: chrono::NaiveDate,
    pub sex: Sex,
    pub address: String,
    /// 住所代替文字, usually empty.
    pub address_alt: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Prefixes that steer random bytes into the deeper parts of each parser.
    fn prefixed() -> impl Strategy<Value = Vec<u8>> {
        let prefix = prop_oneof![
            Just(vec![]),
            Just(vec![0xFF, 0x20, 0x82, 0x01, 0x00, 0xDF, 0x21, 0x12]),
            Just(vec![0xFF, 0x20, 0x40, 0xDF, 0x21, 0x08, 0x00, 0x0E]),
            Just(vec![0xFF, 0x30, 0x81, 0x80, 0xDF, 0x31, 0x20]),
            Just(vec![
                0x7F, 0x21, 0x82, 0x02, 0x33, 0x5F, 0x4E, 0x82, 0x01, 0x29
            ]),
            Just(vec![
                0x30, 0x82, 0x01, 0x00, 0x30, 0x81, 0xF0, 0xA0, 0x03, 0x02, 0x01, 0x02
            ]),
        ];
        (prefix, proptest::collection::vec(any::<u8>(), 0..700)).prop_map(|(mut p, rest)| {
            p.extend(rest);
            p
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(bytes in prefixed()) {
            let _ = FaceRecord::parse(&bytes, 64 * 1024);
            let _ = HojoAttributes::parse(&bytes);
            let _ = HojoIntegrity::parse(&bytes);
            let _ = parse_cvc(&bytes, CvcFile::Hojo);
            let _ = SigningCertificate::parse(&bytes);
            let _ = parse_card_key(&bytes);
            let _ = parse_card_json(&bytes);
        }

        #[test]
        fn card_json_with_arbitrary_base64_never_panics(fields in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 5)) {
            use base64::Engine;
            let b = |i: usize| base64::engine::general_purpose::STANDARD.encode(&fields[i]);
            let json = serde_json::json!({"kenmen": {"face": b(0), "cvc": b(1), "card_signature": b(2)},
                                          "jpki": {"signing_certificate": b(3), "signature": b(4)}});
            let sub = parse_card_json(json.to_string().as_bytes());
            prop_assert!(sub.is_ok());
            if let Ok(sub) = sub {
                let nonce = [0u8; 32];
                let binding = SessionBinding { session_id: "ses_x", nonce: &nonce };
                let _ = verify_card(&sub, &TrustStore::empty(), &CardPolicy::default(), &binding, chrono::Utc::now());
            }
        }
    }

    #[test]
    fn identity_debug_is_redacted() {
        let id = Identity {
            name: "山田　太郎".into(),
            name_alt: String::new(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, 2).unwrap_or_default(),
            sex: Sex::Male,
            address: "東京都".into(),
            address_alt: String::new(),
        };
        assert_eq!(format!("{id:?}"), "Identity([redacted])");
    }

    #[test]
    fn config_defaults() {
        let c = CardConfig::default();
        assert_eq!(c.signing_policy_oids, vec!["1.2.392.200149.8.5.1.1.20"]);
        assert_eq!((c.trust_dir, c.max_face_record_bytes), (None, 65536));
        assert!(CardPolicy::default().require_hojo);
    }

    #[test]
    fn config_validation_names_the_key() {
        assert_eq!(CardConfig::default().validate(), Ok(()));
        let bad = |c: CardConfig| c.validate().unwrap_err().key;
        let no_policy = CardConfig {
            signing_policy_oids: vec![],
            ..CardConfig::default()
        };
        assert_eq!(bad(no_policy), "card.signing_policy_oids");
        let not_oid = CardConfig {
            signing_policy_oids: vec!["jpki-sign".into()],
            ..CardConfig::default()
        };
        assert_eq!(bad(not_oid), "card.signing_policy_oids");
        let tiny = CardConfig {
            max_face_record_bytes: 10,
            ..CardConfig::default()
        };
        assert_eq!(bad(tiny), "card.max_face_record_bytes");
    }
}
