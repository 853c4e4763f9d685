//! Runs the real `jpki-face dev card` binary: init → issue → sign, verifies the output with `verify_card`,
//! then revokes and checks index.txt, the CRL and a real `openssl ocsp` responder reading the index.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use jpki_face::card::{
    parse_card_json, verify_card, CardDataResult, CardPolicy, CertificateResult, PresenceResult,
    SessionBinding, TrustStore,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn jpki_face(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_jpki-face"))
        .args(["dev", "card"])
        .args(args)
        .env_remove("JPKI_FACE__CARD__TRUST_DIR")
        .output()
        .expect("run jpki-face");
    assert!(
        out.status.success(),
        "jpki-face dev card {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A JPEG from the calibration set if it is there, else a generated PNG.
fn photo(dir: &Path) -> PathBuf {
    let calibration =
        Path::new("/work/shared/data/faces/calibration/Aaron_Peirsol/Aaron_Peirsol_0001.jpg");
    if calibration.is_file() {
        return calibration.to_path_buf();
    }
    let path = dir.join("face.png");
    jpki_face::devcard::synthetic_face(3).save(&path).unwrap();
    path
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `openssl ocsp` on the hierarchy for one request and asks it about `cert`; returns the client's output.
fn ocsp_status(h: &Path, cert: &Path) -> String {
    let port = free_port().to_string();
    let p = |f: &str| h.join(f).to_string_lossy().into_owned();
    let mut server = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            &p("index.txt"),
            "-port",
            &port,
            "-rsigner",
            &p("ocsp.pem"),
        ])
        .args([
            "-rkey",
            &p("ocsp.key"),
            "-CA",
            &p("ca.pem"),
            "-nrequest",
            "1",
            "-ignore_err",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is needed for this test (Debian package `openssl`)");
    let url = format!("http://127.0.0.1:{port}");
    // The responder needs a moment to bind; retry the client a few times.
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new("openssl")
            .args([
                "ocsp",
                "-issuer",
                &p("ca.pem"),
                "-cert",
                &cert.to_string_lossy(),
                "-url",
                &url,
            ])
            .args(["-CAfile", &p("ca.pem")])
            .output()
            .unwrap();
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    last
}

#[test]
fn init_issue_sign_verify_revoke_through_the_cli() {
    let work = fresh_dir("card-cli");
    let h = work.join("hierarchy");
    let hs = h.to_string_lossy().into_owned();
    let init = stdout(&jpki_face(&["init", &hs, "--seed", "11"]));
    assert!(init.contains("trust_dir"), "{init}");
    for f in [
        "ca.pem",
        "ocsp.pem",
        "ocsp.key",
        "index.txt",
        "crl.der",
        "trust/jpki-roots/jpki-test-ca.pem",
    ] {
        assert!(h.join(f).is_file(), "{f} missing");
    }

    let photo = photo(&work);
    let issued = jpki_face(&[
        "issue",
        &hs,
        "--photo",
        &photo.to_string_lossy(),
        "--name",
        "黒桐 幹也",
        "--birth-date",
        "1980-02-17",
        "--sex",
        "male",
        "--address",
        "東京都清瀬市観布子南１２－７－２０２",
        "--with-hojo",
    ]);
    let person = stdout(&issued).trim().to_string();
    assert_eq!(person, "person-0001");
    assert!(h.join(&person).is_dir());

    let nonce = [0xA7u8; 32];
    let nonce_b64 = URL_SAFE_NO_PAD.encode(nonce);
    let card = stdout(&jpki_face(&[
        "sign",
        &hs,
        &person,
        "--session-id",
        "ses_cli",
        "--nonce",
        &nonce_b64,
    ]));

    let trust = TrustStore::load(&h.join("trust")).unwrap();
    let sub = parse_card_json(card.as_bytes()).unwrap();
    let binding = SessionBinding {
        session_id: "ses_cli",
        nonce: &nonce,
    };
    let report = verify_card(&sub, &trust, &CardPolicy::default(), &binding, Utc::now()).unwrap();
    assert!(
        report.failures().is_empty(),
        "{:?}",
        report
            .failures()
            .iter()
            .map(|r| r.code())
            .collect::<Vec<_>>()
    );
    assert_eq!(report.identity.name, "黒桐\u{3000}幹也");
    assert_eq!(report.identity.birth_date.to_string(), "1980-02-17");
    assert!(report.hojo.is_some());

    // A mutant straight from the CLI.
    let flipped = stdout(&jpki_face(&[
        "sign",
        &hs,
        &person,
        "--session-id",
        "ses_cli",
        "--nonce",
        &nonce_b64,
        "--mutant",
        "flip-photo-bit",
    ]));
    let sub = parse_card_json(flipped.as_bytes()).unwrap();
    let r = verify_card(&sub, &trust, &CardPolicy::default(), &binding, Utc::now()).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::InvalidSignature);
    assert_eq!(r.card_present.result, PresenceResult::Valid);
    assert_eq!(r.certificate.result, CertificateResult::Valid);

    // Revocation: OpenSSL's index.txt format, with the reason, and a CRL listing the serial.
    let cert = h.join(&person).join("cert.pem");
    let good = ocsp_status(&h, &cert);
    assert!(good.contains(": good"), "{good}");
    assert!(good.contains("Response verify OK"), "{good}");
    let crl_before = std::fs::read(h.join("crl.der")).unwrap();
    jpki_face(&["revoke", &hs, &person, "--reason", "affiliationChanged"]);
    let index = std::fs::read_to_string(h.join("index.txt")).unwrap();
    let cols: Vec<&str> = index.lines().next().unwrap().split('\t').collect();
    assert_eq!(cols[0], "R");
    assert!(cols[2].ends_with("Z,affiliationChanged"), "{index}");
    assert_eq!(cols[3], report.certificate.serial);
    let crl = std::fs::read(h.join("crl.der")).unwrap();
    assert_ne!(crl, crl_before);
    let (_, parsed) = x509_parser::parse_x509_crl(&crl).unwrap();
    let revoked: Vec<String> = parsed
        .iter_revoked_certificates()
        .map(|r| hex::encode_upper(r.raw_serial()))
        .collect();
    assert_eq!(revoked, vec![report.certificate.serial.clone()]);
    let revoked = ocsp_status(&h, &cert);
    assert!(revoked.contains(": revoked"), "{revoked}");
    assert!(revoked.contains("affiliationChanged"), "{revoked}");

    // Revoking twice is refused; the CLI explains a missing photo.
    let again = Command::new(env!("CARGO_BIN_EXE_jpki-face"))
        .args([
            "dev",
            "card",
            "revoke",
            &hs,
            &person,
            "--reason",
            "keyCompromise",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let missing = Command::new(env!("CARGO_BIN_EXE_jpki-face"))
        .args(["dev", "card", "issue", &hs, "--photo", "/nonexistent.jpg"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file"));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn photo_raw_signs_the_bytes_as_they_are() {
    let work = fresh_dir("card-cli-raw");
    let h = work.join("hierarchy");
    let hs = h.to_string_lossy().into_owned();
    jpki_face(&["init", &hs, "--seed", "12"]);
    // Not even an image: the generator neither decodes nor re-encodes it.
    let raw: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let raw_path = work.join("raw.bin");
    std::fs::write(&raw_path, &raw).unwrap();
    let person = stdout(&jpki_face(&[
        "issue",
        &hs,
        "--photo-raw",
        &raw_path.to_string_lossy(),
    ]))
    .trim()
    .to_string();
    let nonce = [0x3Cu8; 32];
    let card = stdout(&jpki_face(&[
        "sign",
        &hs,
        &person,
        "--session-id",
        "ses_raw",
        "--nonce",
        &URL_SAFE_NO_PAD.encode(nonce),
    ]));
    let trust = TrustStore::load(&h.join("trust")).unwrap();
    let sub = parse_card_json(card.as_bytes()).unwrap();
    let binding = SessionBinding {
        session_id: "ses_raw",
        nonce: &nonce,
    };
    let report = verify_card(
        &sub,
        &trust,
        &jpki_face::card::CardPolicy::default(),
        &binding,
        Utc::now(),
    )
    .unwrap();
    assert_eq!(report.card_data.result, CardDataResult::Valid);
    assert_eq!(report.chip_photo, raw);
    // --photo and --photo-raw exclude each other; one of them is required.
    let both = Command::new(env!("CARGO_BIN_EXE_jpki-face"))
        .args([
            "dev",
            "card",
            "issue",
            &hs,
            "--photo",
            "a.jpg",
            "--photo-raw",
        ])
        .arg(&raw_path)
        .output()
        .unwrap();
    assert!(!both.status.success());
    let neither = Command::new(env!("CARGO_BIN_EXE_jpki-face"))
        .args(["dev", "card", "issue", &hs])
        .output()
        .unwrap();
    assert!(!neither.status.success());
    let _ = std::fs::remove_dir_all(&work);
}
