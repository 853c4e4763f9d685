//! CRL checker against CRLs made by `openssl ca -gencrl` and served over HTTP by the test.
//! Needs Debian's `openssl` on PATH.

#[path = "support/jlis_pki.rs"]
mod jlis_pki;

use jlis_pki::{free_port, openssl, pki, Behaviour, Pki, TestServer};
use jpki_face::config::Environment;
use jpki_face::jlis::{
    build_checker_with_clock, FailureKind, JlisConfig, JlisError, Method, Mode, OffsetClock,
    RevocationReason, Status, ValidityChecker, ValidityReport,
};
use std::sync::Arc;

fn pki_() -> &'static Pki {
    pki("crl")
}

fn serve(body: Vec<u8>) -> TestServer {
    TestServer::start(Behaviour::Respond { status: 200, body })
}

fn config(urls: Vec<String>) -> JlisConfig {
    let mut cfg = JlisConfig {
        mode: Mode::Crl,
        ..JlisConfig::default()
    };
    cfg.crl.urls = urls;
    cfg.crl.connect_timeout_ms = 1_000;
    cfg.crl.timeout_ms = 2_000;
    cfg.crl.retries = 0;
    cfg.crl.backoff_ms = 10;
    cfg.crl.max_skew_secs = 60;
    cfg
}

fn checker(cfg: &JlisConfig) -> (Arc<dyn ValidityChecker>, Arc<OffsetClock>) {
    let clock = Arc::new(OffsetClock::new());
    let c = build_checker_with_clock(cfg, Environment::Development, clock.clone())
        .expect("checker builds");
    (c, clock)
}

async fn check(c: &Arc<dyn ValidityChecker>, serial: &[u8]) -> Result<ValidityReport, JlisError> {
    c.check(&pki_().target(serial)).await
}

fn kind(r: Result<ValidityReport, JlisError>) -> FailureKind {
    match r {
        Ok(r) => panic!("expected a failure, got {r:?}"),
        Err(e) => {
            assert_eq!(e.code(), "revocation_unavailable");
            e.kind()
        }
    }
}

#[tokio::test]
async fn good_revoked_and_identity_changed_from_one_download() {
    let p = pki_();
    let server = serve(p.read("sign.crl"));
    let (c, _) = checker(&config(vec![server.url("/sign.crl")]));
    assert_eq!(c.method(), Method::Crl);

    let good = check(&c, &p.good).await.expect("decided");
    // The background refresh's start-up download may overlap this first on-demand one (seen on a
    // loaded machine); from here on the fresh CRL is reused.
    let after_first = server.count();
    assert!((1..=2).contains(&after_first), "{after_first}");
    assert_eq!(good.status, Status::Good);
    assert_eq!(good.method, Method::Crl);
    assert!(good.next_update.is_some_and(|nu| nu > good.this_update));
    assert!(good
        .responder
        .clone()
        .unwrap_or_default()
        .contains("sign.crl"));

    let kc = check(&c, &p.key_compromise).await.expect("decided");
    assert!(matches!(
        kc.status,
        Status::Revoked {
            reason: RevocationReason::KeyCompromise,
            ..
        }
    ));
    assert_eq!(kc.failure_code(), Some("certificate_revoked"));

    let ac = check(&c, &p.affiliation_changed).await.expect("decided");
    assert!(matches!(
        ac.status,
        Status::Revoked {
            reason: RevocationReason::AffiliationChanged,
            ..
        }
    ));
    assert_eq!(ac.failure_code(), Some("identity_changed"));
    assert!(kc.from_cache && ac.from_cache, "later checks reuse the CRL");
    assert_eq!(
        server.count(),
        after_first,
        "the CRL is not downloaded again while fresh"
    );
}

#[tokio::test]
async fn bad_signature_is_refused() {
    let p = pki_();
    let mut crl = p.read("sign.crl");
    // The signature is the last field: flip its last bit.
    if let Some(last) = crl.last_mut() {
        *last ^= 1;
    }
    let server = serve(crl);
    let (c, _) = checker(&config(vec![server.url("/sign.crl")]));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::BadSignature);
    assert_eq!(
        kind(check(&c, &p.key_compromise).await),
        FailureKind::BadSignature
    );
}

/// A CRL with the CA's issuer name but signed by the imposter's key (written as `stem`.crl).
fn imposter_crl(p: &Pki, stem: &str) -> Vec<u8> {
    let pem = format!("{stem}.crl.pem");
    let der = format!("{stem}.crl");
    openssl(
        &p.dir,
        &[
            "ca",
            "-config",
            "t.cnf",
            "-gencrl",
            "-keyfile",
            "imposter.key",
            "-cert",
            "imposter.pem",
            "-out",
            &pem,
        ],
    );
    openssl(
        &p.dir,
        &["crl", "-in", &pem, "-outform", "DER", "-out", &der],
    );
    p.read(&der)
}

#[tokio::test]
async fn crl_signed_by_an_imposter_with_the_ca_name_is_refused() {
    let p = pki_();
    let server = serve(imposter_crl(p, "imposter-alone"));
    let (c, _) = checker(&config(vec![server.url("/imposter.crl")]));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::BadSignature);
}

#[tokio::test]
async fn a_crl_that_does_not_verify_is_skipped_for_one_that_does() {
    // Several CA generations can share a name: the CRL that verifies against this CA answers.
    let p = pki_();
    let imposter = serve(imposter_crl(p, "imposter-first"));
    let genuine = serve(p.read("sign.crl"));
    let (c, _) = checker(&config(vec![
        imposter.url("/imposter.crl"),
        genuine.url("/sign.crl"),
    ]));
    assert_eq!(
        check(&c, &p.key_compromise)
            .await
            .expect("decided")
            .failure_code(),
        Some("certificate_revoked")
    );
    assert_eq!(
        check(&c, &p.good).await.expect("decided").status,
        Status::Good
    );
}

#[tokio::test]
async fn stale_crl_is_an_error_until_a_fresh_one_is_served() {
    let p = pki_();
    let server = serve(p.read("sign.crl"));
    let (c, clock) = checker(&config(vec![server.url("/sign.crl")]));
    assert_eq!(
        check(&c, &p.good).await.expect("decided").status,
        Status::Good
    );

    // Two days later the one-day CRL is past nextUpdate; downloading again gives the same stale CRL.
    clock.advance_secs(2 * 86_400);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::Stale);
    assert_eq!(kind(check(&c, &p.key_compromise).await), FailureKind::Stale);
    let downloads = server.count();
    assert!(
        downloads >= 2,
        "a stale CRL triggers a new download ({downloads})"
    );

    // The CA publishes a CRL valid for five days: the next check fetches it and decides again.
    openssl(
        &p.dir,
        &[
            "ca",
            "-config",
            "t.cnf",
            "-gencrl",
            "-crldays",
            "5",
            "-out",
            "fresh.crl.pem",
        ],
    );
    openssl(
        &p.dir,
        &[
            "crl",
            "-in",
            "fresh.crl.pem",
            "-outform",
            "DER",
            "-out",
            "fresh.crl",
        ],
    );
    server.set(Behaviour::Respond {
        status: 200,
        body: p.read("fresh.crl"),
    });
    let r = check(&c, &p.good).await.expect("decided");
    assert_eq!(r.status, Status::Good);
    assert!(!r.from_cache);
    assert_eq!(
        check(&c, &p.affiliation_changed)
            .await
            .expect("decided")
            .failure_code(),
        Some("identity_changed")
    );
}

#[tokio::test]
async fn unreachable_and_garbage_crls_cannot_decide() {
    let p = pki_();
    let (down, _) = checker(&config(vec![format!(
        "http://127.0.0.1:{}/sign.crl",
        free_port()
    )]));
    assert_eq!(kind(check(&down, &p.good).await), FailureKind::Connect);

    let server = serve(b"not a CRL".to_vec());
    let (garbage, _) = checker(&config(vec![server.url("/sign.crl")]));
    assert_eq!(kind(check(&garbage, &p.good).await), FailureKind::Malformed);

    let missing = TestServer::start(Behaviour::Respond {
        status: 404,
        body: Vec::new(),
    });
    let (not_found, _) = checker(&config(vec![missing.url("/sign.crl")]));
    assert_eq!(
        kind(check(&not_found, &p.good).await),
        FailureKind::HttpStatus
    );
}

#[tokio::test]
async fn crl_of_another_issuer_does_not_answer() {
    let p = pki_();
    let server = serve(p.read("sign.crl"));
    let (c, _) = checker(&config(vec![server.url("/sign.crl")]));
    // Ask about a certificate of a different CA (the foreign self-signed one): no CRL covers it.
    let foreign = der::DecodePem::from_pem(p.read("foreign.pem"))
        .and_then(|c: x509_cert::Certificate| der::Encode::to_der(&c))
        .expect("foreign certificate");
    let t = jpki_face::jlis::RevocationTarget {
        serial: p.good.clone(),
        issuer_cert_der: foreign,

        crl_distribution_points: None,
    };
    assert_eq!(kind(c.check(&t).await), FailureKind::NoCrlForIssuer);
}

#[tokio::test]
async fn breaker_guards_downloads() {
    let p = pki_();
    let port = free_port();
    let mut cfg = config(vec![format!("http://127.0.0.1:{port}/sign.crl")]);
    cfg.breaker.failure_threshold = 2;
    cfg.breaker.open_secs = 30;
    let (c, clock) = checker(&cfg);
    // The background task's first download may already have failed once; either way, within
    // three checks the breaker opens and checks fail fast.
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(kind(check(&c, &p.good).await));
    }
    assert_eq!(kinds.last(), Some(&FailureKind::BreakerOpen), "{kinds:?}");
    let err = check(&c, &p.good).await.expect_err("open");
    assert_eq!(err.kind(), FailureKind::BreakerOpen);
    assert!((1..=30).contains(&err.retry_after_secs()));
    clock.advance_secs(31);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::Connect);
}

#[tokio::test]
async fn crl_mode_needs_urls() {
    let cfg = config(Vec::new());
    let err =
        build_checker_with_clock(&cfg, Environment::Development, Arc::new(OffsetClock::new()))
            .err()
            .expect("refused");
    assert!(err.to_string().contains("jlis.crl.urls"), "{err}");
}

#[tokio::test]
async fn background_task_refreshes_and_stops_with_the_checker() {
    let p = pki_();
    let server = serve(p.read("sign.crl"));
    let mut cfg = config(vec![server.url("/sign.crl")]);
    cfg.crl.refresh_secs = 1;
    let (c, _) = checker(&cfg);
    // Without any check, the background task downloads at start and then every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no periodic refresh ({} downloads)",
            server.count()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = check(&c, &p.good).await.expect("decided");
    assert!(
        r.from_cache,
        "the check used the CRL the background task fetched"
    );
    // Dropping the checker ends the task: the downloads stop.
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let after_drop = server.count();
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(server.count(), after_drop);
}

// ---- Issue 11: CRLs by the book (RFC 5280 §5, §6.3) ----

#[path = "support/crl_builder.rs"]
mod crl_builder;

use crl_builder::{build_crl, dp_dirname, dp_uri, idp_dirname, idp_uri, null_extension, CrlSpec};
use jpki_face::jlis::{CrlDistributionPoint, RevocationTarget};
use x509_cert::ext::pkix::CrlReason;

const CHIYODA: &str = "http://crl.test/tokyo-chiyoda.crl";
const KITA: &str = "http://crl.test/osaka-kita.crl";

/// A CRL signed by the test CA.
fn crl(spec: CrlSpec) -> Vec<u8> {
    let p = pki_();
    build_crl(
        &p.ca_der,
        &crl_builder::load_key(&p.dir.join("ca.key")),
        &spec,
    )
}

/// Revokes the keyCompromise serial, like the CA's own CRL.
fn revoking_kc(spec: CrlSpec) -> CrlSpec {
    CrlSpec {
        revoked: vec![(pki_().key_compromise.clone(), CrlReason::KeyCompromise)],
        ..spec
    }
}

/// A target whose certificate names `dps` (a cRLDistributionPoints value).
fn target_with(serial: &[u8], dps: Option<Vec<u8>>) -> RevocationTarget {
    RevocationTarget {
        crl_distribution_points: dps,
        ..pki_().target(serial)
    }
}

/// CRL mode with only a distribution-point map: `name` → the server's URL.
fn dp_config(name: &str, url: String) -> JlisConfig {
    let mut cfg = config(Vec::new());
    cfg.crl.distribution_points = vec![CrlDistributionPoint {
        name: name.to_string(),
        url,
    }];
    cfg
}

#[tokio::test]
async fn a_partition_answers_only_for_its_own_distribution_point() {
    let p = pki_();
    let server = serve(crl(revoking_kc(CrlSpec {
        idp: Some(idp_uri(CHIYODA)),
        ..CrlSpec::default()
    })));
    let (c, _) = checker(&dp_config(
        &format!("URI:{CHIYODA}"),
        server.url("/chiyoda.crl"),
    ));
    let chiyoda = |serial: &[u8]| target_with(serial, Some(dp_uri(CHIYODA)));
    assert_eq!(
        c.check(&chiyoda(&p.good)).await.expect("decided").status,
        Status::Good
    );
    assert_eq!(
        c.check(&chiyoda(&p.key_compromise))
            .await
            .expect("decided")
            .failure_code(),
        Some("certificate_revoked")
    );

    // The right issuer and a valid signature, but another partition served at this URL (a swap): a
    // revoked certificate must not pass as good.
    server.set(Behaviour::Respond {
        status: 200,
        body: crl(CrlSpec {
            number: Some(2),
            idp: Some(idp_uri(KITA)),
            ..CrlSpec::default()
        }),
    });
    let (swapped, _) = checker(&dp_config(
        &format!("URI:{CHIYODA}"),
        server.url("/chiyoda.crl"),
    ));
    assert_eq!(
        kind(swapped.check(&chiyoda(&p.key_compromise)).await),
        FailureKind::CrlScopeMismatch
    );
    assert_eq!(
        kind(swapped.check(&chiyoda(&p.good)).await),
        FailureKind::CrlScopeMismatch
    );
}

#[tokio::test]
async fn a_partition_does_not_answer_for_a_certificate_without_a_distribution_point() {
    let p = pki_();
    let server = serve(crl(CrlSpec {
        idp: Some(idp_uri(CHIYODA)),
        ..CrlSpec::default()
    }));
    let (c, _) = checker(&config(vec![server.url("/sign.crl")]));
    assert_eq!(
        kind(c.check(&target_with(&p.good, None)).await),
        FailureKind::CrlScopeMismatch
    );
    // A complete CRL (no issuingDistributionPoint) answers for any certificate of the issuer.
    server.set(Behaviour::Respond {
        status: 200,
        body: crl(CrlSpec::default()),
    });
    let (c, _) = checker(&config(vec![server.url("/sign.crl")]));
    let with_dp = target_with(&p.good, Some(dp_uri(CHIYODA)));
    assert_eq!(
        c.check(&with_dp).await.expect("decided").status,
        Status::Good
    );
}

#[tokio::test]
async fn the_crl_url_comes_from_configuration_not_from_the_certificate() {
    let p = pki_();
    // The URL the certificate names serves a CRL that would answer "good"; it must never be asked.
    let named = serve(crl(CrlSpec::default()));
    let named_url = named.url("/named.crl");
    let mirror = serve(crl(revoking_kc(CrlSpec {
        idp: Some(idp_uri(&named_url)),
        ..CrlSpec::default()
    })));
    let (c, _) = checker(&dp_config(
        &format!("URI:{named_url}"),
        mirror.url("/mirror.crl"),
    ));
    let t = target_with(&p.key_compromise, Some(dp_uri(&named_url)));
    assert_eq!(
        c.check(&t).await.expect("decided").failure_code(),
        Some("certificate_revoked")
    );
    assert!(mirror.count() >= 1);
    assert_eq!(named.count(), 0, "the certificate's own URL was fetched");

    // A distribution point that is not configured, and no complete-CRL URL: nothing can answer.
    let other = target_with(&p.good, Some(dp_uri(KITA)));
    assert_eq!(kind(c.check(&other).await), FailureKind::NoCrlForIssuer);
    assert_eq!(named.count(), 0);
}

#[tokio::test]
async fn directory_name_distribution_points_are_matched_like_jpki_ones() {
    let p = pki_();
    let dn = "CN=Chiyoda-ku,OU=Tokyo-to,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI-TEST,C=JP";
    let server = serve(crl(revoking_kc(CrlSpec {
        idp: Some(idp_dirname(dn)),
        ..CrlSpec::default()
    })));
    let (c, _) = checker(&dp_config(
        &format!("DirName:{dn}"),
        server.url("/chiyoda.crl"),
    ));
    let t = |serial: &[u8]| target_with(serial, Some(dp_dirname(dn)));
    assert_eq!(
        c.check(&t(&p.good)).await.expect("decided").status,
        Status::Good
    );
    assert_eq!(
        c.check(&t(&p.key_compromise))
            .await
            .expect("decided")
            .failure_code(),
        Some("certificate_revoked")
    );
    // Another city of the same prefecture is another partition.
    let kita = "CN=Kita-ku,OU=Tokyo-to,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI-TEST,C=JP";
    let mut cfg = dp_config(&format!("DirName:{dn}"), server.url("/chiyoda.crl"));
    cfg.crl.distribution_points[0].name = format!("DirName:{kita}");
    let (c, _) = checker(&cfg);
    assert_eq!(
        kind(c.check(&target_with(&p.good, Some(dp_dirname(kita)))).await),
        FailureKind::CrlScopeMismatch
    );
}

#[tokio::test]
async fn a_delta_crl_is_never_used_alone() {
    let p = pki_();
    let server = serve(crl(CrlSpec {
        number: Some(7),
        delta_base: Some(6),
        ..CrlSpec::default()
    }));
    let (c, _) = checker(&config(vec![server.url("/delta.crl")]));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::DeltaCrl);
    assert_eq!(
        kind(check(&c, &p.key_compromise).await),
        FailureKind::DeltaCrl
    );
}

#[tokio::test]
async fn unknown_critical_crl_and_entry_extensions_are_refused() {
    let p = pki_();
    let server = serve(crl(CrlSpec {
        extra: vec![null_extension("1.3.6.1.4.1.55555.7", true)],
        ..CrlSpec::default()
    }));
    let (c, _) = checker(&config(vec![server.url("/a.crl")]));
    assert_eq!(
        kind(check(&c, &p.good).await),
        FailureKind::UnknownCriticalExtension
    );

    let server = serve(crl(revoking_kc(CrlSpec {
        entry_extra: vec![null_extension("1.3.6.1.4.1.55555.8", true)],
        ..CrlSpec::default()
    })));
    let (c, _) = checker(&config(vec![server.url("/b.crl")]));
    assert_eq!(
        kind(check(&c, &p.good).await),
        FailureKind::UnknownCriticalExtension
    );
    // certificateIssuer (an indirect CRL's entries) is critical and not processed either.
    let server = serve(crl(revoking_kc(CrlSpec {
        entry_extra: vec![null_extension("2.5.29.29", true)],
        ..CrlSpec::default()
    })));
    let (c, _) = checker(&config(vec![server.url("/c.crl")]));
    assert_eq!(
        kind(check(&c, &p.good).await),
        FailureKind::UnknownCriticalExtension
    );

    // The same unknown extensions, not critical, are ignored.
    let server = serve(crl(revoking_kc(CrlSpec {
        extra: vec![null_extension("1.3.6.1.4.1.55555.7", false)],
        entry_extra: vec![null_extension("1.3.6.1.4.1.55555.8", false)],
        ..CrlSpec::default()
    })));
    let (c, _) = checker(&config(vec![server.url("/d.crl")]));
    assert_eq!(
        check(&c, &p.good).await.expect("decided").status,
        Status::Good
    );
    assert_eq!(
        check(&c, &p.key_compromise)
            .await
            .expect("decided")
            .failure_code(),
        Some("certificate_revoked")
    );
}

#[tokio::test]
async fn other_partial_scopes_are_refused() {
    let p = pki_();
    let mut ca_only = idp_uri(CHIYODA);
    ca_only.distribution_point = None;
    ca_only.only_contains_ca_certs = true;
    let mut indirect = idp_uri(CHIYODA);
    indirect.indirect_crl = true;
    let mut some_reasons = idp_uri(CHIYODA);
    some_reasons.only_some_reasons =
        Some(x509_cert::ext::pkix::crl::dp::Reasons::KeyCompromise.into());
    for idp in [ca_only, indirect, some_reasons] {
        let server = serve(crl(CrlSpec {
            idp: Some(idp),
            ..CrlSpec::default()
        }));
        let (c, _) = checker(&config(vec![server.url("/p.crl")]));
        let t = target_with(&p.good, Some(dp_uri(CHIYODA)));
        assert_eq!(kind(c.check(&t).await), FailureKind::CrlScopeMismatch);
    }
}

#[tokio::test]
async fn an_older_crl_number_is_refused() {
    let p = pki_();
    let now = chrono::Utc::now().timestamp();
    // CRL 5 (current) revokes the keyCompromise serial; CRL 4 (older, still inside its long
    // nextUpdate) does not. Replaying CRL 4 must not make the revoked certificate good again.
    let current = crl(revoking_kc(CrlSpec {
        number: Some(5),
        this_update: now - 600,
        next_update: Some(now + 3_600),
        ..CrlSpec::default()
    }));
    let older = crl(CrlSpec {
        number: Some(4),
        this_update: now - 7_200,
        next_update: Some(now + 5 * 86_400),
        ..CrlSpec::default()
    });
    let server = serve(current);
    let clock = Arc::new(OffsetClock::new());
    let cfg = config(vec![server.url("/sign.crl")]);
    let c = jpki_face::jlis::crl::CrlChecker::start(&cfg, clock.clone()).expect("builds");
    let kc = p.target(&p.key_compromise);
    assert_eq!(
        c.check(&kc).await.expect("decided").failure_code(),
        Some("certificate_revoked")
    );

    // The server now replays CRL 4: a refresh refuses it and keeps CRL 5.
    server.set(Behaviour::Respond {
        status: 200,
        body: older,
    });
    c.refresh_all().await;
    assert!(server.count() >= 2, "CRL 4 was downloaded");
    assert_eq!(
        c.check(&kc).await.expect("decided").failure_code(),
        Some("certificate_revoked")
    );

    // Once CRL 5 is past its nextUpdate only CRL 4 is on offer: the check fails closed.
    clock.advance_secs(2 * 3_600);
    assert_eq!(kind(c.check(&kc).await), FailureKind::CrlNumberRegressed);
    assert_eq!(
        kind(c.check(&p.target(&p.good)).await),
        FailureKind::CrlNumberRegressed
    );
}

#[tokio::test]
async fn the_highest_number_is_kept_per_scope_across_urls() {
    // Two URLs serve CRLs of the same scope; the lower-numbered one is refused once the higher was seen.
    let p = pki_();
    let high = serve(crl(CrlSpec {
        number: Some(9),
        ..CrlSpec::default()
    }));
    let low = serve(crl(CrlSpec {
        number: Some(8),
        ..CrlSpec::default()
    }));
    // The high one first, then a certificate whose only URL serves the low one.
    let mut cfg = config(vec![high.url("/a.crl")]);
    cfg.crl.distribution_points = vec![CrlDistributionPoint {
        name: format!("URI:{CHIYODA}"),
        url: low.url("/b.crl"),
    }];
    let (c, _) = checker(&cfg);
    assert_eq!(
        check(&c, &p.good).await.expect("decided").status,
        Status::Good
    );
    let t = target_with(&p.good, Some(dp_uri(CHIYODA)));
    assert_eq!(kind(c.check(&t).await), FailureKind::CrlNumberRegressed);
}

#[tokio::test]
async fn a_crl_without_a_number_is_refused() {
    let p = pki_();
    let server = serve(crl(CrlSpec {
        number: None,
        ..CrlSpec::default()
    }));
    let (c, _) = checker(&config(vec![server.url("/n.crl")]));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::Malformed);
}

#[tokio::test]
async fn distribution_point_configuration_is_validated_when_the_checker_is_built() {
    let mut cfg = dp_config("http://no-prefix/", "http://127.0.0.1:1/x.crl".into());
    let err =
        build_checker_with_clock(&cfg, Environment::Development, Arc::new(OffsetClock::new()))
            .err()
            .expect("refused");
    assert!(
        err.to_string()
            .contains("jlis.crl.distribution_points.name"),
        "{err}"
    );
    cfg.crl.distribution_points[0].name = "URI:http://ok/".into();
    cfg.crl.distribution_points[0].url = "file:///etc/passwd".into();
    let err =
        build_checker_with_clock(&cfg, Environment::Development, Arc::new(OffsetClock::new()))
            .err()
            .expect("refused");
    assert!(
        err.to_string().contains("jlis.crl.distribution_points.url"),
        "{err}"
    );
}
