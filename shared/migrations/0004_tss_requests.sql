-- Cobo UCW: wallets (UCW wallet uuid -> Cobo WaaS vault) and the reconciled TSS requests.
-- The WaaS columns are the truth; reported_status is what the UCW client said, kept as information.
CREATE TABLE IF NOT EXISTS ucw_wallets (
    wallet_uuid  UUID        PRIMARY KEY,
    vault_id     TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tss_requests (
    wallet_uuid        UUID        NOT NULL REFERENCES ucw_wallets (wallet_uuid),
    tss_request_id     TEXT        NOT NULL,
    vault_id           TEXT        NOT NULL,
    -- The last number a UCW client reported (UCW SDK status, e.g. 130 Approving, 190 Completed).
    reported_status    INTEGER,
    first_reported_at  TIMESTAMPTZ NOT NULL,
    last_reported_at   TIMESTAMPTZ NOT NULL,
    -- WaaS `TSSRequestStatus` exactly as read (unknown values kept verbatim); NULL until first read.
    waas_status        TEXT,
    waas_terminal      BOOLEAN     NOT NULL DEFAULT false,
    waas_snapshot      JSONB,
    waas_synced_at     TIMESTAMPTZ,
    -- Set when the report and the WaaS state contradict each other (see shared.providers.cobo_ucw).
    disagreement       BOOLEAN     NOT NULL DEFAULT false,
    attempts           INTEGER     NOT NULL DEFAULT 0,
    last_error         TEXT,
    next_check_at      TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_uuid, tss_request_id)
);

-- WaaS webhooks name the TSS request only (no wallet, no vault).
CREATE INDEX IF NOT EXISTS tss_requests_request_id ON tss_requests (tss_request_id);
-- The pending-reconciliations gauge counts these.
CREATE INDEX IF NOT EXISTS tss_requests_open ON tss_requests (next_check_at) WHERE NOT waas_terminal;
