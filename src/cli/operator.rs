//! `jpki-face operator create`: a console operator of a tenant (the first admin comes from here).
//! The password is the first line of standard input, so it appears in no argument list or shell
//! history; the TOTP secret is printed once, for the operator's authenticator app.

use super::OperatorCommand;
use crate::app::open_store;
use crate::config::Settings;
use crate::crypto::KeyRing;
use crate::domain::TenantId;
use crate::redact::Secret;
use crate::usecase::operators::{create_operator, CreatedOperator, NewOperatorRequest};
use anyhow::Context;

pub(super) async fn run(command: OperatorCommand, settings: Settings) -> anyhow::Result<()> {
    let OperatorCommand::Create {
        tenant,
        login,
        role,
        json,
    } = command;
    let tenant = TenantId::parse(&tenant).with_context(|| format!("not a tenant id: {tenant}"))?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = Secret::new(line.trim_end_matches(['\r', '\n']).to_string());
    let store = open_store(&settings).await?;
    store.migrate().await?;
    let (keys, _) = KeyRing::from_settings(&settings.crypto, settings.environment)?;
    let created = create_operator(
        store.as_ref(),
        &keys,
        &tenant,
        NewOperatorRequest {
            login,
            role: role.into(),
            password,
        },
        None,
    )
    .await
    .map_err(|e| match e {
        crate::usecase::UseCaseError::NotFound => anyhow::anyhow!("no tenant {tenant}"),
        other => anyhow::anyhow!("{other}"),
    })?;
    print_operator(json, &created);
    Ok(())
}

/// The new operator and its TOTP secret, shown once.
pub(super) fn print_operator(json: bool, c: &CreatedOperator) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "operator_id": c.id,
                "tenant_id": c.tenant_id,
                "login": c.login,
                "role": c.role,
                "totp_secret": c.totp_secret.expose(),
                "otpauth_uri": c.otpauth_uri.expose(),
            })
        );
    } else {
        println!("operator_id\t{}", c.id);
        println!("totp_secret\t{}", c.totp_secret.expose());
        println!("otpauth_uri\t{}", c.otpauth_uri.expose());
    }
}
