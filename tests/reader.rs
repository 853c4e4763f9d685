//! The APDU path end to end (issue 24), as real processes: an isolated pcscd with the vpcd virtual
//! reader, the virtual card (`jpki-face dev card serve`), the reader (`jpki-face read`) and the server
//! (`jpki-face serve`, SQLite and PostgreSQL). Independent clients judge the virtual card: OpenSC's
//! `pkcs11-tool` signs through it, and `jpki-cli` reads the same certificate as our reader.
//!
//! Isolation: pcscd runs in its own mount and network namespaces (`unshare`, root), so its vpcd port
//! (which binds 0.0.0.0) is reachable only inside, where the virtual card joins it (`nsenter`); a tmpfs
//! on /run/pcscd keeps its pid file and socket apart from any other pcscd. Clients reach the socket as
//! `/proc/PID/root/run/pcscd/pcscd.comm` (`PCSCLITE_CSOCK_NAME`). One pcscd per test process; the tests take turns (one reader slot).
//! Needs: pcscd, vsmartcard-vpcd, opensc (scripts/ensure-pcsc.sh), openssl, curl, psql, `script`,
//! jpki-cli (scripts/ensure-jpki-cli.sh), the face models (`make models`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The binary under test, copied once: a build that shares the target directory cannot swap it mid-run.
fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tmp().join(format!("reader-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("jpki-face");
        std::fs::copy(env!("CARGO_BIN_EXE_jpki-face"), &copy).unwrap();
        copy
    })
}
const SIGN_PASSWORD: &str = "ABC123";
const SELFIE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/samples/Female_40-2_1.jpg"
);

/// One virtual card slot: the tests take turns.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

// ---------------------------------------------------------------------------------------------
// pcscd in its own namespaces

struct Pcscd {
    child: Child,
    socket: PathBuf,
}

/// The process's pcscd: started once; it exits when this process does (its stdin closes).
fn pcscd() -> &'static Pcscd {
    static PCSCD: OnceLock<Pcscd> = OnceLock::new();
    PCSCD.get_or_init(|| {
        let dir = tmp().join(format!("pcscd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("pcscd.log");
        // `read` returns when the test process exits and closes the pipe; pcscd goes with it.
        let script = "set -e; ip link set lo up; mkdir -p /run/pcscd; mount -t tmpfs tmpfs /run/pcscd; \
                      pcscd --foreground >>\"$PCSCD_LOG\" 2>&1 & p=$!; read _ || true; kill $p; wait $p || true";
        let child = Command::new("unshare")
            .args(["--mount", "--net", "--", "sh", "-c", script])
            .env("PCSCD_LOG", &log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("unshare.log")).unwrap())
            .spawn()
            .expect("unshare (util-linux) and pcscd (scripts/ensure-pcsc.sh); the tests run as root");
        // pcscd's socket inside its mount namespace, reached through /proc from outside.
        let socket = PathBuf::from(format!("/proc/{}/root/run/pcscd/pcscd.comm", child.id()));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "pcscd did not start: {}",
                std::fs::read_to_string(dir.join("unshare.log")).unwrap_or_default()
                    + &std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // This process's own PC/SC calls (waiting for the card) go to the same pcscd.
        std::env::set_var("PCSCLITE_CSOCK_NAME", &socket);
        Pcscd { child, socket }
    })
}

/// Whether pcscd sees a card in a reader. Asked without connecting: a connect (and the reset of its
/// disconnect) racing a card's removal can leave pcscd's reader state out of step with its event thread.
fn card_present() -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let Ok(readers) = ctx.list_readers_owned() else {
        return false;
    };
    let mut states: Vec<pcsc::ReaderState> = readers
        .into_iter()
        .map(|r| pcsc::ReaderState::new(r, pcsc::State::UNAWARE))
        .collect();
    ctx.get_status_change(Duration::from_millis(0), &mut states)
        .is_ok()
        && states
            .iter()
            .any(|s| s.event_state().contains(pcsc::State::PRESENT))
}

fn wait_until(what: impl Fn() -> String, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// the test card and the virtual card

struct Person {
    dir: PathBuf,
    id: String,
    /// signing password, birth date, expiry year, security code: what `--secrets-stdin` reads.
    secrets: String,
}

fn jpki_face() -> Command {
    let mut c = Command::new(bin());
    c.env("JPKI_FACE__LOG__FILTER", "warn")
        .env("PCSCLITE_CSOCK_NAME", &pcscd().socket)
        .current_dir(tmp());
    c
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One test hierarchy and one card holder (with the 入力補助AP and a real portrait) per process.
fn person() -> &'static Person {
    static P: OnceLock<Person> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tmp().join(format!("reader-cards-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        run_ok(jpki_face().args(["dev", "card", "init"]).arg(&dir));
        let id = run_ok(jpki_face().args(["dev", "card", "issue"]).arg(&dir).args([
            "--photo",
            SELFIE,
            "--with-hojo",
            "--birth-date",
            "1985-06-15",
        ]))
        .trim()
        .to_string();
        let code = std::fs::read_to_string(dir.join(&id).join("security-code.txt")).unwrap();
        let expiry_year = chrono::Datelike::year(&chrono::Utc::now()) + 10;
        Person {
            secrets: format!("{SIGN_PASSWORD}\n1985-06-15\n{expiry_year}\n{code}\n"),
            dir,
            id,
        }
    })
}

/// `jpki-face dev card serve` inside pcscd's network namespace; pulled out of the reader on drop.
struct VirtualCard {
    child: Child,
}

impl VirtualCard {
    fn insert(extra: &[&str]) -> Self {
        let p = person();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = p.dir.join(format!("card-{n}.log"));
        let child = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", pcscd().child.id()))
            .arg("--")
            .arg(bin())
            .args(["dev", "card", "serve"])
            .arg(&p.dir)
            .arg(&p.id)
            .args(extra)
            .env("JPKI_FACE__LOG__FILTER", "warn")
            .current_dir(tmp())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nsenter");
        let card = Self { child };
        wait_until(
            || {
                format!(
                    "the virtual card; its log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            },
            card_present,
        );
        card
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_until(|| "the card to leave the reader".into(), || !card_present());
        // Let pcscd's event thread poll the empty slot (every 400 ms) before the next card connects.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

// ---------------------------------------------------------------------------------------------
// the server

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Server {
    child: Child,
    base: String,
    api_key: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server(backend: Backend) -> Server {
    let dir = tmp().join(format!(
        "reader-server-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db_url = match backend {
        Backend::Sqlite => format!("sqlite://{}/reader.db", dir.display()),
        Backend::Postgres => {
            let admin = std::env::var("JPKI_FACE_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("jpki_test_reader_{}", free_port());
            run_ok(Command::new("psql").args([&admin, "-qc", &format!("CREATE DATABASE {name}")]));
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
    };
    let env = |c: &mut Command| {
        c.env("JPKI_FACE__DATABASE__URL", &db_url)
            .env("JPKI_FACE__CARD__TRUST_DIR", person().dir.join("trust"))
            .env("JPKI_FACE__JLIS__MODE", "static")
            .env("JPKI_FACE__CRYPTO__DEV_KEY_FILE", dir.join("kek.b64"))
            .env(
                "JPKI_FACE__FACE__MODELS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/models"),
            )
            .env(
                "JPKI_FACE__FACE__ORT_LIBRARY",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/models/libonnxruntime.so.1.31.1"
                ),
            );
    };
    let mut create = jpki_face();
    env(&mut create);
    let created: serde_json::Value = serde_json::from_str(&run_ok(
        create.args(["tenant", "create", "--name", "reader", "--json"]),
    ))
    .unwrap();
    let port = free_port();
    let mut serve = jpki_face();
    env(&mut serve);
    let child = serve
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let s = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        api_key: created["api_key"].as_str().unwrap().to_string(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/readyz", s.base),
    ]) != "200"
    {
        assert!(Instant::now() < deadline, "the server did not get ready");
        std::thread::sleep(Duration::from_millis(250));
    }
    s
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .arg("-s")
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tenant's enrollments for `subject_ref` (what the server holds).
fn enrollments(s: &Server, subject: &str) -> Vec<serde_json::Value> {
    let body = curl(&[
        "-H",
        &format!("authorization: Bearer {}", s.api_key),
        &format!("{}/v1/enrollments?subject_ref={subject}", s.base),
    ]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    v["enrollments"].as_array().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// the reader

fn read(args: &[&str], secrets: &str, api_key: Option<&str>) -> Output {
    let mut cmd = jpki_face();
    cmd.arg("read")
        .args(args)
        .arg("--secrets-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = api_key {
        cmd.env("JPKI_FACE_API_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    // The reader may stop before it asks (a locked PIN): a closed pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(secrets.as_bytes());
    child.wait_with_output().unwrap()
}

fn enroll(s: &Server, subject: &str, secrets: &str) -> Output {
    read(
        &[
            "--enroll",
            &s.base,
            "--selfie",
            SELFIE,
            "--subject-ref",
            subject,
        ],
        secrets,
        Some(&s.api_key),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads the card for a made-up session (no server) and returns the signing certificate it read.
fn certificate_read_by_the_reader(dir: &Path) -> Vec<u8> {
    use base64::Engine;
    let out = dir.join("card.json");
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let o = read(
        &[
            "--session-id",
            "ses_judge",
            "--nonce",
            &nonce,
            "-o",
            out.to_str().unwrap(),
        ],
        &person().secrets,
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let card: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(card["jpki"]["signing_certificate"].as_str().unwrap())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// the tests

#[test]
fn a_card_read_over_pcsc_enrolls_verified_on_both_backends() {
    let _turn = turn();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let s = server(backend);
        let _card = VirtualCard::insert(&[]);
        let subject = format!("reader-{backend:?}");
        let o = enroll(&s, &subject, &person().secrets);
        assert!(o.status.success(), "{backend:?}: {}", stderr(&o));
        let answer: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(answer["status"], "verified", "{backend:?}: {answer}");
        assert_eq!(answer["checks"]["card_present"]["result"], "valid");
        assert_eq!(answer["checks"]["hojo_binding"]["result"], "bound");
        assert_eq!(enrollments(&s, &subject).len(), 1);
        // Nothing secret on the terminal.
        let err = stderr(&o);
        assert!(!err.contains(SIGN_PASSWORD), "{err}");
    }
}

#[test]
fn a_wrong_password_costs_one_try_and_posts_nothing() {
    let _turn = turn();
    let s = server(Backend::Sqlite);
    let _card = VirtualCard::insert(&[]);
    let wrong = person().secrets.replacen(SIGN_PASSWORD, "WRONG99", 1);
    let o = enroll(&s, "wrong-pin", &wrong);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("is wrong; 4 tries left"), "{err}");
    assert!(
        enrollments(&s, "wrong-pin").is_empty(),
        "nothing was posted"
    );
    // The counter is down by one, and the right password restores it.
    let o = enroll(&s, "wrong-pin", &person().secrets);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("signing password 4,"), "{}", stderr(&o));
    assert_eq!(enrollments(&s, "wrong-pin").len(), 1);
}

#[test]
fn a_locked_or_nearly_locked_password_is_never_tried() {
    let _turn = turn();
    let s = server(Backend::Sqlite);
    for (tries, says) in [("0", "is locked"), ("1", "has only 1 tries left")] {
        let _card = VirtualCard::insert(&["--sign-password-tries", tries]);
        let o = enroll(&s, "locked", &person().secrets);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(enrollments(&s, "locked").is_empty());
    }
}

#[test]
fn a_card_pulled_mid_read_is_a_clear_error_and_posts_nothing() {
    let _turn = turn();
    let s = server(Backend::Sqlite);
    // The read takes about 60 commands; the card leaves after the signing password was verified.
    let mut card = VirtualCard::insert(&["--pull-after", "20"]);
    let o = enroll(&s, "pulled", &person().secrets);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("card was removed"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(card.exited(), "the virtual card left");
    assert!(enrollments(&s, "pulled").is_empty());
}

#[test]
fn opensc_signs_through_the_virtual_card_and_the_certificate_the_reader_read_verifies_it() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let _card = VirtualCard::insert(&[]);
    let cert = certificate_read_by_the_reader(dir.path());
    std::fs::write(dir.path().join("cert.der"), &cert).unwrap();
    std::fs::write(
        dir.path().join("data.txt"),
        b"signed by OpenSC through the virtual card",
    )
    .unwrap();
    let module = [
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    ]
    .into_iter()
    .find(|m| Path::new(m).exists())
    .expect("opensc (scripts/ensure-pcsc.sh)");
    // OpenSC's JPKI driver: one slot per PIN; the signing key is behind the "Digital Signature PIN".
    let mut slots = String::new();
    for _ in 0..5 {
        slots = run_ok(
            Command::new("pkcs11-tool")
                .args(["--module", module, "--list-slots"])
                .env("PCSCLITE_CSOCK_NAME", &pcscd().socket),
        );
        if slots.contains("JPKI (Digital Signature PIN)") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(slots.contains("JPKI (Digital Signature PIN)"), "{slots}");
    // Right after another client reset the card, pcscd may briefly show the slot without a token: retry.
    let mut tries = 0;
    let o = loop {
        let o = Command::new("pkcs11-tool")
            .args([
                "--module",
                module,
                "--token-label",
                "JPKI (Digital Signature PIN)",
            ])
            .args(["--login", "--pin", SIGN_PASSWORD])
            .args([
                "--sign",
                "-m",
                "SHA256-RSA-PKCS",
                "--label",
                "Digital Signature Key",
            ])
            .arg("-i")
            .arg(dir.path().join("data.txt"))
            .arg("-o")
            .arg(dir.path().join("sig.bin"))
            .env("PCSCLITE_CSOCK_NAME", &pcscd().socket)
            .output()
            .unwrap();
        tries += 1;
        if o.status.success() || tries == 5 {
            break o;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        o.status.success(),
        "{}{}\nslots: {slots}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
            .arg(dir.path().join("cert.der"))
            .arg("-out")
            .arg(dir.path().join("pub.pem")),
    );
    let verified = run_ok(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(dir.path().join("pub.pem"))
            .arg("-signature")
            .arg(dir.path().join("sig.bin"))
            .arg(dir.path().join("data.txt")),
    );
    assert!(verified.contains("Verified OK"), "{verified}");
}

#[test]
fn jpki_cli_reads_the_same_certificate_byte_for_byte() {
    let _turn = turn();
    let jpki_cli = run_ok(&mut Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/ensure-jpki-cli.sh"
    )))
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let _card = VirtualCard::insert(&[]);
    let cert = certificate_read_by_the_reader(dir.path());
    // jpki-cli asks for the password on a terminal: `script` gives it one (and `timeout --foreground`
    // keeps it in the terminal's foreground group, or its prompt would stop it). Type the password when
    // the prompt shows, as a user would.
    let out = dir.path().join("jpki-cli.out");
    let cmd = format!(
        "timeout --foreground 60 {jpki_cli} crypto read-certificate > {}",
        out.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("PCSCLITE_CSOCK_NAME", &pcscd().socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let terminal = std::sync::Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = terminal.clone();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&terminal.lock().unwrap()).contains("pin_hint") {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "jpki-cli never asked for the password: {}",
            String::from_utf8_lossy(&terminal.lock().unwrap())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stdin
        .write_all(format!("{SIGN_PASSWORD}\r").as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    let _ = drain.join();
    let o_stdout = terminal.lock().unwrap().clone();
    // jpki-cli exits 0 even on errors: judge by what it wrote.
    let _ = status;
    let got = std::fs::read(&out).unwrap_or_default();
    let pem = String::from_utf8_lossy(&got);
    let der = if pem.contains("BEGIN CERTIFICATE") {
        use base64::Engine;
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    } else {
        got.clone()
    };
    assert_eq!(
        der,
        cert,
        "jpki-cli's certificate differs from the reader's ({} bytes vs {}); its terminal: {}",
        der.len(),
        cert.len(),
        String::from_utf8_lossy(&o_stdout)
    );
}
