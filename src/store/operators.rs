//! Console operators and their sessions (issue 22). The store keeps what the use case decided: the
//! lockout counters (compare-and-set on the counters read), the last accepted TOTP step (only
//! upwards, so a code cannot be used twice even by two replicas at once), the sessions by the hash
//! of their id.

use super::audit::{self, AuditEvent};
use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use crate::domain::{Millis, OperatorId, Role, TenantId};
use crate::lockout::Lockout;
use crate::redact::Secret;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewOperator {
    pub id: OperatorId,
    pub tenant_id: TenantId,
    pub login: String,
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: Secret<String>,
    /// The TOTP secret sealed under the KEK.
    pub totp_sealed: Vec<u8>,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct OperatorRow {
    pub id: OperatorId,
    pub tenant_id: TenantId,
    pub login: String,
    pub role: Role,
    pub password_hash: Secret<String>,
    pub totp_sealed: Secret<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub lockout: Lockout,
    pub created_at: Millis,
    pub disabled_at: Option<Millis>,
}

/// A session to open: the hash of its id and its absolute expiry.
#[derive(Debug, Clone)]
pub struct NewConsoleSession {
    pub id_hash: [u8; 32],
    pub tenant_id: TenantId,
    pub operator_id: OperatorId,
    pub created_at: Millis,
    pub expires_at: Millis,
}

#[derive(Debug, Clone)]
pub struct ConsoleSessionRow {
    pub tenant_id: TenantId,
    pub operator_id: OperatorId,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    pub expires_at: Millis,
    /// The enrollment list's subject filter, sealed under the KEK.
    pub subject_filter: Option<Secret<Vec<u8>>>,
}

#[async_trait::async_trait]
pub trait OperatorStore: Send + Sync {
    /// Inserts the operator with its audit event; `false` when the tenant already has this login.
    async fn create_operator(&self, op: &NewOperator, audit: &AuditEvent) -> StoreResult<bool>;
    async fn operator_by_login(
        &self,
        tenant_id: &TenantId,
        login: &str,
    ) -> StoreResult<Option<OperatorRow>>;
    async fn get_operator(
        &self,
        tenant_id: &TenantId,
        id: &OperatorId,
    ) -> StoreResult<Option<OperatorRow>>;
    async fn list_operators(&self, tenant_id: &TenantId) -> StoreResult<Vec<OperatorRow>>;
    /// Compare-and-set of the lockout counters from `old` to `new`, with the audit events; `false`
    /// when a concurrent attempt changed them first (nothing written).
    async fn record_login_failure(
        &self,
        tenant_id: &TenantId,
        id: &OperatorId,
        old: &Lockout,
        new: &Lockout,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// A successful login, in one transaction: takes TOTP step `step` (only if it is later than the
    /// last one taken), resets the lockout counters, opens the session and appends the audit event.
    /// `false`: the step was already used (a replay), nothing written.
    async fn start_console_session(
        &self,
        session: &NewConsoleSession,
        step: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    /// A live (not expired at `now`) session of an enabled operator, by the hash of its id.
    async fn console_session(
        &self,
        id_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<Option<(ConsoleSessionRow, OperatorRow)>>;
    async fn touch_console_session(&self, id_hash: &[u8; 32], now: Millis) -> StoreResult<()>;
    async fn set_console_subject_filter(
        &self,
        id_hash: &[u8; 32],
        sealed: Option<&[u8]>,
    ) -> StoreResult<()>;
    /// Ends a session (logout, idle expiry), with its audit event if given.
    async fn end_console_session(
        &self,
        id_hash: &[u8; 32],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()>;
    /// Disables an enabled operator and ends its sessions; `false` if none matched.
    async fn disable_operator(
        &self,
        tenant_id: &TenantId,
        id: &OperatorId,
        now: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
}

const OPERATOR_COLUMNS: &str = "o.id, o.tenant_id, o.login, o.role, o.password_hash, o.totp_sealed, o.totp_last_step, o.failed_count, o.failure_window_start, o.locked_until, o.created_at, o.disabled_at";

fn operator_from(r: &AnyRow) -> StoreResult<OperatorRow> {
    let role: String = r.try_get("role")?;
    Ok(OperatorRow {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        login: r.try_get("login")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown operator role {role:?}")))?,
        password_hash: Secret::new(r.try_get("password_hash")?),
        totp_sealed: Secret::new(r.try_get("totp_sealed")?),
        totp_last_step: r.try_get("totp_last_step")?,
        lockout: Lockout {
            failed_count: r.try_get("failed_count")?,
            failure_window_start: r.try_get("failure_window_start")?,
            locked_until: r.try_get("locked_until")?,
        },
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

impl SqlStore {
    /// The tenant's operator whose `column` (`id` or `login`, both unique per tenant) equals `value`.
    async fn one_operator(
        &self,
        tenant_id: &TenantId,
        column: &'static str,
        value: &str,
    ) -> StoreResult<Option<OperatorRow>> {
        let sql = format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators o WHERE o.tenant_id = $1 AND o.{column} = $2"
        );
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operator_from).transpose()
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait::async_trait]
impl OperatorStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_operator(&self, op: &NewOperator, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query("INSERT INTO operators (id, tenant_id, login, role, password_hash, totp_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&op.id)
            .bind(&op.tenant_id)
            .bind(&op.login)
            .bind(op.role.as_str())
            .bind(op.password_hash.expose())
            .bind(op.totp_sealed.as_slice())
            .bind(op.created_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn operator_by_login(
        &self,
        tenant_id: &TenantId,
        login: &str,
    ) -> StoreResult<Option<OperatorRow>> {
        self.one_operator(tenant_id, "login", login).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_operator(
        &self,
        tenant_id: &TenantId,
        id: &OperatorId,
    ) -> StoreResult<Option<OperatorRow>> {
        self.one_operator(tenant_id, "id", id.as_str()).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_operators(&self, tenant_id: &TenantId) -> StoreResult<Vec<OperatorRow>> {
        let sql = format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators o WHERE o.tenant_id = $1 ORDER BY o.login"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(operator_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn record_login_failure(
        &self,
        tenant_id: &TenantId,
        id: &OperatorId,
        old: &Lockout,
        new: &Lockout,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // NULL-safe comparison of the counters read: `IS NOT DISTINCT FROM` is PostgreSQL's, `IS`
        // SQLite's; COALESCE with a value no counter takes works on both.
        let n = sqlx::query("UPDATE operators SET failed_count = $1, failure_window_start = $2, locked_until = $3 WHERE tenant_id = $4 AND id = $5 AND failed_count = $6 AND COALESCE(failure_window_start, -1) = $7 AND COALESCE(locked_until, -1) = $8")
            .bind(new.failed_count)
            .bind(new.failure_window_start)
            .bind(new.locked_until)
            .bind(tenant_id)
            .bind(id)
            .bind(old.failed_count)
            .bind(old.failure_window_start.unwrap_or(-1))
            .bind(old.locked_until.unwrap_or(-1))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        audit::append_all_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn start_console_session(
        &self,
        s: &NewConsoleSession,
        step: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE operators SET totp_last_step = $1, failed_count = 0, failure_window_start = NULL, locked_until = NULL WHERE tenant_id = $2 AND id = $3 AND disabled_at IS NULL AND (totp_last_step IS NULL OR totp_last_step < $1)")
            .bind(step)
            .bind(&s.tenant_id)
            .bind(&s.operator_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        // Expired sessions of every operator go here, on a path that writes anyway (indexed).
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO console_sessions (id_hash, tenant_id, operator_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)")
            .bind(s.id_hash.as_slice())
            .bind(&s.tenant_id)
            .bind(&s.operator_id)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *tx)
            .await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn console_session(
        &self,
        id_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<Option<(ConsoleSessionRow, OperatorRow)>> {
        let sql = format!(
            "SELECT s.tenant_id AS s_tenant_id, s.operator_id AS s_operator_id, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, s.expires_at AS s_expires_at, s.subject_filter AS s_subject_filter, {OPERATOR_COLUMNS} FROM console_sessions s JOIN operators o ON o.id = s.operator_id AND o.tenant_id = s.tenant_id WHERE s.id_hash = $1 AND s.expires_at > $2 AND o.disabled_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(id_hash.as_slice())
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let session = ConsoleSessionRow {
                tenant_id: r.try_get("s_tenant_id")?,
                operator_id: r.try_get("s_operator_id")?,
                created_at: r.try_get("s_created_at")?,
                last_seen_at: r.try_get("s_last_seen_at")?,
                expires_at: r.try_get("s_expires_at")?,
                subject_filter: r
                    .try_get::<Option<Vec<u8>>, _>("s_subject_filter")?
                    .map(Secret::new),
            };
            Ok((session, operator_from(&r)?))
        })
        .transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn touch_console_session(&self, id_hash: &[u8; 32], now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn set_console_subject_filter(
        &self,
        id_hash: &[u8; 32],
        sealed: Option<&[u8]>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE console_sessions SET subject_filter = $1 WHERE id_hash = $2")
            .bind(sealed.map(<[u8]>::to_vec))
            .bind(id_hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn end_console_session(
        &self,
        id_hash: &[u8; 32],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash.as_slice())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let (Some(audit), true) = (audit, n > 0) {
            audit::append_in(&mut tx, self.dialect, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn disable_operator(
        &self,
        tenant_id: &TenantId,
        id: &OperatorId,
        now: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE operators SET disabled_at = $1 WHERE tenant_id = $2 AND id = $3 AND disabled_at IS NULL")
            .bind(now)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM console_sessions WHERE operator_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
