//! One CRL: parsed from DER, its signature verified against a CA certificate (memoised per key),
//! its scope (issuingDistributionPoint, delta, unknown critical extensions) checked against a
//! certificate's CRL distribution points. Pure: no I/O.

use crate::jlis::x509::{normalise_serial, time_to_chrono, ParsedCert, RawSigned};
use crate::jlis::{CrlConfig, Failure, FailureKind, RevocationReason};
use chrono::{DateTime, Duration, Utc};
use const_oid::db::rfc5280 as oids;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlDistributionPoints, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::name::Name;

/// CRL extensions this checker knows (RFC 5280 §5.2); the IDP and the delta indicator are acted on.
const KNOWN_CRL_EXTENSIONS: &[ObjectIdentifier] = &[
    oids::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    oids::ID_CE_ISSUER_ALT_NAME,
    oids::ID_CE_CRL_NUMBER,
    oids::ID_CE_DELTA_CRL_INDICATOR,
    oids::ID_CE_ISSUING_DISTRIBUTION_POINT,
    oids::ID_CE_FRESHEST_CRL,
    oids::ID_PE_AUTHORITY_INFO_ACCESS,
];

/// CRL entry extensions this checker knows (RFC 5280 §5.3). certificateIssuer (indirect CRLs) is not
/// among them: its entries would be about another CA's certificates.
const KNOWN_ENTRY_EXTENSIONS: &[ObjectIdentifier] = &[
    oids::ID_CE_CRL_REASONS,
    oids::ID_CE_INVALIDITY_DATE,
    oids::ID_CE_HOLD_INSTRUCTION_CODE,
];

/// One downloaded, parsed CRL.
pub(super) struct LoadedCrl {
    pub(super) url: String,
    der: Vec<u8>,
    pub(super) issuer: Name,
    pub(super) issuer_text: String,
    pub(super) this_update: DateTime<Utc>,
    pub(super) next_update: Option<DateTime<Utc>>,
    /// Normalised serial → (reason, revocation time).
    pub(super) revoked: HashMap<Vec<u8>, (RevocationReason, DateTime<Utc>)>,
    /// cRLNumber, big-endian without leading zeros.
    pub(super) number: Option<Vec<u8>>,
    /// deltaCRLIndicator's BaseCRLNumber: present only on a delta CRL.
    delta_base: Option<Vec<u8>>,
    issuing_distribution_point: Option<IssuingDistributionPoint>,
    /// The issuingDistributionPoint's DER (empty without one): with the issuer, the CRL's scope.
    scope_der: Vec<u8>,
    /// The first critical CRL or entry extension this checker does not know, if any.
    unknown_critical: Option<String>,
    pub(super) fetched_at: DateTime<Utc>,
    /// SHA-256 of the SPKIs this CRL's signature has verified against (verification is memoised:
    /// hashing a large CRL on every check would be wasteful).
    verified_keys: Mutex<HashSet<[u8; 32]>>,
}

impl LoadedCrl {
    pub(super) fn parse(
        url: &str,
        der: Vec<u8>,
        fetched_at: DateTime<Utc>,
    ) -> Result<Self, Failure> {
        let crl = CertificateList::from_der(&der)
            .map_err(|e| Failure::new(FailureKind::Malformed, format!("CRL from {url}: {e}")))?;
        let tbs = crl.tbs_cert_list;
        let malformed = |what: &str, e: der::Error| {
            Failure::new(
                FailureKind::Malformed,
                format!("CRL from {url}: {what}: {e}"),
            )
        };
        let mut unknown_critical = None;
        let mut revoked = HashMap::new();
        for rc in tbs.revoked_certificates.unwrap_or_default() {
            let exts = rc.crl_entry_extensions.as_deref().unwrap_or_default();
            if let Some(e) = exts
                .iter()
                .find(|e| e.critical && !KNOWN_ENTRY_EXTENSIONS.contains(&e.extn_id))
            {
                unknown_critical.get_or_insert_with(|| format!("entry extension {}", e.extn_id));
            }
            let reason = exts
                .iter()
                .find(|e| e.extn_id == oids::ID_CE_CRL_REASONS)
                .and_then(|e| CrlReason::from_der(e.extn_value.as_bytes()).ok())
                .map(RevocationReason::from_x509)
                .unwrap_or(RevocationReason::Unspecified);
            let at = time_to_chrono(rc.revocation_date.to_unix_duration())?;
            revoked.insert(
                normalise_serial(rc.serial_number.as_bytes()).to_vec(),
                (reason, at),
            );
        }
        let mut number = None;
        let mut delta_base = None;
        let mut issuing_distribution_point = None;
        let mut scope_der = Vec::new();
        let mut seen = HashSet::new();
        for e in tbs.crl_extensions.as_deref().unwrap_or_default() {
            if !seen.insert(e.extn_id) {
                return Err(Failure::new(
                    FailureKind::Malformed,
                    format!("CRL from {url}: extension {} appears twice", e.extn_id),
                ));
            }
            let value = e.extn_value.as_bytes();
            match e.extn_id {
                oids::ID_CE_CRL_NUMBER => {
                    let n = CrlNumber::from_der(value).map_err(|e| malformed("cRLNumber", e))?;
                    number = Some(normalise_serial(n.0.as_bytes()).to_vec());
                }
                oids::ID_CE_DELTA_CRL_INDICATOR => {
                    let n = BaseCrlNumber::from_der(value)
                        .map_err(|e| malformed("deltaCRLIndicator", e))?;
                    delta_base = Some(normalise_serial(n.0.as_bytes()).to_vec());
                }
                oids::ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    issuing_distribution_point = Some(
                        IssuingDistributionPoint::from_der(value)
                            .map_err(|e| malformed("issuingDistributionPoint", e))?,
                    );
                    scope_der = value.to_vec();
                }
                id if e.critical && !KNOWN_CRL_EXTENSIONS.contains(&id) => {
                    unknown_critical.get_or_insert_with(|| format!("CRL extension {id}"));
                }
                _ => {}
            }
        }
        Ok(Self {
            url: url.to_string(),
            issuer_text: tbs.issuer.to_string(),
            issuer: tbs.issuer,
            this_update: time_to_chrono(tbs.this_update.to_unix_duration())?,
            next_update: match tbs.next_update {
                Some(t) => Some(time_to_chrono(t.to_unix_duration())?),
                None => None,
            },
            revoked,
            number,
            delta_base,
            issuing_distribution_point,
            scope_der,
            unknown_critical,
            fetched_at,
            der,
            verified_keys: Mutex::new(HashSet::new()),
        })
    }

    /// What the CRL-number high-water mark is kept by: issuer, issuingDistributionPoint, delta or not.
    pub(super) fn scope_key(&self) -> Result<ScopeKey, Failure> {
        let issuer = self
            .issuer
            .to_der()
            .map_err(|e| Failure::new(FailureKind::Malformed, format!("CRL issuer: {e}")))?;
        Ok((issuer, self.scope_der.clone(), self.delta_base.is_some()))
    }

    /// Whether some issuer key has verified this CRL's signature.
    pub(super) fn verified_by_any(&self) -> bool {
        !self
            .verified_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// RFC 5280 §6.3.3 (b): refuses a CRL that does not cover `cert_dps`, an end-entity certificate
    /// with these distribution point names (`None`: the certificate has no cRLDistributionPoints).
    pub(super) fn check_scope(&self, cert_dps: Option<&[String]>) -> Result<(), Failure> {
        let scope = |why: String| {
            Err(Failure::new(
                FailureKind::CrlScopeMismatch,
                format!("CRL from {}: {why}", self.url),
            ))
        };
        if let Some(what) = &self.unknown_critical {
            return Err(Failure::new(
                FailureKind::UnknownCriticalExtension,
                format!("CRL from {}: critical {what} is not understood", self.url),
            ));
        }
        if self.delta_base.is_some() {
            return Err(Failure::new(
                FailureKind::DeltaCrl,
                format!(
                    "CRL from {} is a delta CRL; it is never used without its base",
                    self.url
                ),
            ));
        }
        let Some(idp) = &self.issuing_distribution_point else {
            // No issuingDistributionPoint: a complete CRL for every certificate of the issuer.
            return Ok(());
        };
        if idp.only_contains_ca_certs || idp.only_contains_attribute_certs {
            return scope("it covers only CA or attribute certificates".into());
        }
        if idp.only_some_reasons.is_some() {
            return scope("it covers only some revocation reasons".into());
        }
        if idp.indirect_crl {
            return scope("indirect CRLs are not supported".into());
        }
        let Some(dpn) = &idp.distribution_point else {
            return Ok(());
        };
        let crl_names = dp_name_keys(dpn, &self.issuer);
        match cert_dps {
            None => {
                scope("it is one partition, and the certificate names no distribution point".into())
            }
            Some(names) if names.iter().any(|n| crl_names.contains(n)) => Ok(()),
            Some(_) => scope(
                "its issuingDistributionPoint is not the certificate's CRL distribution point"
                    .into(),
            ),
        }
    }

    /// The instant after which this CRL may no longer be used.
    pub(super) fn expiry(&self, max_age_secs: u64) -> DateTime<Utc> {
        self.next_update.unwrap_or_else(|| {
            self.this_update
                + Duration::seconds(i64::try_from(max_age_secs).unwrap_or(i64::MAX / 4))
        })
    }

    pub(super) fn is_stale(&self, now: DateTime<Utc>, cfg: &CrlConfig) -> bool {
        now - skew(cfg) > self.expiry(cfg.max_age_secs)
    }

    pub(super) fn is_verified_by(&self, issuer: &ParsedCert) -> Result<bool, Failure> {
        let key_id = key_id(issuer)?;
        Ok(self
            .verified_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key_id))
    }

    pub(super) fn verify(&self, issuer: &ParsedCert) -> Result<(), Failure> {
        if self.is_verified_by(issuer)? {
            return Ok(());
        }
        let key_id = key_id(issuer)?;
        RawSigned::parse(&self.der)?
            .verify_with(issuer.spki())
            .map_err(|f| Failure::new(f.kind, format!("CRL from {}: {}", self.url, f.detail)))?;
        self.verified_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id);
        Ok(())
    }
}

/// (issuer DER, issuingDistributionPoint DER, is a delta CRL).
pub(super) type ScopeKey = (Vec<u8>, Vec<u8>, bool);

/// `a < b` for big-endian numbers without leading zeros.
pub(super) fn number_lt(a: &[u8], b: &[u8]) -> bool {
    (a.len(), a) < (b.len(), b)
}

/// Canonical text of each name in a distribution point name (the form `jlis.crl.distribution_points`
/// is written in); a name relative to the CRL issuer is made absolute with `issuer`.
fn dp_name_keys(dpn: &DistributionPointName, issuer: &Name) -> Vec<String> {
    match dpn {
        DistributionPointName::FullName(names) => {
            names.iter().filter_map(general_name_key).collect()
        }
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            let mut full = issuer.clone();
            full.0.push(rdn.clone());
            vec![format!("DirName:{full}")]
        }
    }
}

fn general_name_key(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::UniformResourceIdentifier(uri) => Some(format!("URI:{}", uri.as_str())),
        GeneralName::DirectoryName(dn) => Some(format!("DirName:{dn}")),
        _ => None,
    }
}

/// The names of a certificate's CRL distribution points. Points that name another CRL issuer
/// (indirect CRLs) or only some reasons are left out: no CRL this checker accepts covers them.
pub(super) fn cert_dp_names(der: &[u8], issuer: &Name) -> Result<Vec<String>, Failure> {
    let dps = CrlDistributionPoints::from_der(der).map_err(|e| {
        Failure::new(
            FailureKind::InvalidTarget,
            format!("cRLDistributionPoints: {e}"),
        )
    })?;
    Ok(dps
        .0
        .iter()
        .filter(|dp: &&DistributionPoint| dp.crl_issuer.is_none() && dp.reasons.is_none())
        .filter_map(|dp| dp.distribution_point.as_ref())
        .flat_map(|dpn| dp_name_keys(dpn, issuer))
        .collect())
}

pub(super) fn key_id(issuer: &ParsedCert) -> Result<[u8; 32], Failure> {
    let spki_der = issuer
        .spki()
        .to_der()
        .map_err(|e| Failure::new(FailureKind::InvalidTarget, format!("issuer key: {e}")))?;
    Ok(Sha256::digest(&spki_der).into())
}

pub(super) fn skew(cfg: &CrlConfig) -> Duration {
    Duration::seconds(i64::try_from(cfg.max_skew_secs).unwrap_or(i64::MAX / 4))
}

#[cfg(test)]
mod tests {
    //! Pure tests on a CRL made by `openssl ca -gencrl` (see testdata/README.md).
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const CA: &[u8] = include_bytes!("../testdata/ca.der");
    const CRL: &[u8] = include_bytes!("../testdata/sign.crl");

    fn ca() -> ParsedCert {
        ParsedCert::parse(CA, FailureKind::InvalidTarget).unwrap()
    }

    fn parse_and_verify(der: &[u8]) -> Result<LoadedCrl, Failure> {
        let crl = LoadedCrl::parse("test", der.to_vec(), Utc::now())?;
        crl.verify(&ca())?;
        Ok(crl)
    }

    #[test]
    fn the_openssl_crl_parses_verifies_and_answers() {
        let crl = parse_and_verify(CRL).unwrap();
        let this_update = Utc.with_ymd_and_hms(2026, 11, 25, 13, 3, 58).unwrap();
        assert_eq!(crl.this_update, this_update);
        assert_eq!(crl.next_update, Some(this_update + Duration::days(1)));
        assert_eq!(crl.issuer, ca().cert.tbs_certificate.subject);
        assert_eq!(
            crl.revoked.get(&[0x10, 0x01][..]).map(|r| r.0),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            crl.revoked.get(&[0x10, 0x02][..]).map(|r| r.0),
            Some(RevocationReason::AffiliationChanged)
        );
        assert!(!crl.revoked.contains_key(&[0x10, 0x00][..]));
        assert_eq!(crl.revoked.len(), 2);
        // Verified once, then memoised for this key.
        assert!(crl.is_verified_by(&ca()).unwrap());
        let cfg = CrlConfig::default();
        assert!(!crl.is_stale(this_update + Duration::hours(23), &cfg));
        assert!(crl.is_stale(
            this_update + Duration::days(1) + Duration::seconds(301),
            &cfg
        ));
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        for i in 0..CRL.len() {
            for bit in [0x01u8, 0x80] {
                let mut der = CRL.to_vec();
                der[i] ^= bit;
                if let Ok(crl) = parse_and_verify(&der) {
                    panic!(
                        "flip of bit {bit:#x} at byte {i} was accepted ({} entries)",
                        crl.revoked.len()
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(der in proptest::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert!(parse_and_verify(&der).is_err());
        }

        #[test]
        fn truncations_are_refused(cut in 0usize..540) {
            let end = cut.min(CRL.len().saturating_sub(1));
            prop_assert!(parse_and_verify(&CRL[..end]).is_err());
        }
    }
}
