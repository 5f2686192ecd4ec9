-- Operator console (gateway/console): one index per filter, each ending in (received_at, id) so
-- that keyset pagination ("older than this row") is an index range scan, and an expression index
-- for "search by any id".

-- Every id an operator may paste: the idempotency key, the request id, and the values of id-like
-- keys anywhere in the parsed payload (txid, tss_request_id, trackingId, ...). An expression index
-- rather than a generated column: adding a stored column rewrites a large events table, an index
-- does not, and the key list can change by replacing the function and reindexing.
CREATE OR REPLACE FUNCTION console_event_ids(idempotency_key text, request_id text, payload jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT array_agg(DISTINCT v) FROM (
        SELECT idempotency_key AS v
        UNION ALL SELECT request_id
        UNION ALL
        SELECT e.value #>> '{}'
        FROM jsonb_path_query(coalesce(payload, '{}'::jsonb), 'strict $.** ? (@.type() == "object")') AS o (obj),
             jsonb_each(o.obj) AS e
        WHERE e.key IN ('id', 'txid', 'txId', 'tx_id', 'txHash', 'tx_hash', 'transaction_id', 'transactionId',
                        'tss_request_id', 'trackingId', 'callBackId', 'request_id', 'requestId', 'requestUUID',
                        'order_id', 'orderId', 'withdraw_id', 'uid', 'wallet_uuid', 'cobo_id', 'order_ref')
          AND jsonb_typeof(e.value) IN ('string', 'number')
    ) AS ids
    WHERE v IS NOT NULL AND v <> '' AND length(v) <= 200
$$;

CREATE INDEX IF NOT EXISTS events_console_ids
    ON events USING gin (console_event_ids(idempotency_key, request_id, payload));
CREATE INDEX IF NOT EXISTS events_console_provider ON events (provider, received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_console_provider_kind ON events (provider, kind, received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_console_kind ON events (kind, received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS events_console_status ON events (status, received_at DESC, id DESC);

-- Dead letters still open (the console's list and its count); TSS requests, latest first.
CREATE INDEX IF NOT EXISTS dead_letters_console_open ON dead_letters (created_at DESC, id DESC) WHERE replayed_at IS NULL;
CREATE INDEX IF NOT EXISTS tss_requests_console_updated ON tss_requests (updated_at DESC, tss_request_id);
