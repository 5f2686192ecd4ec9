"""A real `callgate worker` process for the fault tests: started, SIGKILLed, started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callgate.embedded import free_port, kill_process, stop_process


@dataclass
class WorkerProcess:
    redis_url: str
    database_url: str
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "CALLGATE_WORKER_METRICS_PORT": str(free_port()),
            "CALLGATE_LOG_JSON": "false",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callgate.cli", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a lost node would."""
        kill_process(self.proc)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


async def eventually(check: object, limit_s: float, every_s: float = 0.1) -> bool:
    """Poll an async predicate until it holds or `limit_s` passes."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(every_s)
    return False
