-- Idempotency keys become reservations (issue 15): scoped by tenant, credential and route; a request
-- reserves its key (state in_progress) before it runs, and the answer is stored in the same transaction
-- as the write it answers (state done). Earlier answers (at most 24 h old) are dropped with the old table.
DROP TABLE idempotency_keys;

CREATE TABLE idempotency_keys (
    tenant_id       TEXT NOT NULL,
    -- The credential that used the key (key:<api key id> or session:<session id>) and METHOD /route.
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    BYTEA NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    -- An in_progress reservation past this time belongs to a request that died and may be taken over.
    reserved_until  BIGINT NOT NULL,
    status          BIGINT,
    -- The answer, AES-256-GCM: under the KEK, or under the data key of the enrollment named in
    -- sealed_under (then crypto-shredding that enrollment destroys it).
    body            BYTEA,
    sealed_under    TEXT,
    -- The resource the answer created: deleting it deletes this row.
    resource_id     TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, key)
);
CREATE INDEX idempotency_keys_resource ON idempotency_keys(tenant_id, resource_id);
CREATE INDEX idempotency_keys_sealed_under ON idempotency_keys(tenant_id, sealed_under);
