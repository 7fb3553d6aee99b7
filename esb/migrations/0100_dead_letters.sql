-- Dead letters indexed for the API; the record itself stays byte-exact (key, value, headers).
CREATE TABLE IF NOT EXISTS dead_letters (
    dlq_id            text PRIMARY KEY,            -- deterministic: origin topic/partition/offset/stage
    tenant_id         text NOT NULL,               -- '' when the record named no tenant
    event_id          text,
    event_type        text,
    stream            text,
    reason            text NOT NULL,
    stage             text NOT NULL,
    error             text NOT NULL,
    attempts          integer NOT NULL,
    origin_topic      text NOT NULL,
    origin_partition  integer NOT NULL,
    origin_offset     bigint NOT NULL,
    destination       text NOT NULL,
    first_failure_at  timestamptz NOT NULL,
    last_failure_at   timestamptz NOT NULL,
    record_key        bytea,
    record_value      bytea,
    record_headers    jsonb NOT NULL,              -- [[name, base64 value], …] in original order
    dlq_topic         text NOT NULL,
    dlq_partition     integer NOT NULL,
    dlq_offset        bigint NOT NULL,
    status            text NOT NULL DEFAULT 'DEAD',  -- DEAD | REDRIVEN
    redrive_count     integer NOT NULL DEFAULT 0,
    redriven_at       timestamptz
);
CREATE INDEX IF NOT EXISTS dead_letters_tenant_time ON dead_letters (tenant_id, last_failure_at DESC);
CREATE INDEX IF NOT EXISTS dead_letters_tenant_event ON dead_letters (tenant_id, event_id);
