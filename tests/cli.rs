//! The operator CLI, run as a real process: `tenant create --json` prints a key that works against
//! a server started on the same database; `tenant key revoke` makes it fail; config errors name keys.

use std::process::{Command, Stdio};

fn jpki_face(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jpki-face"));
    cmd.current_dir(dir)
        .env(
            "JPKI_FACE__DATABASE__URL",
            format!("sqlite://{}/cli.db", dir.display()),
        )
        .env("JPKI_FACE__LOG__FILTER", "warn")
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
        )
        .env("JPKI_FACE__CRYPTO__DEV_KEY_FILE", dir.join("kek.b64"));
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn tenant_keys_from_the_cli_work_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let out = jpki_face(dir.path())
        .args(["tenant", "create", "--name", "bank-a", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let key = created["api_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("jfk_live_"));
    assert!(created["tenant_id"].as_str().unwrap().starts_with("ten_"));
    // The key is not in the database file.
    let db = std::fs::read(dir.path().join("cli.db")).unwrap();
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()));

    let port = free_port();
    let mut server = jpki_face(dir.path())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/sessions");
    let mut status = 0;
    for _ in 0..300 {
        if let Ok(r) = client
            .post(&url)
            .bearer_auth(&key)
            .json(&serde_json::json!({"purpose": "enrollment"}))
            .send()
            .await
        {
            status = r.status().as_u16();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201);

    let revoked = jpki_face(dir.path())
        .args([
            "tenant",
            "key",
            "revoke",
            created["key_id"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let r = client
        .post(&url)
        .bearer_auth(&key)
        .json(&serde_json::json!({"purpose": "enrollment"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let again = jpki_face(dir.path())
        .args([
            "tenant",
            "key",
            "revoke",
            created["key_id"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success(), "revoking twice is an error");

    // SIGTERM shuts down gracefully.
    let pid = server.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = server.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

/// `operator create` reads the password from stdin and prints the TOTP secret once; the printed
/// secret (fed to `oathtool`) logs the first admin into the console of a server on the database.
#[tokio::test]
async fn the_first_admin_from_the_cli_logs_into_the_console() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = jpki_face(dir.path())
        .args(["tenant", "create", "--name", "bank-a", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tenant: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tenant = tenant["tenant_id"].as_str().unwrap().to_string();
    let operator = |password: &str, login: &str| {
        let mut child = jpki_face(dir.path())
            .args([
                "operator", "create", "--tenant", &tenant, "--login", login, "--role", "admin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = operator("short", "alice");
    assert!(!short.status.success(), "a short password is refused");
    let password = "correct horse battery staple";
    let out = operator(password, "alice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_string()
    };
    assert!(field("operator_id").starts_with("opr_"));
    let secret = field("totp_secret");
    assert_eq!(secret.len(), 32, "160 bits in unpadded base32");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(
        field("otpauth_uri"),
        format!("otpauth://totp/jpki-face:alice?secret={secret}&issuer=jpki-face&algorithm=SHA1&digits=6&period=30")
    );
    assert!(
        !operator(password, "alice").status.success(),
        "the login is taken"
    );
    // Neither the password nor the secret is in the database file.
    let db = std::fs::read(dir.path().join("cli.db")).unwrap();
    for needle in [password, secret.as_str()] {
        assert!(!db.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }

    let port = free_port();
    let mut server = jpki_face(dir.path())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut form = None;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/console/login")).send().await {
            form = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let form = form.expect("the server answers");
    let nonce = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    let body = form.text().await.unwrap();
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let code = Command::new("oathtool")
        .args(["--totp", "-b", &secret])
        .output()
        .expect("oathtool (scripts/ensure-tools.sh)");
    let code = String::from_utf8(code.stdout).unwrap().trim().to_string();
    let login = client
        .post(format!("{base}/console/login"))
        .header("cookie", nonce)
        .form(&[
            ("csrf", csrf.as_str()),
            ("tenant", tenant.as_str()),
            ("login", "alice"),
            ("password", password),
            ("totp", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/console/");
    let pid = server.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    server.wait().unwrap();
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = jpki_face(dir.path())
        .env("JPKI_FACE__SERVER__BIND", "not-an-address")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.bind"));
    let out = jpki_face(dir.path())
        .env("JPKI_FACE__ENVIRONMENT", "production")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("crypto.kek"));
    let help = Command::new(env!("CARGO_BIN_EXE_jpki-face"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for command in ["serve", "migrate", "tenant", "calibrate"] {
        assert!(help.contains(command), "--help lists {command}");
    }
    // The test-card generator exists only in builds with the `devcard` feature.
    assert_eq!(
        help.contains("\n  dev "),
        cfg!(feature = "devcard"),
        "{help}"
    );
}
