-- Issue 22: the back-office console. Operators (per tenant, with a role), their sessions, and what
-- keeps every console page bounded: keyset indexes, the reasons side table and the per-day counters
-- (both written by triggers in the enrollment's own transaction). Same schema as PostgreSQL's 0007.

CREATE TABLE operators (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    login                 TEXT NOT NULL,
    role                  TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password_hash         TEXT NOT NULL,
    totp_sealed           BLOB NOT NULL,
    totp_last_step        BIGINT,
    failed_count          BIGINT NOT NULL DEFAULT 0,
    failure_window_start  BIGINT,
    locked_until          BIGINT,
    created_at            BIGINT NOT NULL,
    disabled_at           BIGINT,
    UNIQUE (tenant_id, login)
);

CREATE TABLE console_sessions (
    id_hash         BLOB PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    operator_id     TEXT NOT NULL REFERENCES operators(id),
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    subject_filter  BLOB
);
CREATE INDEX console_sessions_operator ON console_sessions(operator_id);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);

CREATE INDEX enrollments_tenant_created ON enrollments(tenant_id, created_at DESC, id DESC);
CREATE INDEX enrollments_tenant_status_created ON enrollments(tenant_id, status, created_at DESC, id DESC);

CREATE TABLE enrollment_reasons (
    tenant_id      TEXT NOT NULL,
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    reason         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (enrollment_id, reason)
);
CREATE INDEX enrollment_reasons_filter ON enrollment_reasons(tenant_id, reason, created_at DESC, enrollment_id DESC);

CREATE TABLE enrollment_daily (
    tenant_id  TEXT NOT NULL,
    day        BIGINT NOT NULL,
    status     TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, status)
);

CREATE INDEX audit_log_subject ON audit_log(tenant_id, subject, seq);
CREATE INDEX webhook_deliveries_tenant_state ON webhook_deliveries(tenant_id, state);

CREATE TRIGGER enrollments_console_insert AFTER INSERT ON enrollments
BEGIN
    INSERT INTO enrollment_daily (tenant_id, day, status, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000, NEW.status, 1)
    ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = n + 1;
    INSERT OR IGNORE INTO enrollment_reasons (tenant_id, enrollment_id, reason, created_at)
    SELECT NEW.tenant_id, NEW.id, value, NEW.created_at FROM json_each(NEW.document, '$.reasons')
    WHERE json_type(NEW.document, '$.reasons') = 'array';
END;

CREATE TRIGGER enrollments_console_status AFTER UPDATE OF status ON enrollments
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE enrollment_daily SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND day = OLD.created_at / 86400000 AND status = OLD.status;
    INSERT INTO enrollment_daily (tenant_id, day, status, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000, NEW.status, 1)
    ON CONFLICT (tenant_id, day, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER enrollments_console_document AFTER UPDATE OF document ON enrollments
BEGIN
    DELETE FROM enrollment_reasons WHERE enrollment_id = NEW.id;
    INSERT OR IGNORE INTO enrollment_reasons (tenant_id, enrollment_id, reason, created_at)
    SELECT NEW.tenant_id, NEW.id, value, NEW.created_at FROM json_each(NEW.document, '$.reasons')
    WHERE json_type(NEW.document, '$.reasons') = 'array';
END;

INSERT OR IGNORE INTO enrollment_reasons (tenant_id, enrollment_id, reason, created_at)
SELECT e.tenant_id, e.id, j.value, e.created_at
FROM enrollments e, json_each(e.document, '$.reasons') j
WHERE json_type(e.document, '$.reasons') = 'array';
INSERT INTO enrollment_daily (tenant_id, day, status, n)
SELECT tenant_id, created_at / 86400000, status, COUNT(*) FROM enrollments
GROUP BY tenant_id, created_at / 86400000, status;
