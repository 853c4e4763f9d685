//! What a validity check (J-LIS: OCSP or CRL) of a signing certificate needs: the one shape the card
//! checks produce, the validity adapter consumes and an enrollment keeps sealed.

use std::fmt;

/// The end-entity serial, the CA certificate that issued it (from the verified chain) and the
/// certificate's CRL distribution points.
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationTarget {
    /// Serial of the signing certificate: the DER content bytes, big-endian (leading zeros allowed).
    pub serial: Vec<u8>,
    /// DER of the configured root that signed the certificate (the OCSP CertID issuer).
    pub issuer_cert_der: Vec<u8>,
    /// The certificate's cRLDistributionPoints extension value (DER), if it has one. CRL mode picks
    /// the configured URL by it and matches the CRL's issuingDistributionPoint to it; `None`: only a
    /// complete CRL can answer. JPKI puts the holder's prefecture and city here: personal data.
    pub crl_distribution_points: Option<Vec<u8>>,
}

impl fmt::Debug for RevocationTarget {
    // The serial identifies one person's certificate and the distribution point names their city.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RevocationTarget([redacted])")
    }
}
