-- The selfie step (issue 25 item 7): a selfie the app posted on its own and that passed, kept sealed
-- with its session until the enrollment (or verify) uses it, the session is consumed, or it expires.
-- One row per session (a later passing post replaces it). Sealed under a per-session data key wrapped
-- by the KEK; nothing in it is readable without the key ring.
CREATE TABLE session_selfies (
    session_id   TEXT PRIMARY KEY REFERENCES sessions(id),
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    kek_id       TEXT NOT NULL,
    wrapped_dek  BYTEA NOT NULL,
    sealed       BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX session_selfies_expires ON session_selfies(tenant_id, expires_at);
