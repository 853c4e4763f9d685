//! Admin use cases: a tenant with its first API key, another API key, revoking one. A new key is
//! returned once; only its hash is stored. Used by `jpki-face tenant …` and `serve --demo-tenant`.

use crate::domain::{
    credential_hash, new_id, now_millis, prefix, IssuedCredential, TenantId, API_KEY_PREFIX,
};
use crate::redact::Secret;
use crate::store::{AuditEvent, KeyRef, Store, Tenant, TenantSettings};

/// A new tenant and its first API key. The key is returned once; only its hash is stored.
pub async fn create_tenant(
    store: &dyn Store,
    name: &str,
) -> anyhow::Result<(Tenant, String, Secret<String>)> {
    create_tenant_with(store, name, TenantSettings::default()).await
}

pub async fn create_tenant_with(
    store: &dyn Store,
    name: &str,
    settings: TenantSettings,
) -> anyhow::Result<(Tenant, String, Secret<String>)> {
    let tenant = Tenant {
        id: TenantId::new(),
        name: name.to_string(),
        settings,
        created_at: now_millis(),
    };
    store.create_tenant(&tenant).await?;
    let (key_id, key) = create_api_key(store, &tenant.id).await?;
    store
        .append_audit(&AuditEvent::new(
            &tenant.id,
            crate::domain::AuditKind::TenantCreated,
            tenant.id.as_str(),
            serde_json::json!({"key_id": key_id}),
        ))
        .await?;
    Ok((tenant, key_id, key))
}

pub async fn create_api_key(
    store: &dyn Store,
    tenant_id: &TenantId,
) -> anyhow::Result<(String, Secret<String>)> {
    let credential = IssuedCredential::new(API_KEY_PREFIX);
    let key_id = new_id(prefix::API_KEY);
    store
        .add_api_key(&key_id, tenant_id, &credential.hash, now_millis())
        .await?;
    Ok((key_id, credential.token))
}

/// Revokes a live API key given by its id (`key_…`) or by the key itself (`jfk_live_…`); false when
/// no live key matches.
pub async fn revoke_api_key(store: &dyn Store, key: &str) -> anyhow::Result<bool> {
    let revoked = if key.starts_with(API_KEY_PREFIX) {
        store
            .revoke_api_key(KeyRef::Hash(&credential_hash(key)), now_millis())
            .await?
    } else {
        store.revoke_api_key(KeyRef::Id(key), now_millis()).await?
    };
    Ok(revoked)
}
