-- jpki-face schema v1 (PostgreSQL). Times are Unix milliseconds (BIGINT), identical to the SQLite schema.
-- Personal data (identity, templates, the revocation target) is stored only as AES-256-GCM ciphertext
-- under a per-enrollment data key; `wrapped_dek` is that key wrapped by the configured KEK.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    key_hash    BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    purpose            TEXT NOT NULL CHECK (purpose IN ('enrollment', 'transaction')),
    subject_ref        TEXT,
    enrollment_id      TEXT,
    context            TEXT,
    client_token_hash  BYTEA NOT NULL UNIQUE,
    nonce              BYTEA NOT NULL,
    liveness           TEXT,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    consumed_at        BIGINT
);
CREATE INDEX sessions_tenant ON sessions(tenant_id, created_at);

CREATE TABLE enrollments (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    session_id           TEXT NOT NULL UNIQUE REFERENCES sessions(id),
    subject_ref          TEXT,
    status               TEXT NOT NULL,
    document             TEXT NOT NULL,
    identity_sealed      BYTEA,
    revocation_sealed    BYTEA,
    kek_id               TEXT,
    wrapped_dek          BYTEA,
    failed_count         BIGINT NOT NULL DEFAULT 0,
    failure_window_start BIGINT,
    locked_until         BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE INDEX enrollments_subject ON enrollments(tenant_id, subject_ref);

CREATE TABLE face_templates (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants(id),
    enrollment_id          TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    source                 TEXT NOT NULL CHECK (source IN ('enrollment_selfie', 'chip_photo')),
    model_id               TEXT NOT NULL,
    model_hash             TEXT NOT NULL,
    preprocessing_version  TEXT NOT NULL,
    sealed                 BYTEA NOT NULL,
    created_at             BIGINT NOT NULL
);
CREATE INDEX face_templates_enrollment ON face_templates(enrollment_id);

CREATE TABLE verifications (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id),
    session_id     TEXT UNIQUE REFERENCES sessions(id),
    decision       TEXT NOT NULL,
    document       TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX verifications_enrollment ON verifications(enrollment_id, created_at);

-- Append-only and hash-chained per tenant: hash = SHA-256(prev_hash || canonical row content).
CREATE TABLE audit_log (
    tenant_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    -- The resource the answer created (e.g. an enrollment id): deleting it deletes the answer too.
    resource_id   TEXT,
    request_hash  BYTEA NOT NULL,
    status        BIGINT NOT NULL,
    body          BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
