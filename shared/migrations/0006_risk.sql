-- Risk findings of stored events (asynchronous checks): one row per event and check, so a
-- re-run check records nothing twice. The event's status becomes `flagged` when it has any.
CREATE TABLE IF NOT EXISTS risk_findings (
    id              BIGSERIAL   PRIMARY KEY,
    provider        TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    check_name      TEXT        NOT NULL,
    severity        TEXT        NOT NULL,  -- alert | freeze
    detail          TEXT        NOT NULL,
    wallet          TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT risk_findings_event_check UNIQUE (provider, idempotency_key, check_name)
);

CREATE INDEX IF NOT EXISTS risk_findings_created ON risk_findings (created_at DESC);
CREATE INDEX IF NOT EXISTS risk_findings_wallet ON risk_findings (wallet, created_at DESC) WHERE wallet IS NOT NULL;
