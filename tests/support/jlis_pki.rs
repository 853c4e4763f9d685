//! Test PKI for the J-LIS adapter tests, built with the `openssl` CLI (card-data.md §D.1), plus the
//! processes and tiny HTTP servers the tests talk to. Every spawned process is killed by a Drop guard.
#![allow(dead_code)] // each test binary uses a different subset

use der::DecodePem;
use jpki_face::jlis::RevocationTarget;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use x509_cert::Certificate;

const CNF: &str = r#"
[req]
distinguished_name = dn
prompt = no
utf8 = yes
string_mask = utf8only

[dn]
C = JP
O = JPKI-TEST
OU = JPKI for digital signature
1.OU = Japan Agency for Local Authority Information Systems

[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[v3_sign]
keyUsage = critical,digitalSignature,nonRepudiation
certificatePolicies = 1.2.392.200149.8.5.1.1.20
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash

[v3_ocsp]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning

[ca]
default_ca = testca

[testca]
dir = .
database = ./db/index.txt
serial = ./db/serial
crlnumber = ./db/crlnumber
new_certs_dir = ./db
certificate = ./ca.pem
private_key = ./ca.key
default_md = sha256
policy = pol
copy_extensions = none
unique_subject = no
default_crl_days = 1
utf8 = yes

[pol]
countryName = optional
organizationName = optional
localityName = optional
commonName = supplied
"#;

/// The test CA and its certificates, in a directory under the cargo target dir.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_der: Vec<u8>,
    /// Issued, not revoked.
    pub good: Vec<u8>,
    /// Revoked with keyCompromise.
    pub key_compromise: Vec<u8>,
    /// Revoked with affiliationChanged (the holder moved or was renamed).
    pub affiliation_changed: Vec<u8>,
}

impl Pki {
    pub fn target(&self, serial: &[u8]) -> RevocationTarget {
        RevocationTarget {
            serial: serial.to_vec(),
            issuer_cert_der: self.ca_der.clone(),
            crl_distribution_points: None,
        }
    }
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// Runs openssl in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}): install it (Debian: apt-get install openssl)")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn serial_of(pem: &[u8]) -> Vec<u8> {
    let cert = Certificate::from_pem(pem).expect("openssl wrote a certificate");
    cert.tbs_certificate.serial_number.as_bytes().to_vec()
}

/// Builds the PKI once per test binary (`name` keeps binaries apart).
pub fn pki(name: &str) -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| build_pki(name))
}

fn build_pki(name: &str) -> Pki {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("jlis-pki-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("db")).expect("create the PKI directory");
    std::fs::write(dir.join("t.cnf"), CNF).expect("write t.cnf");
    std::fs::write(dir.join("db/index.txt"), "").expect("index");
    std::fs::write(dir.join("db/serial"), "1000\n").expect("serial");
    // CRLs carry a cRLNumber (RFC 5280 5.2.3): the CRL checker refuses CRLs without one.
    std::fs::write(dir.join("db/crlnumber"), "01\n").expect("crlnumber");
    let d = dir.as_path();
    let key = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
        d,
        &[
            "req",
            "-x509",
            key[0],
            key[1],
            key[2],
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-sha256",
            "-config",
            "t.cnf",
            "-extensions",
            "v3_ca",
        ],
    );
    let issue = |stem: &str, subj: &str, ext: &str| {
        openssl(
            d,
            &[
                "req",
                key[0],
                key[1],
                key[2],
                "-keyout",
                &format!("{stem}.key"),
                "-out",
                &format!("{stem}.csr"),
                "-subj",
                subj,
            ],
        );
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                "t.cnf",
                "-extensions",
                ext,
                "-days",
                "1825",
                "-in",
                &format!("{stem}.csr"),
                "-out",
                &format!("{stem}.pem"),
            ],
        );
    };
    issue("good", "/C=JP/L=Tokyo-to/CN=TEST0001GOOD", "v3_sign");
    issue("kc", "/C=JP/L=Tokyo-to/CN=TEST0002KEYCOMP", "v3_sign");
    issue("ac", "/C=JP/L=Tokyo-to/CN=TEST0003MOVED", "v3_sign");
    issue("ocsp", "/C=JP/O=JPKI-TEST/CN=Test OCSP", "v3_ocsp");
    openssl(
        d,
        &[
            "ca",
            "-config",
            "t.cnf",
            "-revoke",
            "kc.pem",
            "-crl_reason",
            "keyCompromise",
        ],
    );
    openssl(
        d,
        &[
            "ca",
            "-config",
            "t.cnf",
            "-revoke",
            "ac.pem",
            "-crl_reason",
            "affiliationChanged",
        ],
    );
    openssl(
        d,
        &["ca", "-config", "t.cnf", "-gencrl", "-out", "sign.crl.pem"],
    );
    openssl(
        d,
        &[
            "crl",
            "-in",
            "sign.crl.pem",
            "-outform",
            "DER",
            "-out",
            "sign.crl",
        ],
    );
    // A responder certificate the CA never issued.
    openssl(
        d,
        &[
            "req",
            "-x509",
            key[0],
            key[1],
            key[2],
            "-keyout",
            "foreign.key",
            "-out",
            "foreign.pem",
            "-days",
            "365",
            "-subj",
            "/C=JP/O=Elsewhere/CN=Foreign OCSP",
        ],
    );
    // An imposter with the CA's exact name but another key.
    openssl(
        d,
        &[
            "req",
            "-x509",
            key[0],
            key[1],
            key[2],
            "-keyout",
            "imposter.key",
            "-out",
            "imposter.pem",
            "-days",
            "365",
            "-sha256",
            "-config",
            "t.cnf",
            "-extensions",
            "v3_ca",
        ],
    );
    let ca_pem = std::fs::read(dir.join("ca.pem")).expect("ca.pem");
    let ca_der = Certificate::from_pem(&ca_pem)
        .and_then(|c| der::Encode::to_der(&c))
        .expect("CA certificate");
    let read = |n: &str| std::fs::read(dir.join(n)).expect("certificate file");
    Pki {
        good: serial_of(&read("good.pem")),
        key_compromise: serial_of(&read("kc.pem")),
        affiliation_changed: serial_of(&read("ac.pem")),
        ca_der,
        dir,
    }
}

/// A free loopback port (bound and released; the small race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A child process killed (and reaped) on drop.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start `openssl ocsp`.
pub struct ResponderOpts<'a> {
    pub signer: &'a str,
    pub key: &'a str,
    /// `-nmin`: nextUpdate minutes (none: no nextUpdate).
    pub nmin: Option<u32>,
    pub port: Option<u16>,
    /// More `openssl ocsp` options (e.g. `-badsig`, `-resp_key_id`, `-rcid sha256`).
    pub extra: &'a [&'a str],
}

impl Default for ResponderOpts<'_> {
    fn default() -> Self {
        Self {
            signer: "ocsp.pem",
            key: "ocsp.key",
            nmin: None,
            port: None,
            extra: &[],
        }
    }
}

/// A running `openssl ocsp` responder.
pub struct Responder {
    pub port: u16,
    _proc: Proc,
}

impl Responder {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

pub fn start_responder(pki: &Pki, opts: ResponderOpts<'_>) -> Responder {
    let port = opts.port.unwrap_or_else(free_port);
    let port_s = port.to_string();
    let mut args = vec![
        "ocsp",
        "-index",
        "db/index.txt",
        "-port",
        &port_s,
        "-rsigner",
        opts.signer,
        "-rkey",
        opts.key,
        "-CA",
        "ca.pem",
        "-ignore_err",
    ];
    let nmin;
    if let Some(n) = opts.nmin {
        nmin = n.to_string();
        args.extend(["-nmin", &nmin]);
    }
    args.extend(opts.extra);
    let mut child = Command::new("openssl")
        .args(&args)
        .current_dir(&pki.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}): install it (Debian: apt-get install openssl)")
        });
    // Readiness: openssl prints "ACCEPT [::]:PORT" once it listens. A bare TCP connect probe must not
    // be used: OpenSSL 3.0's responder spins and stops answering after a connection closed without a request.
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut tx = Some(tx);
        // Keep draining so the responder never blocks on a full pipe.
        while let Some(Ok(line)) = lines.next() {
            if line.starts_with("ACCEPT") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("openssl ocsp did not start listening on port {port}: {e}"));
    Responder { port, _proc: proc }
}

/// Asks a running responder with the openssl client and keeps the DER response (for replays).
pub fn capture_response(pki: &Pki, url: &str, cert: &str, nonce: bool, out: &str) -> Vec<u8> {
    let mut args = vec![
        "ocsp",
        "-issuer",
        "ca.pem",
        "-cert",
        cert,
        "-url",
        url,
        "-respout",
        out,
        "-noverify",
    ];
    if !nonce {
        args.push("-no_nonce");
    }
    openssl(&pki.dir, &args);
    pki.read(out)
}

/// What a [`TestServer`] does with each connection.
#[derive(Clone)]
pub enum Behaviour {
    /// Answer with this status and body.
    Respond { status: u16, body: Vec<u8> },
    /// Accept and never answer.
    Silent,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 (threads, blocking I/O): serves one fixed answer, counts
/// requests, and can change its answer while running.
pub struct TestServer {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<Behaviour>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let requests = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, b, s) = (requests.clone(), behaviour.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        r.fetch_add(1, Ordering::SeqCst);
                        let current = b.lock().expect("behaviour").clone();
                        match current {
                            Behaviour::Silent => held.push(stream),
                            Behaviour::Respond { status, body } => {
                                std::thread::spawn(move || answer(stream, status, &body));
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            port,
            requests,
            behaviour,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("behaviour") = behaviour;
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn answer(mut stream: TcpStream, status: u16, body: &[u8]) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // Read the request head and its body so the client is not reset mid-send.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
    let _ = stream.flush();
}
