"""Cobo TSS answers signed beside the event loop (`gateway.signer`): the same tokens, whatever happens."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.signer import ProcessSigner, Signer, ThreadSigner
from shared.config import Settings
from shared.errors import ConfigError
from shared.metrics import Metrics
from shared.providers.cobo_jwt import sign_rs256, verify_rs256
from tests.conftest import sample_value

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EXP = int(time.time()) + 3600


def claims(i: int) -> dict[str, Any]:
    return {"package_data": f"answer-{i}", "exp": EXP, "iss": "callgate"}


async def make(kind: str) -> Signer:
    loop = asyncio.get_running_loop()
    return ProcessSigner(KEY, loop) if kind == "process" else ThreadSigner(KEY, loop)


@pytest.mark.parametrize("kind", ["process", "thread"])
async def test_concurrent_answers_are_the_tokens_the_loop_would_sign(kind: str) -> None:
    signer = await make(kind)
    try:
        # More than MAX_OUTSTANDING at once: the rest wait their turn, in order.
        tokens = await asyncio.gather(*(signer.sign(claims(i)) for i in range(150)))
    finally:
        await signer.stop()
    # PKCS#1 v1.5 is deterministic: the same claims and key give the same token wherever signed.
    assert tokens == [sign_rs256(claims(i), KEY) for i in range(150)]
    assert verify_rs256(tokens[7], KEY.public_key())["package_data"] == "answer-7"


async def test_a_dead_signer_process_is_covered_by_the_loop_then_replaced(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    signer = ProcessSigner(KEY, asyncio.get_running_loop(), metrics)
    signer.RESTART_DELAYS_S = (0.2,)  # the test's own pace, not production's
    try:
        assert await signer.sign(claims(1)) == sign_rs256(claims(1), KEY)
        first = signer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="gateway.signer"):
            # Given to the dying process or sent while none runs: every one is signed all the same.
            tokens = await asyncio.gather(*(signer.sign(claims(i)) for i in range(20)))
            for _ in range(250):  # the exit is noticed when the pipe reports it, the restart after its delay
                if signer.pid not in (None, first):
                    break
                await asyncio.sleep(0.02)
        assert tokens == [sign_rs256(claims(i), KEY) for i in range(20)]
        assert "signer process failed" in caplog.text
        assert "started again" in caplog.text
        second = signer.pid
        assert second is not None and second != first
        assert sample_value(metrics, "callgate_signer_restarts_total") == 1
        # The new process signs again (it holds the key it was handed over its pipe).
        tokens = await asyncio.gather(*(signer.sign(claims(i)) for i in range(100, 110)))
        assert tokens == [sign_rs256(claims(i), KEY) for i in range(100, 110)]
        assert signer.pid == second
    finally:
        await signer.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)


async def test_stop_ends_the_signer_process() -> None:
    signer = ProcessSigner(KEY, asyncio.get_running_loop())
    pending = asyncio.ensure_future(signer.sign(claims(5)))
    await asyncio.sleep(0)
    pid = signer.pid
    assert pid is not None
    await signer.stop()
    assert await pending == sign_rs256(claims(5), KEY)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_signer_setting(tmp_path: Path) -> None:
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub = tmp_path / "k.pub"
    pub.write_bytes(
        KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    env = {
        "CALLGATE_COBO_TSS_NODE_PUBLIC_KEY_FILE": str(pub),
        "CALLGATE_COBO_TSS_PRIVATE_KEY_FILE": str(pem),
    }

    def signer(**variables: str) -> str:
        parsed = Settings.from_env(env | variables).providers.cobo_tss
        assert parsed is not None
        return parsed.signer

    assert signer() == "process"
    assert signer(CALLGATE_COBO_TSS_SIGNER="loop") == "loop"
    # The older switch still means what it meant, whatever CALLGATE_COBO_TSS_SIGNER says.
    assert signer(CALLGATE_COBO_TSS_SIGN_IN_THREAD="true") == "thread"
    assert signer(CALLGATE_COBO_TSS_SIGN_IN_THREAD="true", CALLGATE_COBO_TSS_SIGNER="loop") == "thread"
    assert signer(CALLGATE_COBO_TSS_SIGN_IN_THREAD="false", CALLGATE_COBO_TSS_SIGNER="loop") == "loop"
    with pytest.raises(ConfigError, match="CALLGATE_COBO_TSS_SIGNER"):
        Settings.from_env(env | {"CALLGATE_COBO_TSS_SIGNER": "gpu"})
