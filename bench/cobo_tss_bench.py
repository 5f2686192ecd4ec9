"""Cobo TSS Node callback benchmark.

Part 1 (`sign`): the machine's pure RS256 signing rate (one core, our `sign_rs256`), the ceiling
any answer-signing route can reach. Prints the figures and writes JSON to bench/results/.

    python bench/cobo_tss_bench.py sign [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.policy.model import Action
from shared.providers.cobo_jwt import sign_rs256
from shared.providers.cobo_tss import CoboTssResponse, ResponseStatus, response_claims

RESULTS = Path(__file__).parent / "results"
BITS = (2048, 4096)


def signing_rate(key: rsa.RSAPrivateKey, seconds: float) -> dict[str, float]:
    """Sign complete answer tokens back to back on this core for `seconds`; return rate and mean."""
    response = CoboTssResponse("bench-request", ResponseStatus.OK, Action.APPROVE)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        sign_rs256(response_claims(response, issuer="callgate", ttl_minutes=2, now=time.time()), key)
        count += 1
    elapsed = time.perf_counter() - start
    return {"tokens": count, "seconds": elapsed, "per_second": count / elapsed, "mean_ms": 1000 * elapsed / count}


def run_sign(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for bits in BITS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        signing_rate(key, min(0.5, seconds))  # warm-up
        results[str(bits)] = signing_rate(key, seconds)
        r = results[str(bits)]
        print(f"RSA-{bits}: {r['per_second']:8.1f} signatures/s per core  ({r['mean_ms']:.3f} ms each)")
    return results


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "machine": platform.machine(), "at": time.time()}
    path = RESULTS / f"cobo_tss_{name}.json"
    path.write_text(json.dumps({"meta": meta, **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["sign"], nargs="?", default="sign")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    write_results("sign", {"sign": run_sign(args.seconds)})


if __name__ == "__main__":
    main()
