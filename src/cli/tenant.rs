//! `jpki-face tenant create|list|key create|key revoke`: the admin use cases
//! ([`crate::usecase::tenants`]) and their printing.

use super::{KeyCommand, TenantCommand};
use crate::app::open_store;
use crate::config::Settings;
use crate::domain::TenantId;
use crate::redact::Secret;
use crate::store::TenantSettings;
use crate::usecase::tenants::{create_api_key, create_tenant_with, revoke_api_key};
use anyhow::Context;

pub(super) async fn run(command: TenantCommand, settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    store.migrate().await?;
    match command {
        TenantCommand::Create {
            name,
            json,
            liveness,
            selfie_mask,
            review_band_fmr,
            review_on_status_unknown,
            review_four_eyes,
        } => {
            let band = review_band_fmr
                .map(|fmr| {
                    crate::domain::search::Rate(fmr)
                        .valid()
                        .map(crate::domain::search::Rate)
                        .with_context(|| format!("--review-band-fmr {fmr}: not a rate in (0, 1)"))
                })
                .transpose()?;
            let (tenant, key_id, key) = create_tenant_with(
                store.as_ref(),
                &name,
                TenantSettings {
                    liveness,
                    selfie_mask,
                    review_band_fmr: band,
                    review_on_status_unknown: review_on_status_unknown.then_some(true),
                    review_four_eyes: review_four_eyes.then_some(true),
                    ..TenantSettings::default()
                },
            )
            .await?;
            print_key(json, &tenant.id, &key_id, &key);
        }
        TenantCommand::List { json } => {
            let tenants = store.list_tenants().await?;
            for t in tenants {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"id": t.id, "name": t.name, "created_at": crate::domain::rfc3339(t.created_at)})
                    );
                } else {
                    println!(
                        "{}\t{}\t{}",
                        t.id,
                        t.name,
                        crate::domain::rfc3339(t.created_at)
                    );
                }
            }
        }
        TenantCommand::Key {
            command: KeyCommand::Create { tenant, json },
        } => {
            let tenant = match TenantId::parse(&tenant) {
                Some(id) => store.get_tenant(&id).await?,
                None => None,
            }
            .with_context(|| format!("no tenant {tenant}"))?;
            let (key_id, key) = create_api_key(store.as_ref(), &tenant.id).await?;
            print_key(json, &tenant.id, &key_id, &key);
        }
        TenantCommand::Key {
            command: KeyCommand::Revoke { key },
        } => {
            let revoked = revoke_api_key(store.as_ref(), &key).await?;
            anyhow::ensure!(revoked, "no live API key matches");
            println!("revoked");
        }
    }
    Ok(())
}

/// A tenant's new API key, shown once.
pub(super) fn print_key(json: bool, tenant_id: &TenantId, key_id: &str, key: &Secret<String>) {
    if json {
        println!(
            "{}",
            serde_json::json!({"tenant_id": tenant_id, "key_id": key_id, "api_key": key.expose()})
        );
    } else {
        println!("tenant_id: {tenant_id}\nkey_id:    {key_id}\napi_key:   {}\n(the API key is shown only now; store it safely)", key.expose());
    }
}
