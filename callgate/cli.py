"""`callgate <verb>`: gateway, worker, migrate, dev, demo (and the verbs features register).

Settings are read once here, in the entry point, and passed down.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.config import Settings
from shared.errors import ConfigError
from shared.logging import configure

Command = Callable[[argparse.Namespace, Settings], int]


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    if args.processes > 1:
        return _gateway_processes(args.processes)
    from gateway.app import create_app
    from gateway.server import serve

    asyncio.run(serve(create_app(settings), settings, reuse_port=args.reuse_port))
    return 0


def _gateway_processes(n: int) -> int:
    """N gateway processes sharing the port (SO_REUSEPORT); signals are passed on to them."""
    cmd = [sys.executable, "-m", "callgate.cli", "gateway", "--processes", "1", "--reuse-port"]
    children = [subprocess.Popen(cmd, preexec_fn=_die_with_parent) for _ in range(n)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def _die_with_parent() -> None:
    """In a child: get SIGTERM when the parent dies, even by SIGKILL (Linux prctl), so gateway
    processes never outlive the supervisor that shares their port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.main import serve

    asyncio.run(serve(settings))
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.dev import ensure_database

    asyncio.run(ensure_database(settings.database_url))
    print("migrations applied")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.demo import run_demo

    base = args.url or f"http://{settings.host}:{settings.port}"
    for line in asyncio.run(run_demo(settings, base)):
        print(line)
    return 0


def _wallets(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.wallets import command

    return command(args, settings)


def _wallets_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from callgate.wallets import add_parser

    add_parser(sub)


def _policy(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.policy_cli import policy_command

    return policy_command(args, settings)


def _orders(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.policy_cli import orders_command

    return orders_command(args, settings)


def _subscribers(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.notify_cli import subscribers_command

    return subscribers_command(args, settings)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from callgate.notify_cli import replay_command

    return replay_command(args, settings)


def _console(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.console.app import serve
    from gateway.console.keys import ConsoleOptions

    try:
        serve(settings, ConsoleOptions(host=args.host, port=args.port, insecure_cookie=args.insecure_cookie))
    except ConfigError as e:
        print(f"callgate: configuration error: {e}", file=sys.stderr)
        return 2
    return 0


COMMANDS: dict[str, Command] = {
    "gateway": _gateway,
    "worker": _worker,
    "migrate": _migrate,
    "demo": _demo,
    # >>> feature commands (verb: function); add their parser in _parser below
    "wallets": _wallets,
    "policy": _policy,
    "orders": _orders,
    "subscribers": _subscribers,
    "replay": _replay,
    "console": _console,
    # <<< feature commands
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callgate", description="Inbound callback gateway for custody providers.")
    sub = parser.add_subparsers(dest="command", required=True)
    gateway = sub.add_parser("gateway", help="run the HTTP gateway")
    gateway.add_argument("--processes", type=int, default=1, help="gateway processes sharing the port")
    gateway.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("worker", help="run an arq worker (any number, on any hosts)")
    sub.add_parser("migrate", help="create the database if needed and apply SQL migrations")
    dev = sub.add_parser("dev", help="gateway + worker locally, on embedded servers when none run")
    dev.add_argument("--data", default="var/dev", help="data folder for embedded servers and dev secrets")
    dev.add_argument("--embedded", action="store_true", help="always start private Redis and PostgreSQL")
    demo = sub.add_parser("demo", help="send signed sample callbacks of every enabled provider")
    demo.add_argument("--url", help="gateway base URL (default: CALLGATE_HOST:CALLGATE_PORT)")
    demo.add_argument("--data", default="var/dev", help="where `callgate dev` keeps its dev.env")
    # >>> feature parsers
    _wallets_parser(sub)
    from callgate.policy_cli import add_parsers as _policy_parsers

    _policy_parsers(sub)
    from callgate.notify_cli import add_parsers as _notify_parsers

    _notify_parsers(sub)
    console = sub.add_parser("console", help="the operator console (its own port; log in with CALLGATE_ADMIN_TOKEN)")
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=8081)
    console.add_argument(
        "--insecure-cookie", action="store_true", help="session cookie without Secure (plain http on localhost only)"
    )
    # <<< feature parsers
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    if args.command in ("dev", "demo"):
        from callgate.dev import DEV_ENV_FILE, load_env_file

        load_env_file(Path(args.data) / DEV_ENV_FILE, env)
    try:
        if args.command == "dev":
            from callgate.dev import dev
            from callgate.embedded import EmbeddedError

            configure(env.get("CALLGATE_LOG_LEVEL", "INFO").upper(), json=False)
            try:
                dev(Path(args.data), embedded=args.embedded)
            except EmbeddedError as e:
                print(f"callgate: {e}", file=sys.stderr)
                return 1
            return 0
        settings = Settings.from_env(env)
    except ConfigError as e:
        print(f"callgate: configuration error: {e}", file=sys.stderr)
        return 2
    configure(settings.log_level, json=settings.log_json)
    return COMMANDS[args.command](args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
