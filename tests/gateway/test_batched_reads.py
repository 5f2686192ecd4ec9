"""BatchedReads against a private Redis (its command counters are ours alone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from callgate.embedded import EmbeddedRedis
from gateway.batched_reads import BatchedReads
from gateway.batching import MAX_BATCH


@pytest.fixture
async def private(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, Redis]]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    client = Redis.from_url(server.url, socket_timeout=1.0)
    yield server, client
    await client.aclose()
    await asyncio.to_thread(server.stop)


async def _mget_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


async def test_reads_of_one_iteration_share_one_mget(private: tuple[EmbeddedRedis, Redis]) -> None:
    _, client = private
    await client.mset({f"k{i}": f"v{i}" for i in range(0, 300, 2)})
    reads = BatchedReads(client)
    keys = [f"k{i}" for i in range(300)] + ["k0"]  # odd keys absent; one key asked twice
    values = await asyncio.gather(*(reads.get(key) for key in keys))  # all asked in one iteration
    assert values == [f"v{i}".encode() if i % 2 == 0 else None for i in range(300)] + [b"v0"]
    assert await _mget_calls(client) == -(-len(keys) // MAX_BATCH)
    await reads.stop()


async def test_redis_down_reads_as_absent(private: tuple[EmbeddedRedis, Redis]) -> None:
    server, client = private
    await client.set("k", "v")
    reads = BatchedReads(client)
    assert await reads.get("k") == b"v"
    await asyncio.to_thread(server.kill)
    assert list(await asyncio.gather(reads.get("k"), reads.get("other"))) == [None, None]
    await reads.stop()
