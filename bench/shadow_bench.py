"""Policy lifecycle benchmark: `policy test` over recorded decisions, and shadow evaluation's cost.

1. A private database on the local PostgreSQL (dropped afterwards) is migrated and filled with one
   `INSERT ... SELECT generate_series` of recorded co-signer decisions (the request in
   `decision.request`, as the gateway audits it), then `replay_window` decides every one under a
   stricter candidate, streamed through a server-side cursor: requests per second.
2. The cost of a shadow on the live answer: `decide` alone versus `decide` plus `shadow.audit`
   (request recorded, shadow decided, disagreement counted) with the 100-rule, 100k-address policy
   of `bench/policy_bench.py` active and in shadow, in CPU µs per request.

Prints the figures and writes them to bench/results/shadow_bench.json.

    python -m bench.shadow_bench [--rows 200000] [--evaluations 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.harness import private_database
from bench.policy_bench import build_document, requests, stored
from shared.db import create_pool, migrate
from shared.metrics import Metrics
from shared.policy import shadow
from shared.policy.replay import compile_candidate, replay_window
from shared.policy.snapshot import PolicySnapshot, decide
from shared.policy.store import compile_stored

RESULTS = Path(__file__).parent / "results" / "shadow_bench.json"
ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Row n: a withdrawal of n % 2000 USDT; recorded APPROVE up to 1000 (the active limit), else REJECT.
_DECISIONS = """
INSERT INTO events (provider, kind, idempotency_key, request_id, raw_body, payload, status, decision,
                    policy_version, received_at)
SELECT 'chainup_cosigner', 'withdraw.sign_start', 'withdraw:sign_start:r-' || n || ':regular', 'g-' || n, '\\x7b7d',
       jsonb_build_object('request_id', 'r-' || n, 'amount', (n % 2000)::text),
       CASE WHEN n % 2000 <= 1000 THEN 'approve' ELSE 'reject' END,
       jsonb_build_object(
           'action', CASE WHEN n % 2000 <= 1000 THEN 'APPROVE' ELSE 'REJECT' END,
           'reasons', jsonb_build_array(jsonb_build_object('code',
               CASE WHEN n % 2000 <= 1000 THEN 'allowed' ELSE 'amount_over_limit' END, 'rule', 'usdt-limit')),
           'request', jsonb_build_object(
               'provider', 'chainup_cosigner', 'operation', 'withdraw', 'request_id', 'r-' || n,
               'wallet', 'vault-' || n % 50, 'node_ids', '[]'::jsonb, 'threshold', NULL,
               'curve', NULL, 'signature_type', NULL, 'protocol', NULL, 'order_ref', NULL,
               'attributes', jsonb_build_object('pending_round', 'false'),
               'transfers', jsonb_build_array(jsonb_build_object(
                   'chain', 'USDTERC20', 'asset', 'USDTERC20', 'amount', (n % 2000)::text,
                   'destination', '0x' || md5(n::text)::varchar(40), 'contract', NULL,
                   'unlimited_approval', false)))),
       1, now() - (n::float8 / $1) * interval '1 hour'
FROM generate_series(1, $1) AS n
"""
CANDIDATE = json.dumps(
    {
        "rules": [
            {"id": "sanctions", "kind": "destinations", "deny": ["0x000000000000000000000000000000000000dead"]},
            {"id": "usdt-limit", "kind": "amount_limit", "match": {"chain": "USDTERC20"}, "max_amount": "500"},
        ],
        "defaults": {"*": "REJECT"},
    }
)


async def measure_test(dsn: str, rows: int) -> dict[str, object]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        started = time.perf_counter()
        await conn.execute(_DECISIONS, rows)
        await conn.execute("ANALYZE events")
        filled = time.perf_counter() - started
    finally:
        await conn.close()
    pool = await create_pool(dsn, min_size=1, max_size=2)
    figures: dict[str, object] = {"rows": rows, "fill_s": round(filled, 1)}
    try:
        started = time.perf_counter()  # the candidate's validation and compilation included
        report = await replay_window(pool, compile_candidate(CANDIDATE), since=time.time() - 7200)
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    assert (report.requests, report.changed) == (rows, rows // 4), (report.requests, report.changed)
    figures.update(test_s=round(seconds, 2), requests_per_s=round(rows / seconds), changed=report.changed)
    print(f"policy test: {rows} recorded decisions in {seconds:.2f} s ({rows / seconds:.0f}/s),"
          f" {report.changed} would change ({report.changed_pct:.1f} %)")  # fmt: skip
    return figures


@dataclass
class _Source:
    """What the gateway's holder offers the hook: the shadow snapshot."""

    shadow: PolicySnapshot | None


def measure_shadow(evaluations: int) -> dict[str, float]:
    text = json.dumps(build_document(100_000))
    active = compile_stored(stored(text))
    candidate = compile_stored(stored(text))
    metrics = Metrics()
    batch = requests()
    with_shadow, without = _Source(candidate), _Source(None)

    def alone(i: int) -> None:
        decide(active, batch[i % len(batch)], now=0.0)

    def recorded(i: int) -> None:  # what every decision now pays: the request kept for `policy test`
        request = batch[i % len(batch)]
        shadow.audit(without, request, decide(active, request, now=0.0), metrics=metrics)

    def shadowed(i: int) -> None:
        request = batch[i % len(batch)]
        shadow.audit(with_shadow, request, decide(active, request, now=0.0), metrics=metrics)

    figures = {name: _cpu_us(step, evaluations) for name, step in
               (("decide", alone), ("decide_and_record", recorded), ("decide_and_shadow", shadowed))}  # fmt: skip
    figures["shadow_overhead_us"] = round(figures["decide_and_shadow"] - figures["decide"], 2)
    return figures


def _cpu_us(step: object, evaluations: int) -> float:
    assert callable(step)
    for i in range(2000):  # warm-up: memoised rule lookups, allocator
        step(i)
    rounds = []
    for _ in range(5):
        started = time.thread_time_ns()
        for i in range(evaluations // 5):
            step(i)
        rounds.append((time.thread_time_ns() - started) / (evaluations // 5) / 1000)
    return round(statistics.median(rounds), 2)


async def main(rows: int, evaluations: int) -> None:
    async with private_database(ADMIN, "callgate_shadow_bench") as dsn:
        print(f"recording {rows} decisions in a private database {dsn.rpartition('/')[2]} ...")
        test = await measure_test(dsn, rows)
    live = measure_shadow(evaluations)
    print(f"live answer, CPU per request: decide {live['decide']} µs,"
          f" + request recorded {live['decide_and_record']} µs, + shadow evaluated {live['decide_and_shadow']} µs"
          f" (shadow adds {live['shadow_overhead_us']} µs)")  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()}
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.write_text(json.dumps({"policy_test": test, "live_us": live, "machine": machine, "when": when}, indent=2))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--evaluations", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.evaluations))
