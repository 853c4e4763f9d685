//! Console operators (issue 22): accounts per tenant with a role, a password hashed with Argon2id
//! and a TOTP secret sealed under the KEK; login with both, lockout after failed logins, sessions
//! with idle and absolute expiry. Every action is an audit event naming the operator.
//!
//! Argon2id parameters: m = 19 MiB, t = 2, p = 1 (the OWASP minimum for Argon2id); one hash takes
//! about 40 ms on the reference machine (docs/console.md), on a blocking thread. An unknown login
//! verifies against a dummy hash, so it costs the same as a wrong password.

use crate::crypto::KeyRing;
use crate::domain::{
    credential_hash, now_millis, random_bytes, AuditKind, Millis, OperatorId, Role, TenantId,
};
use crate::lockout::{Attempt, LockoutPolicy};
use crate::redact::Secret;
use crate::store::{AuditEvent, NewConsoleSession, NewOperator, OperatorRow, Store};
use crate::usecase::{Services, UseCaseError, UseCaseResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::sync::OnceLock;

/// `[console]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ConsoleSettings {
    /// A session unused for this long ends.
    pub idle_timeout_secs: u64,
    /// A session ends this long after login, used or not.
    pub absolute_timeout_secs: u64,
    /// Failed logins (wrong password or code) that lock an operator, and for how long.
    pub lockout: LockoutPolicy,
    /// The `Secure` attribute of the console's cookies. Only a development setup on plain HTTP
    /// whose browser refuses secure cookies there turns it off; production refuses `false`.
    pub cookie_secure: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 900,
            absolute_timeout_secs: 8 * 3600,
            lockout: LockoutPolicy {
                max_failures: 5,
                window_secs: 900,
                lock_secs: 900,
            },
            cookie_secure: true,
        }
    }
}

impl ConsoleSettings {
    pub fn validate(
        &self,
        environment: crate::domain::Environment,
    ) -> Result<(), (&'static str, String)> {
        if self.idle_timeout_secs == 0 || self.idle_timeout_secs > self.absolute_timeout_secs {
            return Err((
                "console.idle_timeout_secs",
                "must be at least 1 and at most console.absolute_timeout_secs".into(),
            ));
        }
        if self.lockout.max_failures < 1 {
            return Err(("console.lockout.max_failures", "must be at least 1".into()));
        }
        if !self.cookie_secure && environment == crate::domain::Environment::Production {
            return Err((
                "console.cookie_secure",
                "must be true when environment = \"production\"".into(),
            ));
        }
        Ok(())
    }
}

/// The issuer name shown by authenticator apps.
pub const TOTP_ISSUER: &str = "jpki-face";
/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;
/// A session's last-seen time is written at most this often (a page view is a read, not a write),
/// or every half idle timeout if that is shorter.
const TOUCH_EVERY_MS: Millis = 60_000;

fn argon2() -> Argon2<'static> {
    // Constants within Argon2's bounds: cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of a new password hash (on a blocking thread: ~40 ms of CPU and 19 MiB).
pub async fn hash_password(password: Secret<String>) -> UseCaseResult<Secret<String>> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&random_bytes::<16>())
            .map_err(|e| UseCaseError::internal(anyhow::anyhow!("salt: {e}")))?;
        argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| Secret::new(h.to_string()))
            .map_err(|e| UseCaseError::internal(anyhow::anyhow!("argon2: {e}")))
    })
    .await
    .map_err(UseCaseError::internal)?
}

/// Whether `password` matches the PHC string (on a blocking thread). A malformed stored hash matches
/// nothing.
async fn verify_password(phc: Secret<String>, password: Secret<String>) -> UseCaseResult<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(phc.expose()).is_ok_and(|hash| {
            argon2()
                .verify_password(password.expose().as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
    .map_err(UseCaseError::internal)
}

/// A hash nobody's password matches, verified for unknown logins so they take as long as known ones.
async fn dummy_hash() -> UseCaseResult<Secret<String>> {
    static DUMMY: OnceLock<Secret<String>> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let h = hash_password(Secret::new(hex::encode(random_bytes::<16>()))).await?;
    Ok(DUMMY.get_or_init(|| h).clone())
}

fn totp_context<'a>(tenant_id: &'a TenantId, id: &'a OperatorId) -> [&'a str; 3] {
    [tenant_id.as_str(), id.as_str(), "operator_totp"]
}

/// Login names are staff handles: letters, digits, `.`, `_`, `-`, at most 64.
pub fn valid_login(login: &str) -> bool {
    (1..=64).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub struct NewOperatorRequest {
    pub login: String,
    pub role: Role,
    pub password: Secret<String>,
}

/// A new operator and its TOTP secret, shown once.
pub struct CreatedOperator {
    pub id: OperatorId,
    pub tenant_id: TenantId,
    pub login: String,
    pub role: Role,
    /// Base32, as authenticator apps take it.
    pub totp_secret: Secret<String>,
    pub otpauth_uri: Secret<String>,
}

/// Creates an operator (by the CLI: `by` is `None`; by an admin in the console: `Some`).
pub async fn create_operator(
    store: &dyn Store,
    keys: &KeyRing,
    tenant_id: &TenantId,
    req: NewOperatorRequest,
    by: Option<&OperatorId>,
) -> UseCaseResult<CreatedOperator> {
    if !valid_login(&req.login) {
        return Err(UseCaseError::Malformed(
            "login: 1 to 64 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    let chars = req.password.expose().chars().count();
    if chars < MIN_PASSWORD_CHARS || req.password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(UseCaseError::Malformed(format!(
            "password: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if store.get_tenant(tenant_id).await?.is_none() {
        return Err(UseCaseError::NotFound);
    }
    let id = OperatorId::new();
    let secret = crate::totp::new_secret();
    let password_hash = hash_password(req.password).await?;
    let operator = NewOperator {
        id: id.clone(),
        tenant_id: tenant_id.clone(),
        login: req.login.clone(),
        role: req.role,
        password_hash,
        totp_sealed: keys.seal_system(&totp_context(tenant_id, &id), &secret),
        created_at: now_millis(),
    };
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::OperatorCreated,
        id.as_str(),
        serde_json::json!({"role": req.role.as_str(), "by": by}),
    );
    if !store.create_operator(&operator, &audit).await? {
        return Err(UseCaseError::Malformed(
            "login: this tenant already has an operator with this login".into(),
        ));
    }
    Ok(CreatedOperator {
        id,
        tenant_id: tenant_id.clone(),
        login: req.login.clone(),
        role: req.role,
        totp_secret: Secret::new(crate::totp::secret_base32(&secret)),
        otpauth_uri: Secret::new(crate::totp::otpauth_uri(TOTP_ISSUER, &req.login, &secret)),
    })
}

pub struct LoginRequest {
    pub tenant: String,
    pub login: String,
    pub password: Secret<String>,
    pub totp: Secret<String>,
}

/// A session just opened: its token goes into the cookie, once.
pub struct StartedSession {
    pub token: Secret<String>,
    pub operator_id: OperatorId,
}

/// Why a login was refused (audited; the operator is only ever told "refused").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Password,
    Totp,
    TotpReplayed,
    Locked,
    Disabled,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Password => "password",
            Refusal::Totp => "totp",
            Refusal::TotpReplayed => "totp_replayed",
            Refusal::Locked => "locked",
            Refusal::Disabled => "disabled",
        }
    }

    /// Wrong credentials count towards the lock; a locked or disabled account's attempts do not.
    fn counts(self) -> bool {
        matches!(
            self,
            Refusal::Password | Refusal::Totp | Refusal::TotpReplayed
        )
    }
}

/// Password and TOTP code; `None` when refused, for whatever reason.
pub async fn login(svc: &Services, req: LoginRequest) -> UseCaseResult<Option<StartedSession>> {
    let now = now_millis();
    let operator = match TenantId::parse(req.tenant.trim()) {
        Some(tenant) if valid_login(&req.login) => {
            svc.store.operator_by_login(&tenant, &req.login).await?
        }
        _ => None,
    };
    let Some(op) = operator else {
        verify_password(dummy_hash().await?, req.password).await?;
        return Ok(None);
    };
    let policy = &svc.settings.console.lockout;
    // The password is verified whatever else is wrong, so every refusal takes as long.
    let password_ok = verify_password(op.password_hash.clone(), req.password).await?;
    let step = svc
        .keys
        .open_system(
            &totp_context(&op.tenant_id, &op.id),
            op.totp_sealed.expose(),
        )
        .map_err(UseCaseError::internal)
        .map(|secret| crate::totp::matching_step(&secret, req.totp.expose(), now / 1000))?;
    let refusal = if op.disabled_at.is_some() {
        Some(Refusal::Disabled)
    } else if policy.locked_for(&op.lockout, now).is_some() {
        Some(Refusal::Locked)
    } else if !password_ok {
        Some(Refusal::Password)
    } else {
        match step {
            None => Some(Refusal::Totp),
            Some(s) if op.totp_last_step.is_some_and(|last| s <= last) => {
                Some(Refusal::TotpReplayed)
            }
            Some(_) => None,
        }
    };
    if let (None, Some(step)) = (refusal, step) {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let session = NewConsoleSession {
            id_hash: credential_hash(&token),
            tenant_id: op.tenant_id.clone(),
            operator_id: op.id.clone(),
            created_at: now,
            expires_at: now + (svc.settings.console.absolute_timeout_secs as Millis) * 1000,
        };
        let audit = AuditEvent::new(
            &op.tenant_id,
            AuditKind::OperatorLogin,
            op.id.as_str(),
            serde_json::json!({"role": op.role.as_str()}),
        );
        if svc
            .store
            .start_console_session(&session, step, &audit)
            .await?
        {
            return Ok(Some(StartedSession {
                token: Secret::new(token),
                operator_id: op.id,
            }));
        }
        // A concurrent login took this step first: a replay.
        refuse(svc, &op, Refusal::TotpReplayed, policy, now).await?;
        return Ok(None);
    }
    refuse(svc, &op, refusal.unwrap_or(Refusal::Totp), policy, now).await?;
    Ok(None)
}

async fn refuse(
    svc: &Services,
    op: &OperatorRow,
    why: Refusal,
    policy: &LockoutPolicy,
    now: Millis,
) -> UseCaseResult<()> {
    let next = if why.counts() {
        policy.next(&op.lockout, Attempt::NoMatch, now)
    } else {
        op.lockout
    };
    let mut audit = vec![AuditEvent::new(
        &op.tenant_id,
        AuditKind::OperatorLoginFailed,
        op.id.as_str(),
        serde_json::json!({"cause": why.as_str(), "failed_count": next.failed_count}),
    )];
    let newly_locked =
        policy.locked_for(&next, now).is_some() && policy.locked_for(&op.lockout, now).is_none();
    if newly_locked {
        audit.push(AuditEvent::new(
            &op.tenant_id,
            AuditKind::OperatorLocked,
            op.id.as_str(),
            serde_json::json!({"locked_until": next.locked_until.map(crate::domain::rfc3339)}),
        ));
    }
    // A concurrent failure that changed the counters first wins; this one is then not counted.
    svc.store
        .record_login_failure(&op.tenant_id, &op.id, &op.lockout, &next, &audit)
        .await?;
    Ok(())
}

/// The operator behind a live session.
#[derive(Debug, Clone)]
pub struct ConsoleOperator {
    pub id: OperatorId,
    pub tenant_id: TenantId,
    pub login: String,
    pub role: Role,
}

/// A live session, as the console's pages see it.
pub struct ConsoleSession {
    pub id_hash: [u8; 32],
    pub operator: ConsoleOperator,
    /// The enrollment list's subject filter, if set.
    pub subject_filter: Option<Secret<String>>,
}

fn filter_context(tenant_id: &TenantId) -> [&str; 2] {
    [tenant_id.as_str(), "console_subject_filter"]
}

/// The session of `token`, if it is live: not past its absolute expiry, used within the idle
/// timeout, its operator enabled. An idle session is ended here.
pub async fn session(svc: &Services, token: &str) -> UseCaseResult<Option<ConsoleSession>> {
    let now = now_millis();
    let id_hash = credential_hash(token);
    let Some((row, op)) = svc.store.console_session(&id_hash, now).await? else {
        return Ok(None);
    };
    let idle_ms = (svc.settings.console.idle_timeout_secs as Millis) * 1000;
    if now - row.last_seen_at > idle_ms {
        svc.store.end_console_session(&id_hash, None).await?;
        return Ok(None);
    }
    if now - row.last_seen_at > TOUCH_EVERY_MS.min(idle_ms / 2) {
        svc.store.touch_console_session(&id_hash, now).await?;
    }
    let subject_filter = row
        .subject_filter
        .as_ref()
        .and_then(|sealed| {
            svc.keys
                .open_system(&filter_context(&op.tenant_id), sealed.expose())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Secret::new);
    Ok(Some(ConsoleSession {
        id_hash,
        operator: ConsoleOperator {
            id: op.id,
            tenant_id: op.tenant_id,
            login: op.login,
            role: op.role,
        },
        subject_filter,
    }))
}

/// Sets (or with `None` clears) the session's subject-reference filter, sealed.
pub async fn set_subject_filter(
    svc: &Services,
    session: &ConsoleSession,
    subject_ref: Option<&str>,
) -> UseCaseResult<()> {
    let sealed = subject_ref.map(|s| {
        svc.keys
            .seal_system(&filter_context(&session.operator.tenant_id), s.as_bytes())
    });
    svc.store
        .set_console_subject_filter(&session.id_hash, sealed.as_deref())
        .await?;
    Ok(())
}

pub async fn logout(svc: &Services, session: &ConsoleSession) -> UseCaseResult<()> {
    let audit = AuditEvent::new(
        &session.operator.tenant_id,
        AuditKind::OperatorLogout,
        session.operator.id.as_str(),
        serde_json::json!({}),
    );
    svc.store
        .end_console_session(&session.id_hash, Some(&audit))
        .await?;
    Ok(())
}

/// An operator as the operators page lists it.
pub struct OperatorView {
    pub id: OperatorId,
    pub login: String,
    pub role: Role,
    pub created_at: Millis,
    pub disabled: bool,
    pub locked: bool,
}

pub async fn list(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<Vec<OperatorView>> {
    let now = now_millis();
    let policy = &svc.settings.console.lockout;
    Ok(svc
        .store
        .list_operators(tenant_id)
        .await?
        .into_iter()
        .map(|o| OperatorView {
            locked: policy.locked_for(&o.lockout, now).is_some(),
            id: o.id,
            login: o.login,
            role: o.role,
            created_at: o.created_at,
            disabled: o.disabled_at.is_some(),
        })
        .collect())
}

/// Disables an operator of the tenant (not oneself) and ends its sessions.
pub async fn disable(
    svc: &Services,
    tenant_id: &TenantId,
    id: &OperatorId,
    by: &OperatorId,
) -> UseCaseResult<()> {
    if id == by {
        return Err(UseCaseError::Malformed(
            "an operator cannot disable itself".into(),
        ));
    }
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::OperatorDisabled,
        id.as_str(),
        serde_json::json!({"by": by}),
    );
    if svc
        .store
        .disable_operator(tenant_id, id, now_millis(), &audit)
        .await?
    {
        Ok(())
    } else {
        Err(UseCaseError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_are_plain_handles() {
        assert!(valid_login("alice.b-2_x"));
        assert!(!valid_login(""));
        assert!(!valid_login("a b"));
        assert!(!valid_login("<script>"));
        assert!(!valid_login(&"a".repeat(65)));
    }

    #[tokio::test]
    async fn passwords_hash_to_argon2id_phc_strings_that_verify() {
        let phc = hash_password(Secret::new("correct horse battery".into()))
            .await
            .unwrap();
        assert!(phc.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify_password(phc.clone(), Secret::new("correct horse battery".into()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(phc, Secret::new("wrong horse battery".into()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(Secret::new("not a hash".into()), Secret::new("x".into()))
                .await
                .unwrap()
        );
    }

    #[test]
    fn production_refuses_insecure_cookies() {
        let mut s = ConsoleSettings::default();
        assert!(s.validate(crate::domain::Environment::Production).is_ok());
        s.cookie_secure = false;
        assert!(s.validate(crate::domain::Environment::Development).is_ok());
        assert_eq!(
            s.validate(crate::domain::Environment::Production)
                .unwrap_err()
                .0,
            "console.cookie_secure"
        );
    }
}
