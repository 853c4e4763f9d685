//! Certificate variants the test-card generator does not make (issue 11 item 4): a person's signing
//! certificate or the test CA re-signed with the CA's own key after an edit of the signed part, and a
//! trust directory holding such a root. Uses the hierarchy's key file, so the chain still verifies.
#![allow(dead_code)] // each test binary uses a different subset

use der::{Decode, DecodePem, Encode, EncodePem};
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::Certificate;

/// The test CA's private key of a hierarchy made by `TestHierarchy::init*`.
pub fn ca_key(hierarchy_dir: &Path) -> RsaPrivateKey {
    let pem = std::fs::read_to_string(hierarchy_dir.join("keys/jpki-test-ca.pem"))
        .expect("the hierarchy keeps its CA key in keys/jpki-test-ca.pem");
    RsaPrivateKey::from_pkcs8_pem(&pem).expect("PKCS#8 key")
}

/// Applies `edit` to the signed part of `cert_der` and signs it again with `key` (sha256WithRSA).
pub fn resign(
    cert_der: &[u8],
    key: &RsaPrivateKey,
    edit: impl FnOnce(&mut TbsCertificate),
) -> Vec<u8> {
    let mut cert = Certificate::from_der(cert_der).expect("a certificate");
    edit(&mut cert.tbs_certificate);
    let tbs = cert.tbs_certificate.to_der().expect("encode TBS");
    let sig = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs))
        .expect("sign");
    cert.signature = der::asn1::BitString::from_bytes(&sig).expect("bit string");
    cert.to_der().expect("encode certificate")
}

/// The certificate's extensions, for editing.
pub fn extensions(tbs: &mut TbsCertificate) -> &mut Vec<Extension> {
    tbs.extensions.get_or_insert_with(Vec::new)
}

/// An extension with this OID, a NULL value and the given criticality.
pub fn null_extension(oid: &str, critical: bool) -> Extension {
    Extension {
        extn_id: oid.parse().expect("OID"),
        critical,
        extn_value: der::asn1::OctetString::new(vec![0x05, 0x00]).expect("octets"),
    }
}

/// Replaces `oid`'s extension (if any) by `replacement`; `None` just removes it.
pub fn replace_extension(tbs: &mut TbsCertificate, oid: &str, replacement: Option<Extension>) {
    let oid: der::asn1::ObjectIdentifier = oid.parse().expect("OID");
    let exts = extensions(tbs);
    exts.retain(|e| e.extn_id != oid);
    exts.extend(replacement);
}

/// A copy of `trust_dir` whose JPKI root is `root_der` instead (in `CARGO_TARGET_TMPDIR`).
pub fn trust_dir_with_root(trust_dir: &Path, root_der: &[u8], label: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trust-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cvc-issuers")).expect("mkdir");
    std::fs::create_dir_all(dir.join("jpki-roots")).expect("mkdir");
    for entry in std::fs::read_dir(trust_dir.join("cvc-issuers")).expect("cvc-issuers") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_owned();
        std::fs::copy(&path, dir.join("cvc-issuers").join(name)).expect("copy");
    }
    let cert = Certificate::from_der(root_der).expect("root");
    let pem = cert.to_pem(der::pem::LineEnding::LF).expect("PEM encoding");
    std::fs::write(dir.join("jpki-roots/root.pem"), pem).expect("write root");
    dir
}

/// DER of the first certificate in a PEM file.
pub fn pem_file_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("PEM file");
    Certificate::from_pem(&pem)
        .and_then(|c| c.to_der())
        .expect("a PEM certificate")
}
