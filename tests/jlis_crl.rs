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
    assert_eq!(server.count(), 1, "the CRL is downloaded once while fresh");
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
