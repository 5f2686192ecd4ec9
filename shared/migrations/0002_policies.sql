-- Published policy documents. Versions only grow: a rollback publishes the old document again.
CREATE TABLE IF NOT EXISTS policies (
    version       SERIAL      PRIMARY KEY,
    document      JSONB       NOT NULL,  -- the validated data (amounts as strings)
    source        TEXT        NOT NULL,  -- the text as published, comments included, for `policy show`
    sha256        TEXT        NOT NULL,  -- of the canonical JSON of `document`
    published_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_by  TEXT        NOT NULL,
    state         TEXT        NOT NULL CHECK (state IN ('active', 'shadow', 'retired'))
);

-- At most one active version: concurrent publishers cannot both win.
CREATE UNIQUE INDEX IF NOT EXISTS policies_one_active ON policies (state) WHERE state = 'active';
