-- Read side: event archive, processing history, user-defined read models.
-- Runs with search_path set to the bus schema; names are unqualified on purpose.

-- The archive is keyed by (tenant_id, event_id): event ids are unique per tenant, and a
-- client-chosen id in one tenant can never shadow (ON CONFLICT DO NOTHING) another's event.
CREATE TABLE events (
    tenant_id       text        NOT NULL,
    event_id        text        NOT NULL,
    stream_id       text,
    stream_name     text,
    event_type      text        NOT NULL,
    event_version   text,
    source          text,
    aggregate_id    text,
    aggregate_type  text,
    sequence_number bigint,
    correlation_id  text,
    causation_id    text,
    user_id         text,
    priority        text,
    schema_version  text,
    "time"          timestamptz NOT NULL,
    payload         jsonb,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    topic           text,
    "partition"     integer,
    "offset"        bigint,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);

CREATE INDEX events_by_time ON events (tenant_id, "time", event_id);
CREATE INDEX events_by_stream ON events (tenant_id, stream_id, "time", event_id);
CREATE INDEX events_by_aggregate ON events (tenant_id, aggregate_id, sequence_number, event_id);
CREATE INDEX events_by_type ON events (tenant_id, event_type text_pattern_ops);
CREATE INDEX events_by_correlation ON events (tenant_id, correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX events_payload ON events USING gin (payload jsonb_path_ops);

-- One row per (event, processor, stage, attempt); a stage's row is updated as it progresses.
CREATE TABLE processing_history (
    history_id        text        PRIMARY KEY,
    tenant_id         text        NOT NULL,
    event_id          text        NOT NULL,
    processor_id      text        NOT NULL,
    processing_stage  text        NOT NULL,
    status            text        NOT NULL,
    started_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    duration_ms       double precision,
    input_data        jsonb,
    output_data       jsonb,
    error             jsonb,
    retry_count       integer     NOT NULL DEFAULT 0,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX processing_history_by_event
    ON processing_history (tenant_id, event_id, started_at, history_id);

CREATE TABLE read_model_definitions (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE read_model_documents (
    tenant_id      text        NOT NULL,
    model_name     text        NOT NULL,
    doc_key        text        NOT NULL,
    document       jsonb       NOT NULL,
    last_event_id  text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model_name, doc_key),
    FOREIGN KEY (tenant_id, model_name)
        REFERENCES read_model_definitions (tenant_id, name) ON DELETE CASCADE
);
