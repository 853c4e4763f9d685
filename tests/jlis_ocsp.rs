//! OCSP checker against a real `openssl ocsp` responder and a few hostile test servers.
//! Needs Debian's `openssl` on PATH.

#[path = "support/jlis_pki.rs"]
mod jlis_pki;

use jlis_pki::{
    capture_response, free_port, pki, start_responder, Behaviour, Pki, ResponderOpts, TestServer,
};
use jpki_face::config::Environment;
use jpki_face::jlis::{
    build_checker_with_clock, FailureKind, JlisConfig, JlisError, Method, Mode, OffsetClock,
    RevocationReason, Status, ValidityChecker, ValidityReport,
};
use std::sync::Arc;

fn pki_() -> &'static Pki {
    pki("ocsp")
}

/// A config pointing at `url`, with small timeouts so failure cases finish fast.
fn config(url: &str) -> JlisConfig {
    let mut cfg = JlisConfig {
        mode: Mode::Ocsp,
        ..JlisConfig::default()
    };
    cfg.ocsp.url = url.to_string();
    cfg.ocsp.connect_timeout_ms = 1_000;
    cfg.ocsp.timeout_ms = 1_500;
    cfg.ocsp.retries = 0;
    cfg.ocsp.backoff_ms = 10;
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
            assert!(e.retry_after_secs() >= 1);
            e.kind()
        }
    }
}

#[tokio::test]
async fn good_certificate_is_good_and_then_cached() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let (c, _) = checker(&config(&responder.url()));
    assert_eq!(c.method(), Method::Ocsp);
    let r = check(&c, &p.good).await.expect("decided");
    assert_eq!(r.status, Status::Good);
    assert_eq!(r.failure_code(), None);
    assert_eq!(r.method, Method::Ocsp);
    assert!(!r.from_cache);
    assert_eq!(
        r.next_update, None,
        "openssl without -nmin sends no nextUpdate"
    );
    let who = r.responder.clone().unwrap_or_default();
    assert!(
        who.contains("Test OCSP") && who.contains("(delegated)"),
        "{who}"
    );

    // The responder is gone: only the cache can answer now.
    drop(responder);
    let again = check(&c, &p.good).await.expect("cached");
    assert!(again.from_cache);
    assert_eq!(again.status, Status::Good);
    assert_eq!(again.checked_at, r.checked_at);
}

#[tokio::test]
async fn revoked_key_compromise() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let (c, _) = checker(&config(&responder.url()));
    let r = check(&c, &p.key_compromise).await.expect("decided");
    match r.status {
        Status::Revoked { reason, revoked_at } => {
            assert_eq!(reason, RevocationReason::KeyCompromise);
            assert!(revoked_at <= chrono::Utc::now());
        }
        other => panic!("expected revoked, got {other:?}"),
    }
    assert_eq!(r.failure_code(), Some("certificate_revoked"));
}

#[tokio::test]
async fn revoked_affiliation_changed_means_identity_changed() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let (c, _) = checker(&config(&responder.url()));
    let r = check(&c, &p.affiliation_changed).await.expect("decided");
    assert!(matches!(
        r.status,
        Status::Revoked {
            reason: RevocationReason::AffiliationChanged,
            ..
        }
    ));
    assert_eq!(r.failure_code(), Some("identity_changed"));
    // Revoked answers are not cached: the status could be reported again by a fresh check only.
    drop(responder);
    assert_eq!(
        kind(check(&c, &p.affiliation_changed).await),
        FailureKind::Connect
    );
}

#[tokio::test]
async fn unknown_serial_is_unknown() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let (c, _) = checker(&config(&responder.url()));
    let r = check(&c, &[0x7E, 0x57, 0x00, 0x01]).await.expect("decided");
    assert_eq!(r.status, Status::Unknown);
    assert_eq!(r.failure_code(), Some("certificate_status_unknown"));
}

#[tokio::test]
async fn responder_not_running_is_connect_failure() {
    let port = free_port();
    let (c, _) = checker(&config(&format!("http://127.0.0.1:{port}/")));
    assert_eq!(kind(check(&c, &pki_().good).await), FailureKind::Connect);
}

#[tokio::test]
async fn silent_responder_times_out() {
    let server = TestServer::start(Behaviour::Silent);
    let mut cfg = config(&server.url("/"));
    cfg.ocsp.timeout_ms = 300;
    let (c, _) = checker(&cfg);
    assert_eq!(kind(check(&c, &pki_().good).await), FailureKind::Timeout);
}

#[tokio::test]
async fn garbage_is_malformed_and_not_retried() {
    let server = TestServer::start(Behaviour::Respond {
        status: 200,
        body: b"<html>hello</html>".to_vec(),
    });
    let mut cfg = config(&server.url("/"));
    cfg.ocsp.retries = 2;
    let (c, _) = checker(&cfg);
    assert_eq!(kind(check(&c, &pki_().good).await), FailureKind::Malformed);
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn http_errors_are_retried_then_reported() {
    let server = TestServer::start(Behaviour::Respond {
        status: 500,
        body: b"oops".to_vec(),
    });
    let mut cfg = config(&server.url("/"));
    cfg.ocsp.retries = 2;
    let (c, _) = checker(&cfg);
    assert_eq!(kind(check(&c, &pki_().good).await), FailureKind::HttpStatus);
    assert_eq!(server.count(), 3, "one attempt and two retries");
}

#[tokio::test]
async fn response_signed_by_a_foreign_responder_is_refused() {
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            signer: "foreign.pem",
            key: "foreign.key",
            ..Default::default()
        },
    );
    let (c, _) = checker(&config(&responder.url()));
    assert_eq!(
        kind(check(&c, &p.good).await),
        FailureKind::UntrustedResponder
    );

    // The same responder is accepted once it is configured as trusted.
    let mut cfg = config(&responder.url());
    cfg.ocsp.responder_cert = Some(p.dir.join("foreign.pem"));
    let (pinned, _) = checker(&cfg);
    let r = check(&pinned, &p.good).await.expect("decided");
    assert_eq!(r.status, Status::Good);
    assert!(r.responder.unwrap_or_default().contains("(configured)"));
}

#[tokio::test]
async fn response_signed_by_an_imposter_with_the_ca_name_is_bad_signature() {
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            signer: "imposter.pem",
            key: "imposter.key",
            ..Default::default()
        },
    );
    let (c, _) = checker(&config(&responder.url()));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::BadSignature);
}

#[tokio::test]
async fn a_ca_issued_certificate_without_ocsp_signing_cannot_sign() {
    let p = pki_();
    // The end-entity certificate is issued by the CA but is not an OCSP delegate.
    let responder = start_responder(
        p,
        ResponderOpts {
            signer: "good.pem",
            key: "good.key",
            ..Default::default()
        },
    );
    let (c, _) = checker(&config(&responder.url()));
    assert_eq!(
        kind(check(&c, &p.good).await),
        FailureKind::UntrustedResponder
    );
}

#[tokio::test]
async fn the_ca_may_sign_its_own_responses() {
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            signer: "ca.pem",
            key: "ca.key",
            ..Default::default()
        },
    );
    let (c, _) = checker(&config(&responder.url()));
    let r = check(&c, &p.key_compromise).await.expect("decided");
    assert_eq!(r.failure_code(), Some("certificate_revoked"));
    assert!(r.responder.unwrap_or_default().contains("(ca)"));
}

#[tokio::test]
async fn replayed_response_is_nonce_mismatch() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    // A genuine, correctly signed answer about the same certificate, but for openssl's nonce.
    let captured = capture_response(p, &responder.url(), "good.pem", true, "replay-nonce.der");
    let server = TestServer::start(Behaviour::Respond {
        status: 200,
        body: captured,
    });
    let (c, _) = checker(&config(&server.url("/")));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::NonceMismatch);
}

#[tokio::test]
async fn missing_nonce_is_refused_unless_allowed() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let captured = capture_response(p, &responder.url(), "good.pem", false, "replay-nononce.der");
    let server = TestServer::start(Behaviour::Respond {
        status: 200,
        body: captured,
    });
    let (strict, _) = checker(&config(&server.url("/")));
    assert_eq!(
        kind(check(&strict, &p.good).await),
        FailureKind::NonceMissing
    );

    let mut cfg = config(&server.url("/"));
    cfg.ocsp.accept_missing_nonce = true;
    let (lenient, _) = checker(&cfg);
    assert_eq!(
        check(&lenient, &p.good).await.expect("decided").status,
        Status::Good
    );
}

#[tokio::test]
async fn answer_about_another_certificate_is_cert_id_mismatch() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let captured = capture_response(p, &responder.url(), "kc.pem", false, "replay-other.der");
    let server = TestServer::start(Behaviour::Respond {
        status: 200,
        body: captured,
    });
    let mut cfg = config(&server.url("/"));
    cfg.ocsp.accept_missing_nonce = true;
    let (c, _) = checker(&cfg);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::CertIdMismatch);
}

#[tokio::test]
async fn stale_next_update_is_refused() {
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            nmin: Some(1),
            ..Default::default()
        },
    );
    let mut cfg = config(&responder.url());
    cfg.ocsp.max_skew_secs = 60;
    let (c, clock) = checker(&cfg);
    // Now: fresh, with a nextUpdate one minute ahead.
    let r = check(&c, &p.good).await.expect("decided");
    assert_eq!(r.status, Status::Good);
    let nu = r.next_update.expect("-nmin 1 sets nextUpdate");
    assert!(nu > r.this_update && nu - r.this_update <= chrono::Duration::seconds(61));
    // Ten minutes later the cache has expired (at nextUpdate) and the answer is past nextUpdate + skew.
    clock.advance_secs(600);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::Stale);
}

#[tokio::test]
async fn response_from_the_future_is_not_yet_valid() {
    let p = pki_();
    // Signed by the CA itself: a delegate's own validity would be checked first (and it was issued just now).
    let responder = start_responder(
        p,
        ResponderOpts {
            signer: "ca.pem",
            key: "ca.key",
            ..Default::default()
        },
    );
    let mut cfg = config(&responder.url());
    cfg.ocsp.max_skew_secs = 60;
    let (c, clock) = checker(&cfg);
    clock.advance_secs(-600);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::NotYetValid);
}

#[tokio::test]
async fn cache_expires_after_its_ttl() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let mut cfg = config(&responder.url());
    cfg.ocsp.cache_ttl_secs = 120;
    let (c, clock) = checker(&cfg);
    assert!(!check(&c, &p.good).await.expect("decided").from_cache);
    clock.advance_secs(60);
    assert!(check(&c, &p.good).await.expect("cached").from_cache);
    clock.advance_secs(120);
    let fresh = check(&c, &p.good).await.expect("decided");
    assert!(
        !fresh.from_cache,
        "past the TTL the responder is asked again"
    );
    // The same certificate under another serial is a different cache entry.
    assert_eq!(
        check(&c, &p.key_compromise)
            .await
            .expect("decided")
            .failure_code(),
        Some("certificate_revoked")
    );
}

#[tokio::test]
async fn breaker_opens_after_n_failures_and_closes_after_a_good_trial() {
    let p = pki_();
    let port = free_port();
    let mut cfg = config(&format!("http://127.0.0.1:{port}/"));
    cfg.breaker.failure_threshold = 2;
    cfg.breaker.open_secs = 30;
    let (c, clock) = checker(&cfg);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::Connect);
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::Connect);
    // Open: fails fast, with Retry-After = the remaining open time.
    let err = check(&c, &p.good).await.expect_err("breaker open");
    assert_eq!(err.kind(), FailureKind::BreakerOpen);
    assert!((1..=30).contains(&err.retry_after_secs()), "{err:?}");

    // The responder comes back, but the breaker still fails fast until the open time passes.
    let _responder = start_responder(
        p,
        ResponderOpts {
            port: Some(port),
            ..Default::default()
        },
    );
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::BreakerOpen);
    clock.advance_secs(31);
    assert_eq!(
        check(&c, &p.good).await.expect("trial").status,
        Status::Good
    );
    // Closed again: other certificates are checked normally.
    assert_eq!(
        check(&c, &p.affiliation_changed)
            .await
            .expect("decided")
            .failure_code(),
        Some("identity_changed")
    );
}

#[tokio::test]
async fn unusable_issuer_certificate_is_invalid_target() {
    let (c, _) = checker(&config("http://127.0.0.1:9/"));
    let t = jpki_face::jlis::RevocationTarget {
        serial: vec![1],
        issuer_cert_der: b"not a certificate".to_vec(),

        crl_distribution_points: None,
    };
    assert_eq!(kind(c.check(&t).await), FailureKind::InvalidTarget);
}

#[tokio::test]
async fn corrupted_signature_from_the_real_responder_is_bad_signature() {
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            extra: &["-badsig"],
            ..Default::default()
        },
    );
    let (c, _) = checker(&config(&responder.url()));
    assert_eq!(kind(check(&c, &p.good).await), FailureKind::BadSignature);
}

#[tokio::test]
async fn responder_identified_by_key_hash_is_understood() {
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            extra: &["-resp_key_id"],
            ..Default::default()
        },
    );
    let (c, _) = checker(&config(&responder.url()));
    let r = check(&c, &p.affiliation_changed).await.expect("decided");
    assert_eq!(r.failure_code(), Some("identity_changed"));
    assert!(r.responder.unwrap_or_default().contains("Test OCSP"));
}

#[tokio::test]
async fn requests_go_through_the_configured_proxy() {
    let p = pki_();
    let responder = start_responder(p, ResponderOpts::default());
    let captured = capture_response(p, &responder.url(), "good.pem", false, "via-proxy.der");
    // The "proxy" answers every forwarded request itself; the responder URL is unreachable directly.
    let proxy = TestServer::start(Behaviour::Respond {
        status: 200,
        body: captured,
    });
    let mut cfg = config(&format!("http://127.0.0.1:{}/", free_port()));
    cfg.ocsp.accept_missing_nonce = true;
    cfg.http_proxy = Some(jpki_face::redact::Secret::new(format!(
        "http://user:hunter2@127.0.0.1:{}",
        proxy.port
    )));
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let (c, _) = checker(&cfg);
    assert_eq!(
        check(&c, &p.good).await.expect("decided").status,
        Status::Good
    );
    assert_eq!(proxy.count(), 1);
}

// ---- Issue 11: OCSP freshness without a nonce ----

#[tokio::test]
async fn a_replayed_answer_without_nonce_is_refused_past_max_age() {
    let p = pki_();
    // A genuine "good" answer, valid for an hour by its nextUpdate, captured without a nonce: what an
    // attacker replays when the checker accepts missing nonces.
    let responder = start_responder(
        p,
        ResponderOpts {
            nmin: Some(60),
            ..Default::default()
        },
    );
    let captured = capture_response(p, &responder.url(), "good.pem", false, "replay-capped.der");
    let server = TestServer::start(Behaviour::Respond {
        status: 200,
        body: captured,
    });
    for cache_ttl_secs in [0, 3_600] {
        let mut cfg = config(&server.url("/"));
        cfg.ocsp.accept_missing_nonce = true;
        cfg.ocsp.max_age_secs = 300;
        cfg.ocsp.max_skew_secs = 60;
        cfg.ocsp.cache_ttl_secs = cache_ttl_secs;
        let (c, clock) = checker(&cfg);
        let r = check(&c, &p.good).await.expect("decided");
        assert_eq!(r.status, Status::Good);
        let nu = r.next_update.expect("-nmin 60 sets nextUpdate");
        assert!(nu - r.this_update >= chrono::Duration::minutes(59));
        // Within max_age (+ skew) it is still used…
        clock.advance_secs(300);
        assert_eq!(
            check(&c, &p.good).await.expect("decided").status,
            Status::Good
        );
        // …past it, it is refused although its nextUpdate is 50 minutes away, and a cached copy
        // (cache_ttl 3600) is not served either.
        clock.advance_secs(120);
        assert_eq!(
            kind(check(&c, &p.good).await),
            FailureKind::Stale,
            "cache_ttl_secs = {cache_ttl_secs}"
        );
    }
}

#[tokio::test]
async fn an_answer_with_our_nonce_is_not_capped_by_max_age() {
    // The nonce proves the answer was made for this request: its nextUpdate alone bounds it.
    let p = pki_();
    let responder = start_responder(
        p,
        ResponderOpts {
            nmin: Some(60),
            ..Default::default()
        },
    );
    let mut cfg = config(&responder.url());
    cfg.ocsp.max_age_secs = 300;
    cfg.ocsp.max_skew_secs = 60;
    cfg.ocsp.cache_ttl_secs = 0;
    let (c, clock) = checker(&cfg);
    // Our clock runs ten minutes ahead of the responder's: thisUpdate looks 600 s old.
    clock.advance_secs(600);
    assert_eq!(
        check(&c, &p.good).await.expect("decided").status,
        Status::Good
    );
}
