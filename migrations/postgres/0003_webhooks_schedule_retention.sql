-- Issue 13: signed webhooks with an outbox, scheduled status checks (現況確認), retention.

-- A tenant's webhook endpoints. The signing secret is sealed under the KEK (it must be readable to
-- sign); after a rotation the previous secret stays valid (signed with as well) until its expiry.
CREATE TABLE webhook_endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants(id),
    url                         TEXT NOT NULL,
    -- JSON array of event types.
    events                      TEXT NOT NULL,
    secret_sealed               BYTEA NOT NULL,
    previous_secret_sealed      BYTEA,
    previous_secret_expires_at  BIGINT,
    consecutive_failures        BIGINT NOT NULL DEFAULT 0,
    disabled_at                 BIGINT,
    disabled_reason             TEXT,
    created_at                  BIGINT NOT NULL,
    deleted_at                  BIGINT
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints(tenant_id);

-- The outbox: written in the transaction of the change that caused the event. `payload` is the
-- exact body sent (ids and statuses only, never personal data).
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_events_tenant ON webhook_events(tenant_id, created_at);

-- One event to one endpoint. A worker claims a due row by setting lease_until (FOR UPDATE SKIP
-- LOCKED on PostgreSQL); the retry budget (window_attempts, window_start) restarts on a manual retry.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id         TEXT NOT NULL REFERENCES webhook_events(id),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    window_attempts  BIGINT NOT NULL DEFAULT 0,
    window_start     BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_at);

-- What each attempt got: the status code or an error class, never the receiver's body.
CREATE TABLE webhook_attempts (
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    n            BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT,
    error_class  TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, n)
);

-- Scheduled status checks: when the enrollment is next due, and the lease of the replica checking it.
ALTER TABLE enrollments ADD COLUMN next_status_check_at BIGINT;
ALTER TABLE enrollments ADD COLUMN status_check_lease_until BIGINT;
CREATE INDEX enrollments_status_check ON enrollments(next_status_check_at);
CREATE INDEX verifications_tenant_created ON verifications(tenant_id, created_at);
CREATE INDEX sessions_expires ON sessions(tenant_id, expires_at);
