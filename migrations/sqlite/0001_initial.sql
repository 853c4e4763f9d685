-- jpki-face schema v1 (SQLite). Times are Unix milliseconds (INTEGER), identical to the PostgreSQL schema.
-- Personal data (identity, templates, the revocation target) is stored only as AES-256-GCM ciphertext
-- under a per-enrollment data key; `wrapped_dek` is that key wrapped by the configured KEK.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    key_hash    BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    purpose            TEXT NOT NULL CHECK (purpose IN ('enrollment', 'transaction')),
    subject_ref        TEXT,
    enrollment_id      TEXT,
    context            TEXT,
    client_token_hash  BLOB NOT NULL UNIQUE,
    nonce              BLOB NOT NULL,
    liveness           TEXT,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    consumed_at        INTEGER
);
CREATE INDEX sessions_tenant ON sessions(tenant_id, created_at);

CREATE TABLE enrollments (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    session_id           TEXT NOT NULL UNIQUE REFERENCES sessions(id),
    subject_ref          TEXT,
    status               TEXT NOT NULL,
    document             TEXT NOT NULL,
    identity_sealed      BLOB,
    revocation_sealed    BLOB,
    kek_id               TEXT,
    wrapped_dek          BLOB,
    failed_count         INTEGER NOT NULL DEFAULT 0,
    failure_window_start INTEGER,
    locked_until         INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER
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
    sealed                 BLOB NOT NULL,
    created_at             INTEGER NOT NULL
);
CREATE INDEX face_templates_enrollment ON face_templates(enrollment_id);

CREATE TABLE verifications (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id),
    session_id     TEXT UNIQUE REFERENCES sessions(id),
    decision       TEXT NOT NULL,
    document       TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX verifications_enrollment ON verifications(enrollment_id, created_at);

-- Append-only and hash-chained per tenant: hash = SHA-256(prev_hash || canonical row content).
CREATE TABLE audit_log (
    tenant_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    -- The resource the answer created (e.g. an enrollment id): deleting it deletes the answer too.
    resource_id   TEXT,
    request_hash  BLOB NOT NULL,
    status        INTEGER NOT NULL,
    body          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
