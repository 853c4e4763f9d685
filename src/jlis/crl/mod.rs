//! CRLs: downloaded from the configured URLs, kept in memory until their nextUpdate, refreshed in the
//! background, and answering by serial.
//!
//! A CRL is used only after its signature verifies against the CA certificate of the chain being
//! checked (the issuer names must match too). A CRL past its nextUpdate is never read as "good":
//! the check fails with `stale` until a fresh one is downloaded.
//!
//! Scope (RFC 5280 §5.2.5, §6.3.3): which URL is asked is chosen from `jlis.crl.distribution_points`
//! by the certificate's CRL distribution point (never the URL the certificate names); a CRL with an
//! issuingDistributionPoint answers only for a certificate whose distribution point it names; delta
//! CRLs, indirect CRLs, reason-partitioned CRLs and unknown critical CRL or entry extensions are
//! refused; and a CRL whose number is lower than one already seen for the same scope is refused.
//!
//! - [`document`]: one CRL parsed, its signature verified, its scope checked (pure);
//! - [`checker`]: the [`CrlChecker`]: downloads, the circuit breaker, the refresh task, CRL-number
//!   high-water marks, the answer.

mod checker;
mod document;

pub use checker::CrlChecker;
