-- One data key per data subject and tenant, wrapped under the master key (docs/adr/0018).
-- Erasure sets wrapped_dek to NULL: every value sealed under the key becomes unreadable.
CREATE TABLE IF NOT EXISTS subject_keys (
    tenant_id   text NOT NULL,
    subject_id  text NOT NULL,
    kid         text NOT NULL,
    wrapped_dek bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    PRIMARY KEY (tenant_id, kid)
);
-- at most one live key per subject: concurrent first publishes agree on it
CREATE UNIQUE INDEX IF NOT EXISTS subject_keys_live
    ON subject_keys (tenant_id, subject_id) WHERE erased_at IS NULL;
