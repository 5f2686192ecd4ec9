"""The batched decision memo (`gateway.decisions`): against a private valkey-server (so that
`INFO commandstats` counts only our script calls and the server can be killed), and through the
Cobo TSS check route.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis
from redis.exceptions import RedisError

from callgate.embedded import EmbeddedRedis
from gateway.app import create_app
from gateway.batching import LoopBatcher
from gateway.decisions import DecisionMemo
from gateway.keys import METRICS, POLICY
from shared.config import CoboTssSettings, Settings
from shared.logging import correlation_id
from shared.metrics import Metrics
from shared.policy.document import parse_document
from shared.policy.snapshot import PolicySnapshot, compile_snapshot
from shared.providers import cobo_tss_samples as samples
from shared.queue import ARQ_JOB_PREFIX, QueueItem
from shared.redis import create_redis
from tests.conftest import AiohttpClient, sample_value, with_providers

QUEUE = "arq:queue"
MEMO_TTL_S = 48 * 3600
JOB_TTL_S = 7 * 24 * 3600


def audit(job_id: str) -> QueueItem:
    return QueueItem(f"dedup:{job_id}", job_id, b'{"t":1,"f":"store_event","a":["' + job_id.encode() + b'"]}')


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    private = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield private
    finally:
        private.stop()


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    redis = create_redis(server.url, timeout_s=1.0)
    try:
        yield redis
    finally:
        await redis.aclose()


def memo_for(client: Redis, metrics: Metrics | None = None) -> DecisionMemo:
    return DecisionMemo(
        client, queue_name=QUEUE, memo_ttl_s=MEMO_TTL_S, job_ttl_s=JOB_TTL_S, metrics=metrics or Metrics()
    )


async def script_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def warm(client: Redis, memo: DecisionMemo) -> None:
    """Load the script (redis-py's first EVALSHA fails with NOSCRIPT) and zero the counters."""
    assert await memo.peek("warm-up") is None
    await client.config_resetstat()


async def test_concurrent_duplicates_in_one_batch_share_one_call_and_the_first_answer(client: Redis) -> None:
    memo = memo_for(client)
    await warm(client, memo)
    results = await asyncio.gather(
        memo.decide_once("memo:a", b"first", audit("job-a1")),
        memo.decide_once("memo:a", b"second", audit("job-a2")),
        memo.decide_once("memo:b", b"other", audit("job-b")),
        memo.peek("memo:a"),
        memo.decide_once("memo:a", b"third", audit("job-a3")),
    )
    assert list(results) == [None, b"first", None, b"first", b"first"]
    assert await script_calls(client) == 1
    # the audit job goes with the winner only, in arq's layout
    assert await client.zrange(QUEUE, 0, -1) == [b"job-a1", b"job-b"]
    assert await client.exists(ARQ_JOB_PREFIX + "job-a2", ARQ_JOB_PREFIX + "job-a3") == 0
    assert await client.get(ARQ_JOB_PREFIX + "job-a1") == audit("job-a1").job
    assert (MEMO_TTL_S - 60) * 1000 < await client.pttl("memo:a") <= MEMO_TTL_S * 1000
    assert (JOB_TTL_S - 60) * 1000 < await client.pttl(ARQ_JOB_PREFIX + "job-a1") <= JOB_TTL_S * 1000


async def test_duplicates_across_batches_get_the_first_answer_and_enqueue_nothing(client: Redis) -> None:
    memo = memo_for(client)
    await warm(client, memo)
    assert await memo.decide_once("memo:x", b"approve", audit("job-1")) is None
    assert await memo.decide_once("memo:x", b"approve", audit("job-2")) == b"approve"
    assert await memo.decide_once("memo:x", b"reject", audit("job-3")) == b"approve"  # a replay: the caller decides
    assert await script_calls(client) == 3  # one per loop iteration: nothing was waiting to share them
    assert await client.zrange(QUEUE, 0, -1) == [b"job-1"]
    assert await client.get("memo:x") == b"approve"


async def test_a_peek_reads_and_writes_nothing(client: Redis) -> None:
    memo = memo_for(client)
    assert await memo.peek("memo:p") is None
    assert await client.dbsize() == 0
    await memo.decide_once("memo:p", b"seen", audit("job-p"))
    assert await memo.peek("memo:p") == b"seen"
    assert await client.zcard(QUEUE) == 1


async def test_a_large_burst_is_split_into_batches_and_every_caller_answered(client: Redis) -> None:
    memo = memo_for(client)
    await warm(client, memo)
    calls = [memo.decide_once(f"memo:{i % 300}", str(i).encode(), audit(f"job-{i}")) for i in range(600)]
    results = await asyncio.gather(*calls)
    assert results[:300] == [None] * 300
    assert results[300:] == [str(i).encode() for i in range(300)]  # each key's first answer
    assert await client.zcard(QUEUE) == 300
    assert 3 <= await script_calls(client) <= 10  # MAX_BATCH 256: never one call per request


async def test_redis_down_fails_every_caller_and_records_nothing(server: EmbeddedRedis, client: Redis) -> None:
    metrics = Metrics()
    memo = memo_for(client, metrics)
    assert await memo.decide_once("memo:before", b"ok", audit("job-0")) is None
    assert sample_value(metrics, "callgate_redis_up") == 1
    server.kill()
    outcomes = await asyncio.gather(
        *(memo.decide_once(f"memo:{i}", b"approve", audit(f"job-{i}")) for i in range(5)),
        memo.peek("memo:before"),
        return_exceptions=True,
    )
    # Never None ("ours was recorded"): a route would approve on that.
    assert all(isinstance(o, RedisError | OSError) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == len(outcomes)  # each waiter raises its own exception
    assert sample_value(metrics, "callgate_redis_up") == 0
    server.start()  # same port and AOF: what was recorded before is there, nothing of the failed batch
    assert await memo.decide_once("memo:0", b"later", audit("job-later")) is None
    assert await memo.peek("memo:before") == b"ok"
    assert sample_value(metrics, "callgate_redis_up") == 1


async def test_stop_sends_what_is_pending(client: Redis) -> None:
    memo = memo_for(client)
    pending = asyncio.ensure_future(memo.decide_once("memo:s", b"v", audit("job-s")))
    await asyncio.sleep(0)  # queued, not yet flushed
    await memo.stop()
    assert pending.done() and pending.result() is None
    assert await client.get("memo:s") == b"v"


# -- through a route: the Cobo TSS check, whose answers are signed, memoised and audited ------


@dataclasses.dataclass
class _Fixed:
    current: PolicySnapshot | None


async def test_concurrent_requests_with_one_id_and_two_contents_get_one_decision(
    aiohttp_client: AiohttpClient, redis: Redis, settings: Settings
) -> None:
    node, ours = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    config = CoboTssSettings(node_public_key=node.public_key(), private_key=ours, signer="loop")
    app = create_app(with_providers(settings, cobo_tss=config))
    document = parse_document({"rules": [], "defaults": {"cobo_tss": "APPROVE"}})
    app[POLICY] = _Fixed(compile_snapshot(document, version=1, published_at=time.time(), sha256="t"))
    client = await aiohttp_client(app)
    elsewhere = "0x" + "77" * 20
    contents = {
        "original": samples.keysign("same-id"),
        "other": samples.keysign("same-id", raw_tx=samples.evm_transfer_tx(to=elsewhere), destination=elsewhere),
    }

    async def check(name: str) -> tuple[str, dict[str, Any]]:
        token = samples.request_token(contents[name], node)
        response = await client.post("/cobo/tss-node/v2/check", data={"TSS_JWT_MSG": token})
        return name, samples.read_response(await response.text(), ours.public_key())

    answers = await asyncio.gather(*(check(name) for name in ("original", "other", "original", "other", "original")))
    # Whichever content came first is decided (APPROVE) and keeps its answer; the other is a replay.
    [winner] = {name for name, answer in answers if answer["action"] == "APPROVE"}
    for name, answer in answers:
        assert answer["status"] == 0
        assert answer["action"] == "APPROVE" if name == winner else answer["error"].startswith("request_id_replayed")
    replays = sum(name != winner for name, _ in answers)
    metrics = client.app[METRICS]
    assert sample_value(metrics, "callgate_callbacks_total", {"provider": "cobo_tss", "outcome": "accepted"}) == 1
    assert sample_value(metrics, "callgate_decision_replays_total", {"provider": "cobo_tss"}) == replays
    # the decision's audit job, plus one evidence job per distinct replayed content
    assert await redis.zcard(settings.queue_name) == 2


async def test_a_batch_runs_in_a_context_of_its_own_not_its_first_callers() -> None:
    # The batch serves many requests: its log lines must not carry one request's correlation id.
    seen: list[str | None] = []

    async def send(items: Sequence[str]) -> list[str]:
        seen.append(correlation_id.get())
        return [i.upper() for i in items]

    batcher: LoopBatcher[str, str] = LoopBatcher(send, max_batch=8, max_in_flight=1)

    async def call(cid: str) -> str:
        correlation_id.set(cid)
        return await batcher.submit(cid)

    assert list(await asyncio.gather(call("req-a"), call("req-b"))) == ["REQ-A", "REQ-B"]
    assert seen == [None]
