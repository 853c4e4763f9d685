//! OCSP (RFC 6960): POSTs a request with a SHA-1 CertID and a nonce, then trusts the answer only if it
//! is signed by the CA, by a CA-issued delegate with id-kp-OCSPSigning, or by the configured responder
//! certificate; is about our certificate; echoes our nonce; and is fresh.
//!
//! SHA-1 CertIDs are what `openssl ocsp` and most responders index by; SHA-1 here is a lookup key, not a
//! signature, so its weakness does not matter. Good answers are cached per (issuer, serial).
//!
//! - [`request`]: the CertID and the request DER (pure);
//! - [`document`]: verifying a response against what was asked (pure: no I/O, the clock passed in);
//! - [`checker`]: the [`OcspChecker`]: fetching, the circuit breaker, the cache.

mod checker;
mod document;
mod request;

pub use checker::OcspChecker;
