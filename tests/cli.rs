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
