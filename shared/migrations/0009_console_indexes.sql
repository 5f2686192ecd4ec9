-- Operator console (gateway/console): one index per filter, each ending in (received_at, id) so
-- that keyset pagination ("older than this row") is an index range scan, and an expression index
-- for "search by any id".

-- Every id an operator may paste: the idempotency key, the request id, and the values of id-like
-- keys anywhere in the parsed payload (txid, tss_request_id, trackingId, ...). An expression index
-- rather than a generated column: adding a stored column rewrites a large events table, an index
-- does not, and the key list can change by replacing the function and reindexing.
-- One JSON path walk (objects at any depth, their id-like keys, scalar values); duplicates are
-- harmless in a GIN index. No DISTINCT or set-returning join: this runs once per stored event.
-- Values are capped at 200 characters: a GIN entry has a size limit, and an oversized one would
-- make the event's INSERT fail.
CREATE OR REPLACE FUNCTION console_event_ids(idempotency_key text, request_id text, payload jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ARRAY[left(idempotency_key, 200), left(request_id, 200)] || ARRAY(SELECT jsonb_array_elements_text(jsonb_path_query_array(
        payload,
        'strict $.** ? (@.type() == "object").keyvalue() ? (
             @.key == "id" || @.key == "txid" || @.key == "txId" || @.key == "tx_id" || @.key == "txHash" ||
             @.key == "tx_hash" || @.key == "transaction_id" || @.key == "transactionId" ||
             @.key == "tss_request_id" || @.key == "trackingId" || @.key == "callBackId" ||
             @.key == "request_id" || @.key == "requestId" || @.key == "requestUUID" ||
             @.key == "order_id" || @.key == "orderId" || @.key == "withdraw_id" || @.key == "uid" ||
             @.key == "wallet_uuid" || @.key == "cobo_id" || @.key == "order_ref"
         ).value ? (@.type() == "number" || (@.type() == "string" && @ like_regex "^.{1,200}$"))')))
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
