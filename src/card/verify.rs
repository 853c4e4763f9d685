//! `verify_card`: runs every card check of card-data.md §0 (steps 1–6 and 8) and collects typed results.

use super::cert::SigningCertificate;
use super::hojo::{HojoAttributes, HojoIntegrity};
use super::kenmen::FaceRecord;
use super::record::{key_id_display, parse_cvc, CvcFile};
use super::report::*;
use super::rsakey::verify_sha256;
use super::trust::TrustStore;
use super::{CardPolicy, CardSubmission, InvalidCardData};
use chrono::{DateTime, Utc};

/// The session a signature must be bound to.
#[derive(Debug, Clone, Copy)]
pub struct SessionBinding<'a> {
    pub session_id: &'a str,
    pub nonce: &'a [u8; 32],
}

fn tbs(label: &[u8], b: &SessionBinding<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(label.len() + 1 + b.session_id.len() + 32);
    out.extend_from_slice(label);
    out.push(0);
    out.extend_from_slice(b.session_id.as_bytes());
    out.extend_from_slice(b.nonce);
    out
}

/// `"jpki-face/card-auth/v1" ‖ 0x00 ‖ session_id ‖ nonce`: what the 券面AP card key signs (api.md, Sessions).
pub fn tbs_card(b: &SessionBinding<'_>) -> Vec<u8> {
    tbs(b"jpki-face/card-auth/v1", b)
}

/// `"jpki-face/jpki-sign/v1" ‖ 0x00 ‖ session_id ‖ nonce`: what the JPKI signing key signs (api.md, Sessions).
pub fn tbs_jpki(b: &SessionBinding<'_>) -> Vec<u8> {
    tbs(b"jpki-face/jpki-sign/v1", b)
}

/// Verifies a submission at time `now` under the tenant's `policy`. Errors only for bytes that cannot be
/// parsed at all.
pub fn verify_card(
    sub: &CardSubmission,
    trust: &TrustStore,
    policy: &CardPolicy,
    binding: &SessionBinding<'_>,
    now: DateTime<Utc>,
) -> Result<CardReport, InvalidCardData> {
    // Parse everything first, so a structurally broken submission is a 422 whatever the checks would say.
    let face = FaceRecord::parse(&sub.kenmen_face, trust.max_face_record_bytes())?;
    let cvc = parse_cvc(&sub.kenmen_cvc, CvcFile::Kenmen)?;
    let cert = SigningCertificate::parse(&sub.jpki_certificate)?;
    let hojo = match &sub.hojo {
        Some(h) => Some((
            HojoAttributes::parse(&h.attributes)?,
            HojoIntegrity::parse(&h.integrity)?,
            parse_cvc(&h.cvc, CvcFile::Hojo)?,
        )),
        None => None,
    };

    // Steps 2–3: CVC against the trust table, then DF28 with the certified key.
    let card_data_result = match trust.cvc_issuer(&cvc.issuer_key_id) {
        None => CardDataResult::UnknownIssuer,
        Some(root) if !verify_sha256(root, cvc.body, cvc.signature) => {
            CardDataResult::InvalidSignature
        }
        Some(_) if !face.verify_issuer_signature(&cvc.subject_key) => {
            CardDataResult::InvalidSignature
        }
        Some(_) => CardDataResult::Valid,
    };
    let card_data = CardDataCheck {
        result: card_data_result,
        issuer_key_id: key_id_display(&cvc.issuer_key_id),
    };

    // Step 4: the card is present (DF24 signed this session's challenge).
    let present = verify_sha256(
        &face.card_key,
        &tbs_card(binding),
        &sub.kenmen_card_signature,
    );
    let card_present = PresenceCheck {
        result: if present {
            PresenceResult::Valid
        } else {
            PresenceResult::InvalidSignature
        },
    };

    // Step 6: the signing certificate. The issuer is found by signature among all configured roots.
    let root = trust.roots().iter().find(|r| cert.signed_by(&r.key));
    let ts = now.timestamp();
    let certificate_result = match root {
        None => CertificateResult::UntrustedChain,
        Some(r) if r.subject_der != cert.issuer_der => CertificateResult::WrongIssuer,
        Some(r) if !r.is_ca => CertificateResult::RootNotCa,
        Some(r) if !r.valid_at(ts) => CertificateResult::RootNotValid,
        Some(_) if ts > cert.not_after.timestamp() => CertificateResult::Expired,
        Some(_) if ts < cert.not_before.timestamp() => CertificateResult::NotYetValid,
        Some(_) if !cert.unknown_critical.is_empty() => CertificateResult::UnknownCriticalExtension,
        Some(_) if !cert.key_usage_ok => CertificateResult::BadKeyUsage,
        Some(_) if !trust.accepts_policy(&cert.policies) => CertificateResult::PolicyMissing,
        Some(_) if !verify_sha256(&cert.key, &tbs_jpki(binding), &sub.jpki_signature) => {
            CertificateResult::InvalidSignature
        }
        Some(_) => CertificateResult::Valid,
    };
    let certificate = CertificateCheck {
        result: certificate_result,
        serial: cert.serial_hex(),
        issuer: cert.issuer.clone(),
        not_after: cert.not_after,
        unknown_critical_extensions: if certificate_result
            == CertificateResult::UnknownCriticalExtension
        {
            cert.unknown_critical.clone()
        } else {
            Vec::new()
        },
    };
    let revocation_target = root.map(|r| RevocationTarget {
        serial: cert.serial.clone(),
        issuer_cert_der: r.der.clone(),
        crl_distribution_points: cert.crl_distribution_points.clone(),
    });

    // Optional 入力補助AP integrity.
    let hojo_check = hojo.as_ref().map(|(attrs, integrity, hcvc)| {
        let result = match trust.cvc_issuer(&hcvc.issuer_key_id) {
            None => HojoResult::UnknownIssuer,
            Some(root) if !verify_sha256(root, hcvc.body, hcvc.signature) => {
                HojoResult::InvalidSignature
            }
            Some(_) if !integrity.verify(&hcvc.subject_key, attrs) => HojoResult::InvalidSignature,
            Some(_) => HojoResult::Valid,
        };
        HojoCheck {
            result,
            issuer_key_id: key_id_display(&hcvc.issuer_key_id),
        }
    });

    // Step 8: the 券面AP describes the person in the certificate.
    let id = &cert.identity;
    let mut mismatched = Vec::new();
    if id.birth_date != face.birth_date {
        mismatched.push(IdentityField::BirthDate);
    }
    if id.sex != face.sex {
        mismatched.push(IdentityField::Sex);
    }
    let consistency = ConsistencyCheck {
        result: if mismatched.is_empty() {
            ConsistencyResult::Match
        } else {
            ConsistencyResult::Mismatch
        },
        mismatched,
    };

    // The one-card binding: the 入力補助AP agrees with the SAN on all four facts and with the 券面AP.
    let hojo_binding = match &hojo {
        None => HojoBindingCheck {
            result: if policy.require_hojo {
                HojoBindingResult::HojoRequired
            } else {
                HojoBindingResult::NotRequired
            },
            certificate_mismatched: Vec::new(),
            kenmen_mismatched: Vec::new(),
        },
        Some((attrs, _, _)) => {
            let mut with_cert = Vec::new();
            if normalise(attrs.name) != normalise(&id.name) {
                with_cert.push(IdentityField::Name);
            }
            if normalise(attrs.address) != normalise(&id.address) {
                with_cert.push(IdentityField::Address);
            }
            if attrs.birth_date != id.birth_date {
                with_cert.push(IdentityField::BirthDate);
            }
            if attrs.sex != id.sex {
                with_cert.push(IdentityField::Sex);
            }
            with_cert.sort();
            let mut with_kenmen = Vec::new();
            if attrs.birth_date != face.birth_date {
                with_kenmen.push(IdentityField::BirthDate);
            }
            if attrs.sex != face.sex {
                with_kenmen.push(IdentityField::Sex);
            }
            HojoBindingCheck {
                result: if with_cert.is_empty() && with_kenmen.is_empty() {
                    HojoBindingResult::Bound
                } else {
                    HojoBindingResult::Mismatch
                },
                certificate_mismatched: with_cert,
                kenmen_mismatched: with_kenmen,
            }
        }
    };

    Ok(CardReport {
        card_data,
        card_present,
        certificate,
        hojo: hojo_check,
        consistency,
        hojo_binding,
        identity: cert.identity.clone(),
        chip_photo: face.photo.to_vec(),
        card_expiry_unauthenticated: face.expiry_unauthenticated,
        revocation_target,
    })
}

/// Name/address comparison form (card-data.md §0 step 8): U+3000 and runs of white space become one ASCII
/// space, full-width digits become ASCII digits, and the ends are trimmed.
pub(crate) fn normalise(s: &str) -> String {
    let mapped = s.chars().map(|c| match c {
        '\u{3000}' => ' ',
        '０'..='９' => char::from_u32(u32::from(c) - 0xFF10 + u32::from('0')).unwrap_or(c),
        c => c,
    });
    let mut out = String::with_capacity(s.len());
    for c in mapped {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbs_bytes_are_exactly_the_api_ones() {
        let nonce = [7u8; 32];
        let b = SessionBinding {
            session_id: "ses_abc",
            nonce: &nonce,
        };
        let mut want = b"jpki-face/card-auth/v1\0ses_abc".to_vec();
        want.extend_from_slice(&nonce);
        assert_eq!(tbs_card(&b), want);
        let mut want = b"jpki-face/jpki-sign/v1\0ses_abc".to_vec();
        want.extend_from_slice(&nonce);
        assert_eq!(tbs_jpki(&b), want);
    }

    #[test]
    fn normalisation_follows_the_spec() {
        assert_eq!(normalise("黒桐　幹也"), normalise("黒桐 幹也"));
        assert_eq!(normalise("清瀬市１２－７"), "清瀬市12－7");
        assert_ne!(normalise("山田　太郎"), normalise("山田　次郎"));
        assert_eq!(normalise("  a \t b  "), "a b");
    }
}
