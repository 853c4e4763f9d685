-- Issue 21: 1:N face search. Nothing here holds a face vector or a name in clear.

-- The change feed of the in-memory galleries: one row per change to what a gallery holds, written
-- in the transaction of the change (an enrollment created with a template, its status changed, it
-- was shredded; a watchlist entry added or deleted). Ids and an operation only: every replica polls
-- `seq > last` and re-reads (and unseals) the row it names. Rows are pruned after a day.
-- Writers take a transaction-scoped advisory lock before inserting here, so sequence values commit
-- in order and a poller reading `seq > last` can never skip a row that commits later.
CREATE TABLE gallery_changes (
    seq         BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    -- 'enrollment' or 'watchlist'
    kind        TEXT NOT NULL CHECK (kind IN ('enrollment', 'watchlist')),
    subject_id  TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('upsert', 'remove')),
    at          BIGINT NOT NULL
);
CREATE INDEX gallery_changes_at ON gallery_changes(at);

-- Watchlist entries: a face, a label and a reason, each sealed under the entry's own data key
-- (wrapped by the KEK); deleting an entry drops the wrapped key and the sealed records.
CREATE TABLE watchlist_entries (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants(id),
    kek_id                 TEXT,
    wrapped_dek            BYTEA,
    template_sealed        BYTEA,
    label_sealed           BYTEA,
    reason_sealed          BYTEA,
    model_id               TEXT NOT NULL,
    model_hash             TEXT NOT NULL,
    preprocessing_version  TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    deleted_at             BIGINT
);
CREATE INDEX watchlist_entries_tenant ON watchlist_entries(tenant_id, created_at);
CREATE INDEX face_templates_source ON face_templates(source, enrollment_id);
