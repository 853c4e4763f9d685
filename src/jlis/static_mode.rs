//! Development-only checker: a fixed answer, no network. `build_checker` refuses it in production
//! and logs a loud warning when it is built.

use super::clock::Clock;
use super::{
    JlisError, Method, RevocationReason, RevocationTarget, StaticStatus, Status, ValidityChecker,
    ValidityReport,
};
use std::sync::Arc;

pub struct StaticChecker {
    status: StaticStatus,
    clock: Arc<dyn Clock>,
}

impl StaticChecker {
    pub fn new(status: StaticStatus, clock: Arc<dyn Clock>) -> Self {
        Self { status, clock }
    }
}

#[async_trait::async_trait]
impl ValidityChecker for StaticChecker {
    async fn check(&self, _target: &RevocationTarget) -> Result<ValidityReport, JlisError> {
        let now = self.clock.now();
        let status = match self.status {
            StaticStatus::Good => Status::Good,
            StaticStatus::Revoked => Status::Revoked {
                reason: RevocationReason::KeyCompromise,
                revoked_at: now,
            },
            StaticStatus::AffiliationChanged => Status::Revoked {
                reason: RevocationReason::AffiliationChanged,
                revoked_at: now,
            },
            StaticStatus::Unknown => Status::Unknown,
        };
        let report = ValidityReport {
            status,
            method: Method::Static,
            checked_at: now,
            this_update: now,
            next_update: None,
            responder: Some("static (development only)".into()),
            from_cache: false,
        };
        metrics::counter!("jlis_checks_total", "method" => "static", "outcome" => super::metric_outcome(&Ok(report.clone())))
            .increment(1);
        Ok(report)
    }

    fn method(&self) -> Method {
        Method::Static
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jlis::SystemClock;

    #[tokio::test]
    async fn answers_the_configured_status() {
        let t = RevocationTarget {
            serial: vec![1],
            issuer_cert_der: vec![],
            crl_distribution_points: None,
        };
        for (cfg, code) in [
            (StaticStatus::Good, None),
            (StaticStatus::Revoked, Some("certificate_revoked")),
            (StaticStatus::AffiliationChanged, Some("identity_changed")),
            (StaticStatus::Unknown, Some("certificate_status_unknown")),
        ] {
            let r = StaticChecker::new(cfg, Arc::new(SystemClock))
                .check(&t)
                .await
                .unwrap();
            assert_eq!(r.failure_code(), code);
            assert_eq!(r.method, Method::Static);
        }
    }
}
