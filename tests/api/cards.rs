//! Test cards and a real OCSP responder, shared by the enrollment tests of one test process:
//! a test hierarchy made by the test-card generator, and `openssl ocsp` serving its index.txt.

use crate::helpers::*;
use jpki_face::card::SessionBinding;
use jpki_face::devcard::{CrlReason, PersonId, PersonSpec, PhotoSource, TestHierarchy};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The labelled face photos (read by path; never copied into the project).
pub fn photo(rel: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/faces/calibration")
        .join(rel);
    assert!(
        path.exists(),
        "test photo {} missing (the shared data set must sit beside the repository)",
        path.display()
    );
    path
}

/// Person A: the chip photo, an enrollment selfie and a transaction selfie of the same man.
pub const A_CHIP: &str = "Pierce_Brosnan/Pierce_Brosnan_0002.jpg";
pub const A_SELFIE: &str = "Pierce_Brosnan/Pierce_Brosnan_0005.jpg";
pub const A_LATER: &str = "Pierce_Brosnan/Pierce_Brosnan_0006.jpg";
/// Person B: someone else.
pub const B_CHIP: &str = "Hugo_Chavez/Hugo_Chavez_0002.jpg";
pub const B_SELFIE: &str = "Hugo_Chavez/Hugo_Chavez_0006.jpg";

pub struct Responder {
    pub port: u16,
    _child: Child,
}

pub struct Cards {
    pub hierarchy: TestHierarchy,
    _dir: tempfile::TempDir,
    responder: Responder,
    /// Person A's card (good certificate).
    pub a: PersonId,
    /// Person B's card (good certificate).
    pub b: PersonId,
    /// Person A's face on cards revoked for keyCompromise and for affiliationChanged.
    pub a_key_compromise: PersonId,
    pub a_affiliation_changed: PersonId,
    /// Good cards of person A that a test may revoke later (one per backend).
    spare: std::sync::Mutex<Vec<PersonId>>,
    /// Person A's face on a card of another identity (another name and birth date): a borrowed or
    /// bought card, for the 1:N duplicate check (issue 21).
    pub a_other_identity: PersonId,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `openssl ocsp` on a free loopback port for the hierarchy in `dir`. It is wrapped in
/// `timeout` and detached from our stdio so that it can never outlive a test run for long.
/// Readiness is read from its log: a probe connection that sends nothing would wedge it (it
/// serves one connection at a time and waits for that one's request).
// The child is owned by the returned Responder, whose Drop kills and reaps it; clippy cannot see
// that through the early panic below.
#[allow(clippy::zombie_processes)]
pub fn start_responder(dir: &std::path::Path) -> Responder {
    let port = free_port();
    let log_path = dir.join(format!("ocsp-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("timeout")
        .arg("900")
        .arg("openssl")
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-port",
            &port.to_string(),
            "-rsigner",
            "ocsp.pem",
            "-rkey",
            "ocsp.key",
            "-CA",
            "ca.pem",
            "-nmin",
            "5",
            "-ignore_err",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("openssl must be installed for the tests (make test installs it)");
    for _ in 0..200 {
        if std::fs::read_to_string(&log_path)
            .is_ok_and(|l| l.contains("waiting for OCSP client connections"))
        {
            return Responder {
                port,
                _child: child,
            };
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("openssl ocsp did not start on port {port}");
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}

pub fn cards() -> &'static Cards {
    static CARDS: OnceLock<Cards> = OnceLock::new();
    CARDS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("devcard-keys");
        let hierarchy = TestHierarchy::init_with_key_cache(dir.path(), 42, Some(&cache))
            .expect("test hierarchy");
        // Every card is issued (and revoked) before the responder reads index.txt: openssl ocsp
        // notices a changed index only by its modification second.
        let issue = |chip: &str| {
            hierarchy
                .issue(&PersonSpec {
                    photo: PhotoSource::File(photo(chip)),
                    // The default tenant policy requires the 入力補助AP (the one-card binding).
                    with_hojo: true,
                    ..PersonSpec::default()
                })
                .expect("issue a test card")
        };
        let (a, b) = (issue(A_CHIP), issue(B_CHIP));
        let (a_key_compromise, a_affiliation_changed) = (issue(A_CHIP), issue(A_CHIP));
        hierarchy
            .revoke(&a_key_compromise, CrlReason::KeyCompromise)
            .expect("revoke");
        hierarchy
            .revoke(&a_affiliation_changed, CrlReason::AffiliationChanged)
            .expect("revoke");
        // Two for the on-demand status-check tests, two for the scheduled-check tests (one per backend each).
        // One per revoking test and backend (three tests revoke one each, two backends), plus slack.
        let spare = std::sync::Mutex::new((0..8).map(|_| issue(A_CHIP)).collect::<Vec<_>>());
        let a_other_identity = hierarchy
            .issue(&PersonSpec {
                photo: PhotoSource::File(photo(A_CHIP)),
                with_hojo: true,
                name: "佐藤\u{3000}一郎".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1985, 5, 5).unwrap(),
                ..PersonSpec::default()
            })
            .expect("issue a test card");
        let responder = start_responder(dir.path());
        Cards {
            hierarchy,
            _dir: dir,
            responder,
            a,
            b,
            a_key_compromise,
            a_affiliation_changed,
            spare,
            a_other_identity,
        }
    })
}

impl Cards {
    /// A good card of person A that the caller may revoke.
    pub fn spare(&self) -> PersonId {
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
            .expect("no spare card left: add one in cards()")
    }

    /// The `card` JSON for a session (as the app would relay it).
    pub fn sign(&self, person: &PersonId, session: &serde_json::Value) -> serde_json::Value {
        let nonce = jpki_face::devcard::decode_nonce(session["nonce"].as_str().unwrap()).unwrap();
        let binding = SessionBinding {
            session_id: session["id"].as_str().unwrap(),
            nonce: &nonce,
        };
        self.hierarchy.sign(person, &binding).expect("sign")
    }

    /// Revokes after the responder started. `openssl ocsp` looks at index.txt between requests,
    /// after serving one and before waiting for the next, so one throwaway query after the change
    /// makes every later answer see it.
    pub fn revoke_now(&self, person: &PersonId, reason: CrlReason) {
        self.hierarchy.revoke(person, reason).expect("revoke");
        let dir = self.hierarchy.dir();
        let status = Command::new("openssl")
            .args([
                "ocsp",
                "-issuer",
                "ca.pem",
                "-cert",
                &format!("{person}/cert.pem"),
                "-url",
                &format!("http://127.0.0.1:{}", self.responder.port),
                "-noverify",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "nudging the OCSP responder failed");
    }

    /// The port of the shared `openssl ocsp` responder.
    pub fn responder_port(&self) -> u16 {
        self.responder.port
    }

    /// App options trusting this hierarchy and asking its OCSP responder.
    pub fn app_options(&self, backend: Backend) -> AppOptions {
        let mut options = AppOptions::new(backend);
        options.toml = self.toml(self.responder.port);
        options
    }

    pub fn toml(&self, ocsp_port: u16) -> String {
        format!(
            "[card]\ntrust_dir = \"{}\"\n[jlis]\nmode = \"ocsp\"\nretry_after_secs = 7\n[jlis.ocsp]\nurl = \"http://127.0.0.1:{ocsp_port}\"\nretries = 0\ntimeout_ms = 2000\ncache_ttl_secs = 0\n",
            self.hierarchy.trust_dir().display()
        )
    }
}
