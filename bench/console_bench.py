"""Operator console benchmark: render time of its main pages over a million events.

A private database is created on the local PostgreSQL (dropped afterwards), migrated, and filled
with one `INSERT ... SELECT generate_series` of events spread over 30 days (7 providers, their
kinds and statuses, decisions on the synchronous ones, ids in the payload), plus subscribers,
notifications, dead letters, TSS requests and policy versions. The real console app is then
served on a local port and each page is fetched through HTTP, logged in, as a browser would.
Prints the figures and writes them to bench/results/console_bench.json.

    python -m bench.console_bench [--events 1000000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import secrets
import statistics
import time
from pathlib import Path

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.harness import private_database
from gateway.console.app import create_console_app
from gateway.console.keys import ConsoleOptions
from shared.config import Settings
from shared.db import migrate

RESULTS = Path(__file__).parent / "results" / "console_bench.json"
ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "console-bench-" + secrets.token_hex(8)
Client = TestClient[web.Request, web.Application]

# One statement: row n gets provider n % 7, a time spread over 30 days, a txid and a trackingId.
_EVENTS = """
INSERT INTO events (provider, kind, idempotency_key, request_id, raw_body, payload, headers, status,
                    decision, policy_version, received_at, processed_at)
SELECT (ARRAY['wyre', 'cobo_tss', 'cobo_ucw', 'cobo_waas', 'chainup_cosigner', 'chainup_waas', 'uuwallet'])
           [n % 7 + 1],
       (ARRAY['transaction.confirmed', 'keysign', 'tss_request', 'webhook', 'withdraw', 'deposit',
              'withdraw_confirm'])[n % 7 + 1],
       'key-' || n, 'req-' || n,
       convert_to('{"id":"TR_' || n || '","status":"CONFIRMED"}', 'UTF8'),
       jsonb_build_object('txid', '0x' || md5(n::text), 'data', jsonb_build_object('trackingId', 'trk-' || n),
                          'amount', (n % 1000)::text, 'status', 'CONFIRMED'),
       '{"content-type": "application/json"}'::jsonb,
       (ARRAY['received','received','received','reconciling','stored'])[n % 5 + 1],
       CASE WHEN n % 7 IN (1, 4, 6) THEN jsonb_build_object(
           'action', CASE WHEN n % 11 = 0 THEN 'REJECT' ELSE 'APPROVE' END,
           'reasons', jsonb_build_array(jsonb_build_object('code', 'ok', 'rule', 'r' || n % 50, 'detail', '')),
           'policy_version', 2) END,
       CASE WHEN n % 7 IN (1, 4, 6) THEN 2 END,
       now() - (n::float8 / $1) * interval '30 days',
       now()
FROM generate_series(1, $1) AS n
"""
_SIDE = """
INSERT INTO subscribers (name, url, secret) SELECT 'sub-' || s, 'https://sub' || s || '.example/hook',
    'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' FROM generate_series(1, 5) AS s;
INSERT INTO notifications (id, subscriber_id, event_id, event_type, payload, status, attempts, created_at)
SELECT 'msg_' || e.id || '_' || s, s, e.id, e.provider || '.' || e.kind, '{}'::jsonb,
       CASE WHEN e.id % 100 = 0 THEN 'dead' ELSE 'delivered' END, 1, e.received_at
FROM events e, generate_series(1, 5) AS s WHERE e.id % 10 = 0;
INSERT INTO dead_letters (job, ref, args, reason, created_at)
SELECT 'deliver_notification', id, jsonb_build_array(id), 'HTTP 500 after 8 attempts', created_at
FROM notifications WHERE status = 'dead';
INSERT INTO ucw_wallets (wallet_uuid, vault_id) VALUES ('00000000-0000-0000-0000-000000000001', 'vault-1');
INSERT INTO tss_requests (wallet_uuid, tss_request_id, vault_id, reported_status, first_reported_at,
                          last_reported_at, waas_status, waas_terminal, disagreement, updated_at)
SELECT '00000000-0000-0000-0000-000000000001', 'req-' || n, 'vault-1', 190, now(), now(),
       'Success', n % 3 <> 0, n % 97 = 0, now() - n * interval '1 minute'
FROM generate_series(1, 20000) AS n;
INSERT INTO policies (document, source, sha256, published_by, state) VALUES
    ('{}', 'limits:\n  ETH: 1\n', 'a', 'bench', 'retired'),
    ('{}', 'limits:\n  ETH: 2\n', 'b', 'bench', 'active'),
    ('{}', 'limits:\n  ETH: 3\n', 'c', 'bench', 'shadow');
"""


async def _fill(dsn: str, events: int) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("SET maintenance_work_mem = '512MB'")
        # Indexes are built after the bulk load (as a restore would), not row by row.
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'"
            " AND indexname NOT IN ('events_pkey', 'events_provider_key')"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        started = time.perf_counter()
        await conn.execute(_EVENTS, events)
        for index in indexes:
            await conn.execute(index["indexdef"])
        filled = time.perf_counter() - started
        await conn.execute(_SIDE)
        await conn.execute("ANALYZE")
        return {
            "insert_events_and_build_indexes_s": round(filled, 1),
            "side_tables_and_analyze_s": round(time.perf_counter() - started - filled, 1),
        }
    finally:
        await conn.close()


async def _pages(client: Client, events: int) -> dict[str, str]:
    deep = await _cursor_after(client, pages=20)
    mid = events // 2
    return {
        "overview": "/",
        "events": "/events",
        "events provider=uuwallet": "/events?provider=uuwallet",
        "events provider+kind": "/events?provider=cobo_tss&kind=keysign",
        "events status=reconciling": "/events?status=reconciling",
        "events one day window": "/events?since=" + _day_ago(15),
        "events search txid": "/events?q=0x" + _md5(mid),
        "events search trackingId": f"/events?q=trk-{mid}",
        "events search (no match)": "/events?q=nothing-like-this",
        "events page 21 (keyset)": deep,
        "event detail": f"/events/{mid}",
        "dead letters": "/dead-letters",
        "subscribers": "/subscribers",
        "policies with diff": "/policies?diff=3",
        "tss requests": "/tss",
    }


def _md5(n: int) -> str:
    return hashlib.md5(str(n).encode(), usedforsecurity=False).hexdigest()


def _day_ago(days: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - days * 86400))


async def _cursor_after(client: Client, *, pages: int) -> str:
    url = "/events"
    for _ in range(pages):
        page = await (await client.get(url)).text()
        found = re.search(r'<a href="([^"]+)" rel="next">', page)
        assert found is not None
        url = found.group(1).replace("&amp;", "&")
    return url


async def _login(client: Client) -> None:
    page = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    response = await client.post("/login", data={"token": TOKEN, "csrf": csrf.group(1)}, allow_redirects=False)
    assert response.status == 303


async def _measure(dsn: str, events: int, rounds: int) -> list[dict[str, object]]:
    settings = dataclasses.replace(Settings(), database_url=dsn, redis_url=REDIS, admin_token=TOKEN)
    app = create_console_app(settings, ConsoleOptions(insecure_cookie=True))
    async with TestClient(TestServer(app)) as client:
        await _login(client)
        rows = []
        for name, url in (await _pages(client, events)).items():
            times = []
            for _ in range(rounds + 1):
                started = time.perf_counter()
                response = await client.get(url)
                body = await response.text()
                times.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, (name, response.status)
            times = times[1:]  # the first fetch warms the pool and Postgres' caches
            rows.append(
                {
                    "page": name,
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(sorted(times)[math.ceil(len(times) * 0.95) - 1], 1),  # nearest rank
                    "max_ms": round(max(times), 1),
                    "bytes": len(body),
                }
            )
            row = rows[-1]
            print(f"{name:28} p50 {row['p50_ms']:8.1f} ms   p95 {row['p95_ms']:8.1f} ms   max {row['max_ms']:8.1f} ms")
    return rows


async def main(events: int, rounds: int) -> None:
    async with private_database(ADMIN, "callgate_console_bench") as dsn:
        print(f"filling {events} events into a private database {dsn.rpartition('/')[2]} ...")
        fill = await _fill(dsn, events)
        print(fill)
        rows = await _measure(dsn, events, rounds)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "events": events,
                "rounds": rounds,
                "fill": fill,
                "pages": rows,
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "python": platform.python_version(),
                },
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))
