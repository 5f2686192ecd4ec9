-- Downstream notifications: subscribers, the outbox (one row per event and subscriber), every
-- delivery attempt, and dead letters of any job (re-enqueued by `callgate replay`).

CREATE TABLE IF NOT EXISTS subscribers (
    id                         BIGSERIAL PRIMARY KEY,
    name                       TEXT        NOT NULL UNIQUE,
    url                        TEXT        NOT NULL,
    -- Standard Webhooks secrets (`whsec_<base64>`). While the previous one has not expired,
    -- every delivery carries a signature by each, so receivers can rotate without a gap.
    secret                     TEXT        NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    -- Empty: every event. Otherwise exact types (`wyre.transaction.confirmed`), provider
    -- prefixes (`wyre.*`) or `*`.
    event_types                TEXT[]      NOT NULL DEFAULT '{}',
    enabled                    BOOLEAN     NOT NULL DEFAULT true,
    disabled_reason            TEXT,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS notifications (
    -- The `webhook-id`: fixed when the row is written, so every retry and replay carries it.
    id              TEXT        PRIMARY KEY,
    subscriber_id   BIGINT      NOT NULL REFERENCES subscribers (id),
    event_id        BIGINT      NOT NULL REFERENCES events (id),
    event_type      TEXT        NOT NULL,
    payload         JSONB       NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending',  -- pending | delivered | dead
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    CONSTRAINT notifications_event_subscriber UNIQUE (event_id, subscriber_id)
);

CREATE INDEX IF NOT EXISTS notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS notifications_subscriber ON notifications (subscriber_id, created_at);
CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_at);

CREATE TABLE IF NOT EXISTS delivery_attempts (
    id              BIGSERIAL   PRIMARY KEY,
    notification_id TEXT        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         INTEGER     NOT NULL,
    attempted_at    TIMESTAMPTZ NOT NULL,
    duration_ms     INTEGER     NOT NULL,
    status_code     INTEGER,
    outcome         TEXT        NOT NULL,
    error           TEXT
);

CREATE INDEX IF NOT EXISTS delivery_attempts_notification ON delivery_attempts (notification_id, attempt);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGSERIAL   PRIMARY KEY,
    job         TEXT        NOT NULL,  -- the job name a replay enqueues
    ref         TEXT        NOT NULL,  -- what it was about (a notification id, an event key, ...)
    args        JSONB       NOT NULL,  -- the job's positional arguments
    reason      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    replayed_at TIMESTAMPTZ
);

-- One open dead letter per job and subject; a replayed one may die again and get a new row.
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_open ON dead_letters (job, ref) WHERE replayed_at IS NULL;
CREATE INDEX IF NOT EXISTS dead_letters_created ON dead_letters (created_at);
