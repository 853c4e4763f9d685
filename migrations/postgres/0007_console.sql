-- Issue 22: the back-office console. Operators (per tenant, with a role), their sessions, and what
-- keeps every console page bounded at a million enrollments: keyset indexes, the reasons side table
-- and the per-day counters (both written by triggers in the enrollment's own transaction).

-- `password_hash` is an Argon2id PHC string; `totp_sealed` the TOTP secret sealed under the KEK;
-- `totp_last_step` the last accepted time step (a used step is refused: no replay). The lockout
-- counters are those of `lockout.rs`.
CREATE TABLE operators (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    login                 TEXT NOT NULL,
    role                  TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password_hash         TEXT NOT NULL,
    totp_sealed           BYTEA NOT NULL,
    totp_last_step        BIGINT,
    failed_count          BIGINT NOT NULL DEFAULT 0,
    failure_window_start  BIGINT,
    locked_until          BIGINT,
    created_at            BIGINT NOT NULL,
    disabled_at           BIGINT,
    UNIQUE (tenant_id, login)
);

-- A console session: only the SHA-256 of its 256-bit id is stored. `subject_filter` is the
-- enrollment list's subject-reference filter (sealed under the KEK), kept here so it never reaches a URL.
CREATE TABLE console_sessions (
    id_hash         BYTEA PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    operator_id     TEXT NOT NULL REFERENCES operators(id),
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    subject_filter  BYTEA
);
CREATE INDEX console_sessions_operator ON console_sessions(operator_id);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);

-- Keyset pagination of the enrollment list, newest first, with and without a status filter.
CREATE INDEX enrollments_tenant_created ON enrollments(tenant_id, created_at DESC, id DESC);
CREATE INDEX enrollments_tenant_status_created ON enrollments(tenant_id, status, created_at DESC, id DESC);

-- One row per reason of an enrollment: the reason filter walks an index instead of the documents.
CREATE TABLE enrollment_reasons (
    tenant_id      TEXT NOT NULL,
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    reason         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (enrollment_id, reason)
);
CREATE INDEX enrollment_reasons_filter ON enrollment_reasons(tenant_id, reason, created_at DESC, enrollment_id DESC);

-- Enrollments per creation day (days since the Unix epoch, UTC) and current status: the dashboard
-- reads at most 31 days × statuses rows.
CREATE TABLE enrollment_daily (
    tenant_id  TEXT NOT NULL,
    day        BIGINT NOT NULL,
    status     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, status)
);

-- An enrollment's page reads its own audit events; the dashboard counts a tenant's pending deliveries.
CREATE INDEX audit_log_subject ON audit_log(tenant_id, subject, seq);
CREATE INDEX webhook_deliveries_tenant_state ON webhook_deliveries(tenant_id, state);

CREATE FUNCTION enrollment_console_reasons() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM enrollment_reasons WHERE enrollment_id = NEW.id;
    END IF;
    INSERT INTO enrollment_reasons (tenant_id, enrollment_id, reason, created_at)
    SELECT NEW.tenant_id, NEW.id, r, NEW.created_at
    FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(NEW.document::jsonb -> 'reasons') = 'array'
             THEN NEW.document::jsonb -> 'reasons' ELSE '[]'::jsonb END) AS r
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION enrollment_console_daily() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        UPDATE enrollment_daily SET n = n - 1
        WHERE tenant_id = OLD.tenant_id AND day = OLD.created_at / 86400000 AND status = OLD.status;
    END IF;
    INSERT INTO enrollment_daily (tenant_id, day, status, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000, NEW.status, 1)
    ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = enrollment_daily.n + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER enrollments_console_reasons AFTER INSERT OR UPDATE OF document ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollment_console_reasons();
CREATE TRIGGER enrollments_console_daily_insert AFTER INSERT ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollment_console_daily();
CREATE TRIGGER enrollments_console_daily_update AFTER UPDATE OF status ON enrollments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION enrollment_console_daily();

-- The enrollments made before this migration.
INSERT INTO enrollment_reasons (tenant_id, enrollment_id, reason, created_at)
SELECT e.tenant_id, e.id, r, e.created_at
FROM enrollments e,
     jsonb_array_elements_text(
         CASE WHEN jsonb_typeof(e.document::jsonb -> 'reasons') = 'array'
              THEN e.document::jsonb -> 'reasons' ELSE '[]'::jsonb END) AS r
ON CONFLICT DO NOTHING;
INSERT INTO enrollment_daily (tenant_id, day, status, n)
SELECT tenant_id, created_at / 86400000, status, COUNT(*) FROM enrollments
GROUP BY tenant_id, created_at / 86400000, status;
