-- Audit trail (ADR 0017): one append-only, gapless log per tenant ('' = requests that named no
-- tenant, e.g. a 401). `entry` holds the exact bytes that are hashed into the Merkle tree;
-- nothing else in these tables is trusted by `esb audit verify`.
CREATE TABLE IF NOT EXISTS audit_heads (
    log        text PRIMARY KEY,
    size       bigint NOT NULL DEFAULT 0          -- entries appended so far (next seq)
);
CREATE TABLE IF NOT EXISTS audit_entries (
    log        text   NOT NULL,
    seq        bigint NOT NULL,                   -- 0-based leaf index, gapless per log
    entry      bytea  NOT NULL,                   -- canonical JSON, hashed as the leaf
    leaf_hash  bytea  NOT NULL,                   -- SHA-256(0x00 || entry), kept for proofs
    PRIMARY KEY (log, seq)
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    log        text   NOT NULL,
    tree_size  bigint NOT NULL,
    root       bytea  NOT NULL,
    signed_at  timestamptz NOT NULL,
    key_id     text   NOT NULL,                   -- hex SHA-256 prefix of the public key
    signature  bytea  NOT NULL,                   -- Ed25519 over the checkpoint note
    PRIMARY KEY (log, tree_size)
);
-- append-only: the bus never updates or deletes audit rows; a trigger makes that explicit
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME;
END $$;
DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
