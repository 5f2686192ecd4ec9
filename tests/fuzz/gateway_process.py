"""A real `callgate gateway` process for the transport tests: its port, its RSS from /proc, its
/metrics. Raw-socket abuse must meet the server exactly as deployed (gateway.server's runner and
protocol), which an in-process test server does not use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import ROOT
from tests.deploy.test_process_metrics import _free_run


@dataclass(frozen=True, slots=True)
class GatewayProcess:
    pid: int
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def metric(self, name: str, labels: Mapping[str, str]) -> float:
        """One sample from the process's /metrics (0 when absent)."""
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=10) as response:  # noqa: S310 (local)
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


@contextmanager
def gateway_process(
    env: Mapping[str, str], folder: Path, redis_url: str, database_url: str
) -> Iterator[GatewayProcess]:
    """`callgate gateway` with `env` over ours, on a free port, its spool and log in `folder`;
    stopped with SIGTERM at the end."""
    port = _free_run(3)  # the gateway port and its side metrics port after it
    log = folder / "gateway.log"
    full = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "CALLGATE_SPOOL_DIR": str(folder / "spool"),
        "CALLGATE_LOG_LEVEL": "WARNING",
        "CALLGATE_HOST": "127.0.0.1",
        "CALLGATE_PORT": str(port),
        **env,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callgate.cli", "gateway"], env=full, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", log)
        yield GatewayProcess(proc.pid, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=35)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gateway exited: {log.read_text()[-2000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"gateway not healthy within 30 s: {log.read_text()[-2000:]}")
