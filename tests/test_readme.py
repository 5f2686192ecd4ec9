"""The README's two commands, run as a newcomer would run them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from callgate.embedded import free_port, port_answers

ROOT = Path(__file__).parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, "the README must open with a shell block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_opens_with_exactly_the_run_and_test_commands() -> None:
    assert _readme_commands() == ["./scripts/dev", "./scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci
    for script in ("scripts/dev", "scripts/test", "scripts/setup", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_scripts_dev_runs_the_stack_on_embedded_servers_on_non_default_ports(tmp_path: Path) -> None:
    # The data folder lives in the checkout, as `var/dev` does for a user: pytest's own temporary
    # folders are private to root, and PostgreSQL runs as 'nobody' when the tests run as root.
    data = ROOT / "var" / f"test-readme-{os.getpid()}"
    ports = {name: free_port() for name in ("http", "metrics", "redis", "postgres")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CALLGATE_", "REDIS_URL", "DATABASE_URL"))},
        "CALLGATE_PORT": str(ports["http"]),
        "CALLGATE_WORKER_METRICS_PORT": str(ports["metrics"]),
        "CALLGATE_DEV_REDIS_PORT": str(ports["redis"]),
        "CALLGATE_DEV_POSTGRES_PORT": str(ports["postgres"]),
    }
    log = (tmp_path / "dev.log").open("w+")
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "dev"), "--embedded", "--data", str(data)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = _wait_for(
            lambda: proc.poll() is not None or "callgate dev is running" in (tmp_path / "dev.log").read_text(), 100
        )
        assert started and proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
        banner = (tmp_path / "dev.log").read_text()
        assert f"redis://127.0.0.1:{ports['redis']}" in banner
        assert f"127.0.0.1:{ports['postgres']}/callgate" in banner
        assert "published policy.example.yaml as policy version 1" in banner  # sync providers decide
        # The banner's sample curl, as printed.
        curl = re.search(r"(curl -s -X POST .*?\}')", banner, re.S)
        assert curl is not None
        answer = subprocess.run(["bash", "-c", curl.group(1)], capture_output=True, text=True, check=True).stdout
        assert '"status":"accepted"' in answer.replace(" ", "")
        demo = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "callgate"), "demo", "--data", str(data)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "wyre" in demo and " 200 " in demo, demo

        def stored() -> bool:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics").read().decode()
            match = re.search(r'callgate_events_stored_total\{provider="wyre",result="inserted"\} (\S+)', metrics)
            return match is not None and float(match.group(1)) >= 3  # the curl + the demo's two

        assert _wait_for(stored, 30)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
        log.close()
    assert proc.returncode == 0, (tmp_path / "dev.log").read_text()[-3000:]
    assert not port_answers("127.0.0.1", ports["redis"])
    assert not port_answers("127.0.0.1", ports["postgres"])
    assert not port_answers("127.0.0.1", ports["http"])
    shutil.rmtree(data, ignore_errors=True)
