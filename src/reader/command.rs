//! `jpki-face read`: asks for the card's secrets (without echo), reads the card for a session and
//! writes the `card` JSON, or with `--enroll URL` opens the session, reads, and posts the enrollment.

use super::sequence::{self, Credentials, ReadError};
use super::{PcscTransport, Transport};
use crate::card::SessionBinding;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The environment variable holding the tenant API key for `--enroll` (never an argument).
pub const API_KEY_ENV: &str = "JPKI_FACE_API_KEY";

/// `jpki-face read …`
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Use the first PC/SC reader whose name contains this (default: the first one holding a card).
    #[arg(long, value_name = "NAME")]
    pub reader: Option<String>,
    /// List the PC/SC readers and exit.
    #[arg(long)]
    pub list_readers: bool,
    /// The session to sign for (without --enroll): its id…
    #[arg(long, required_unless_present_any = ["enroll", "list_readers"], conflicts_with = "enroll")]
    pub session_id: Option<String>,
    /// …and its nonce as the API returns it (base64url).
    #[arg(long, required_unless_present_any = ["enroll", "list_readers"], conflicts_with = "enroll")]
    pub nonce: Option<String>,
    /// Write the card JSON to FILE (default: standard output). With --enroll: also keep a copy there.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Enroll at this jpki-face server (base URL): open a session with the tenant API key from
    /// $JPKI_FACE_API_KEY, read the card, post the card JSON and the selfie; prints the decision.
    #[arg(long, value_name = "URL", requires = "selfie")]
    pub enroll: Option<String>,
    /// The selfie (JPEG, PNG or WebP) for --enroll.
    #[arg(long, value_name = "FILE")]
    pub selfie: Option<PathBuf>,
    /// The RP's reference for the customer (--enroll).
    #[arg(long)]
    pub subject_ref: Option<String>,
    /// Do not read the 入力補助AP (the server may then reject the card: `hojo_required`).
    #[arg(long)]
    pub skip_hojo: bool,
    /// Refuse to try a PIN with fewer tries left than this (default 2: never spend the last try).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    pub min_tries: u8,
    /// For automation only: read the secrets from standard input, one a line, in this order: signing
    /// password, birth date (YYYY-MM-DD), the card's expiry year (YYYY), security code (4 digits).
    /// Secrets are never taken as arguments (other users can see those).
    #[arg(long)]
    pub secrets_stdin: bool,
}

/// One secret: a line of standard input (`--secrets-stdin`), or typed at the terminal without echo.
fn ask(from_stdin: bool, prompt: &str) -> Result<Zeroizing<String>> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ));
    }
    Ok(Zeroizing::new(rpassword::prompt_password(prompt).context(
        "no terminal to ask for the card's secrets on; for automation use --secrets-stdin",
    )?))
}

/// The four things the holder types in; `birth`/`expiry`/`code` make 照合番号B.
fn ask_secrets(from_stdin: bool) -> Result<Credentials> {
    let next = |prompt: &str| ask(from_stdin, prompt);
    let sign_password = next("Signing password (署名用パスワード, 6-16 characters): ")?;
    if !(6..=16).contains(&sign_password.len()) {
        bail!("the signing password has 6 to 16 characters: not trying it");
    }
    let birth = next("照合番号B 1/3: birth date (YYYY-MM-DD): ")?;
    let birth = chrono::NaiveDate::parse_from_str(birth.trim(), "%Y-%m-%d")
        .context("the birth date: want YYYY-MM-DD")?;
    let expiry = next("照合番号B 2/3: the card's expiry year (YYYY): ")?;
    let expiry: u32 = expiry
        .trim()
        .parse()
        .context("the expiry year: want four digits")?;
    let code = next("照合番号B 3/3: security code (セキュリティコード, 4 digits): ")?;
    let collation_b = crate::apdu::collation_b(birth, expiry, code.trim())?;
    Ok(Credentials {
        sign_password: Zeroizing::new(sign_password.to_string()),
        collation_b,
    })
}

/// `jpki-face read`.
pub fn run(args: ReadArgs) -> Result<()> {
    if args.list_readers {
        for r in PcscTransport::list_readers()? {
            println!("{r}");
        }
        return Ok(());
    }
    let selfie = match &args.selfie {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("--selfie {}", p.display()))?),
        None => None,
    };
    let api_key = match &args.enroll {
        Some(_) => Some(Zeroizing::new(std::env::var(API_KEY_ENV).with_context(
            || format!("--enroll needs the tenant API key in ${API_KEY_ENV}"),
        )?)),
        None => None,
    };
    let mut card = PcscTransport::connect(args.reader.as_deref())?;
    eprintln!("card found in {}", card.reader_name());
    // The counters first: refuse before anyone types a PIN that must not be tried.
    let pre = sequence::preflight(&mut card, args.min_tries, !args.skip_hojo)?;
    eprintln!(
        "tries left: signing password {}, 照合番号B {}",
        shown(pre.sign_password_left),
        shown(pre.kenmen_collation_b_left)
    );
    let creds = ask_secrets(args.secrets_stdin)?;
    match (&args.enroll, api_key, selfie) {
        (Some(url), Some(key), Some(selfie)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(enroll(&args, url, &key, &selfie, &mut card, &creds))
        }
        _ => {
            let session_id = args.session_id.as_deref().context("--session-id")?;
            let nonce = decode_nonce(args.nonce.as_deref().context("--nonce")?)?;
            let data = sequence::read_card(
                &mut card,
                &creds,
                &SessionBinding {
                    session_id,
                    nonce: &nonce,
                },
                args.min_tries,
                !args.skip_hojo,
            )?;
            write_json(&args, &data.to_json())
        }
    }
}

fn shown(left: u8) -> String {
    if left == u8::MAX {
        "(verified)".into()
    } else {
        left.to_string()
    }
}

fn write_json(args: &ReadArgs, json: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json)?;
    match &args.out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("--out {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")?;
            Ok(())
        }
    }
}

async fn enroll(
    args: &ReadArgs,
    base: &str,
    api_key: &str,
    selfie: &[u8],
    card: &mut dyn Transport,
    creds: &Credentials,
) -> Result<()> {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let mut body = serde_json::json!({"purpose": "enrollment"});
    if let Some(s) = &args.subject_ref {
        body["subject_ref"] = s.clone().into();
    }
    let resp = client
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(api_key)
        .json(&body)
        .send()
        .await
        .context("opening a session")?;
    let status = resp.status();
    let session: serde_json::Value = resp.json().await.context("the session answer")?;
    if !status.is_success() {
        bail!("opening a session: {status}: {session}");
    }
    let field = |k: &str| {
        session[k]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the session answer has no {k}"))
    };
    let (session_id, nonce, token) = (
        field("id")?,
        field("nonce")?,
        Zeroizing::new(field("client_token")?),
    );
    let nonce = decode_nonce(&nonce)?;
    eprintln!("session {session_id} opened; reading the card");
    let data = sequence::read_card(
        card,
        creds,
        &SessionBinding {
            session_id: &session_id,
            nonce: &nonce,
        },
        args.min_tries,
        !args.skip_hojo,
    )
    .map_err(|e: ReadError| anyhow::anyhow!(e))?;
    let card_json = data.to_json();
    if args.out.is_some() {
        write_json(args, &card_json)?;
    }
    let (content_type, multipart) = multipart_body(
        &serde_json::to_vec(&card_json)?,
        selfie,
        selfie_type(args.selfie.as_deref()),
    );
    let resp = client
        .post(format!("{base}/v1/enrollments"))
        .bearer_auth(token.as_str())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(multipart)
        .send()
        .await
        .context("posting the enrollment")?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.context("the enrollment answer")?;
    if !status.is_success() {
        bail!("the enrollment was refused: {status}: {answer}");
    }
    println!("{}", serde_json::to_string_pretty(&answer)?);
    eprintln!(
        "enrollment {}: {} {}",
        answer["id"].as_str().unwrap_or("?"),
        answer["status"].as_str().unwrap_or("?"),
        answer["reasons"]
    );
    Ok(())
}

fn selfie_type(path: Option<&std::path::Path>) -> &'static str {
    match path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

/// `multipart/form-data` with the parts `card` (JSON) and `selfie`.
fn multipart_body(card: &[u8], selfie: &[u8], selfie_type: &str) -> (String, Vec<u8>) {
    let boundary = format!("jpki-face-{}", hex::encode(rand::random::<[u8; 12]>()));
    let mut body = Vec::with_capacity(card.len() + selfie.len() + 512);
    for (name, file, ctype, bytes) in [
        ("card", "card.json", "application/json", card),
        ("selfie", "selfie", selfie_type, selfie),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\ncontent-type: {ctype}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A session nonce: base64url (the API's form) or standard base64 of 32 bytes.
fn decode_nonce(s: &str) -> Result<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let bytes = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|e| e.decode(s.trim()).ok())
        .context("the nonce is not base64url")?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| anyhow::anyhow!("the nonce decodes to {} bytes, want 32", v.len()))
}
