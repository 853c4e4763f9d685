-- Review (issue 22): the evidence a reviewer looks at and the approvals of the four-eyes rule.
--
-- review_evidence: the chip photo and the selfie of an enrollment in review, as browser-displayable
-- JPEG sealed under the enrollment's data key. Deleted with the decision (same transaction), by the
-- retention job at expires_at, and with the enrollment. Nothing else in the database holds an image.
CREATE TABLE review_evidence (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id),
    kind           TEXT NOT NULL CHECK (kind IN ('chip_photo', 'selfie')),
    sealed         BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, enrollment_id, kind)
);
CREATE INDEX review_evidence_expires ON review_evidence(tenant_id, expires_at);

-- review_approvals: every approve of an enrollment in review, one per reviewer (the four-eyes rule:
-- the unique constraint makes a second approve by the same reviewer impossible). reviewer holds ids
-- only (operator id, or API key id and the RP's opaque reviewer ref); the note is sealed under the
-- enrollment's data key.
CREATE TABLE review_approvals (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    enrollment_id  TEXT NOT NULL REFERENCES enrollments(id),
    reviewer_key   TEXT NOT NULL,
    reviewer       TEXT NOT NULL,
    reason_code    TEXT NOT NULL,
    note_sealed    BYTEA,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, enrollment_id, reviewer_key)
);

-- The review queue, oldest first (keyset pagination on (created_at, id)).
CREATE INDEX enrollments_in_review ON enrollments(tenant_id, created_at, id) WHERE status = 'in_review';
