-- Withdrawals the merchant's backend registered before the provider asks about them.
CREATE TABLE IF NOT EXISTS expected_orders (
    id            BIGSERIAL   PRIMARY KEY,
    provider      TEXT        NOT NULL,
    order_ref     TEXT        NOT NULL,
    chain         TEXT        NOT NULL,
    asset         TEXT        NOT NULL,
    destination   TEXT        NOT NULL,
    amount        NUMERIC     NOT NULL,
    expires_at    TIMESTAMPTZ,
    confirmed_at  TIMESTAMPTZ,  -- set once a second confirmation consumed the order
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload       JSONB       NOT NULL DEFAULT '{}'::jsonb,  -- provider extras (UU Wallet tenantUserId)
    CONSTRAINT expected_orders_provider_ref UNIQUE (provider, order_ref)
);

CREATE INDEX IF NOT EXISTS expected_orders_created_at ON expected_orders (created_at DESC, id DESC);
