//! Enrollment (入口対策), in four rooms: [`flow`] (the request from the card to the one
//! transaction), [`decide`] (the pure decision), [`view`] (the API's document) and [`record`] (what
//! is stored and sealed, and how it is opened again); [`lookup`] reads and deletes.

pub mod decide;
pub mod flow;
pub mod lookup;
pub mod record;
pub mod view;

pub use decide::{decide, reason_of, Decision, FaceEvidence, MatchPolicy};
pub use flow::enroll;
pub use lookup::{delete, delete_by, get, list, MAX_LIST_LIMIT};
pub use record::{data_key, open_certificate, render, SealedCertificate, StoredDecision};
pub use view::{
    CertificateView, EnrollmentChecks, EnrollmentDocument, EnrollmentList, FaceMatchCheck,
    FaceMatchResult, RevocationCheck, RevocationResult,
};
