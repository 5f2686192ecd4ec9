"""The WaaS 2.0 client against the local stand-in: signing, verification, retries and limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.errors import ApiError
from shared.waas.cobo_auth import load_api_secret, load_public_key
from shared.waas.cobo_client import ClientOptions, CoboWaasClient, WaasRejected, WaasUnavailable
from shared.waas.cobo_models import TSSRequestStatus
from tests.waas_standin import WaasStandin, running_standin

VAULT = "4f2a7c1e-0000-4000-8000-000000000001"
REQ = "20240711114129000132315000003970"
FAST = ClientOptions(timeout_s=0.3, backoff_initial_s=0.01, backoff_max_s=0.05, rate_per_s=1000, rate_burst=100)


@dataclass
class Harness:
    standin: WaasStandin
    client: CoboWaasClient
    outcomes: list[str] = field(default_factory=list)


@asynccontextmanager
async def harness(
    options: ClientOptions = FAST, *, secret_hex: str | None = None, base_url: str | None = None
) -> AsyncIterator[Harness]:
    async with running_standin(WaasStandin(hang_s=1.0)) as standin, aiohttp.ClientSession() as session:
        outcomes: list[str] = []
        client = CoboWaasClient(
            session,
            base_url=base_url or standin.base_url,
            api_secret=load_api_secret(secret_hex or standin.api_secret_hex),
            response_key=load_public_key(standin.env_public_hex),
            options=options,
            observe=lambda outcome, seconds: outcomes.append(outcome),
        )
        yield Harness(standin, client, outcomes)


async def test_reads_a_signed_tss_request() -> None:
    async with harness() as h:
        h.standin.script(VAULT, REQ, "MPCProcessing")
        got = await h.client.get_tss_request_by_id(VAULT, REQ)
    assert got.tss_request_id == REQ
    assert got.status is TSSRequestStatus.MPC_PROCESSING and not got.status.is_terminal
    assert (got.type, got.target_key_share_holder_group_id, got.created_timestamp_ms) == ("KeyGen", "group-1", 1.7e12)
    assert h.outcomes == ["ok"] and h.standin.auth_failures == 0


async def test_statuses_progress_and_unknown_values_are_kept() -> None:
    async with harness() as h:
        h.standin.script(VAULT, REQ, "PendingKeyHolderConfirmation", "KeyGenerating", "Success", "SomethingNew")
        seen = [await h.client.get_tss_request_by_id(VAULT, REQ) for _ in range(5)]
    assert [r.status_raw for r in seen] == [
        "PendingKeyHolderConfirmation",
        "KeyGenerating",
        "Success",
        "SomethingNew",
        "SomethingNew",
    ]
    assert seen[2].status.is_terminal
    assert seen[3].status is TSSRequestStatus.UNKNOWN and not seen[3].status.is_terminal
    # A fresh nonce for every call.
    assert len(h.standin.seen_nonces) >= 2


async def test_5xx_and_timeouts_are_retried_until_success() -> None:
    async with harness() as h:
        h.standin.script(VAULT, REQ, "Success")
        h.standin.fail("500")
        h.standin.fail("timeout")
        h.standin.fail("502")
        got = await h.client.get_tss_request_by_id(VAULT, REQ)
    assert got.status is TSSRequestStatus.SUCCESS
    assert h.outcomes == ["server_error", "timeout", "server_error", "ok"]


async def test_retries_stop_after_max_attempts() -> None:
    async with harness(replace(FAST, max_attempts=3)) as h:
        h.standin.script(VAULT, REQ, "Success")
        h.standin.fail("500", times=5)
        with pytest.raises(WaasUnavailable) as caught:
            await h.client.get_tss_request_by_id(VAULT, REQ)
    assert caught.value.status == 500 and h.standin.calls == 3


async def test_429_honours_retry_after() -> None:
    async with harness() as h:
        h.standin.script(VAULT, REQ, "KeyGenerating")
        h.standin.fail("429", retry_after="1")
        started = time.monotonic()
        got = await h.client.get_tss_request_by_id(VAULT, REQ)
        elapsed = time.monotonic() - started
    assert got.status is TSSRequestStatus.KEY_GENERATING
    assert h.outcomes == ["rate_limited", "ok"]
    # The exponential backoff alone would have waited at most 0.05 s.
    assert elapsed >= 0.95


async def test_429_asking_for_too_long_a_pause_is_handed_to_the_caller() -> None:
    async with harness(replace(FAST, max_retry_after_s=5)) as h:
        h.standin.script(VAULT, REQ, "KeyGenerating")
        h.standin.fail("429", retry_after="120")
        with pytest.raises(WaasUnavailable) as caught:
            await h.client.get_tss_request_by_id(VAULT, REQ)
    assert caught.value.status == 429 and caught.value.retry_after_s == 120.0
    assert h.standin.calls == 1


async def test_4xx_is_not_retried() -> None:
    async with harness() as h:
        with pytest.raises(ApiError) as caught:
            await h.client.get_tss_request_by_id(VAULT, "no-such-request")
    assert caught.value.status == 404 and not isinstance(caught.value, WaasUnavailable | WaasRejected)
    assert h.standin.calls == 1 and h.outcomes == ["client_error"]


async def test_wrong_api_key_is_refused_by_waas() -> None:
    other = Ed25519PrivateKey.generate().private_bytes_raw().hex()
    async with harness(secret_hex=other) as h:
        h.standin.script(VAULT, REQ, "Success")
        with pytest.raises(ApiError) as caught:
            await h.client.get_tss_request_by_id(VAULT, REQ)
    assert caught.value.status == 401 and h.standin.auth_failures == 1 and h.standin.calls == 1


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("bad_signature", "bad_signature"),
        ("unsigned", "bad_signature"),
        ("not_json", "bad_answer"),
        ("wrong_id", "bad_answer"),
    ],
)
async def test_untrustworthy_answers_are_refused_without_retry(fault: str, outcome: str) -> None:
    async with harness() as h:
        h.standin.script(VAULT, REQ, "Success")
        h.standin.fail(fault)
        with pytest.raises(WaasRejected) as caught:
            await h.client.get_tss_request_by_id(VAULT, REQ)
    assert caught.value.outcome == outcome and caught.value.status == 200
    assert h.outcomes == [outcome] and h.standin.calls == 1


async def test_unreachable_waas_is_unavailable() -> None:
    # Bind, learn the port, close: nothing listens there any more.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with harness(replace(FAST, max_attempts=2), base_url=f"http://127.0.0.1:{port}/v2") as h:
        with pytest.raises(WaasUnavailable) as caught:
            await h.client.get_tss_request_by_id(VAULT, REQ)
    assert caught.value.status == 0 and h.outcomes == ["connection_error", "connection_error"]


async def test_concurrency_is_capped() -> None:
    async with harness(replace(FAST, max_concurrency=2)) as h:
        h.standin.script(VAULT, REQ, "Success")
        h.standin.delay_s = 0.05
        await asyncio.gather(*(h.client.get_tss_request_by_id(VAULT, REQ) for _ in range(8)))
    assert h.standin.max_in_flight == 2 and h.standin.calls == 8


async def test_call_rate_is_limited() -> None:
    async with harness(replace(FAST, rate_per_s=20, rate_burst=1)) as h:
        h.standin.script(VAULT, REQ, "Success")
        started = time.monotonic()
        await asyncio.gather(*(h.client.get_tss_request_by_id(VAULT, REQ) for _ in range(6)))
        elapsed = time.monotonic() - started
    # Six calls at 20/s with a burst of one: the sixth starts 5 intervals (0.25 s) after the first.
    assert elapsed >= 0.24
