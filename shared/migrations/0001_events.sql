-- Every accepted callback, once per (provider, idempotency_key): the Postgres backstop of dedup.
CREATE TABLE IF NOT EXISTS events (
    id               BIGSERIAL PRIMARY KEY,
    provider         TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    idempotency_key  TEXT        NOT NULL,
    request_id       TEXT        NOT NULL,
    raw_body         BYTEA       NOT NULL,
    payload          JSONB,
    headers          JSONB       NOT NULL DEFAULT '{}'::jsonb,
    status           TEXT        NOT NULL DEFAULT 'received',
    decision         JSONB,
    policy_version   INTEGER,
    received_at      TIMESTAMPTZ NOT NULL,
    processed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_provider_key UNIQUE (provider, idempotency_key)
);

CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_provider_kind ON events (provider, kind, received_at DESC);
CREATE INDEX IF NOT EXISTS events_status ON events (status, received_at DESC);
