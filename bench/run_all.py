"""Every benchmark in one command, then one summary table: `python -m bench.run_all [--full]`.

Runs, each as its own process so that one failing does not stop the others: the policy
micro-benchmark, the Cobo TSS signing rate and check route, every provider route against bare
aiohttp (with gateway and worker scaling), the end-to-end pipeline and the operator console.
The default durations are short (a few minutes in all); `--full` uses the sizes the goals name
(1M events for the console, 10 s wrk runs). Each benchmark writes its JSON to bench/results/;
the table is read back from those files and written to bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, machine

Row = tuple[str, str, str, bool | None]  # what, figure, goal, met (None: no goal)

QUICK: dict[str, list[str]] = {
    "policy_bench": ["--evaluations", "50000"],
    "cobo_tss_bench": ["all", "--sign-seconds", "1", "--seconds", "3"],
    "routes_bench": ["--seconds", "4", "--warmup", "1", "--events", "2000"],
    "e2e_bench": ["--seconds", "5", "--events", "2000"],
    "console_bench": ["--events", "100000", "--rounds", "3"],
}
FULL: dict[str, list[str]] = {
    "policy_bench": [],
    "cobo_tss_bench": ["all", "--seconds", "10"],
    "routes_bench": ["--seconds", "10"],
    "e2e_bench": ["--seconds", "10"],
    "console_bench": ["--events", "1000000", "--rounds", "10"],
}


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / name
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _policy() -> list[Row]:
    p = _load("policy_bench.json")
    if not p:
        return []
    return [
        ("policy decide p99 (wall / CPU)", f"{p['p99_us']} / {p['cpu_p99_us']} µs", "< 50 µs", p["p99_us"] < 50),
        ("policy compile (100 rules, 2x100k addresses)", f"{p['compile_s']} s, {p['snapshot_mib']} MiB", "< 2 s",
         p["compile_s"] < 2),
    ]  # fmt: skip


def _cobo_tss() -> list[Row]:
    rows: list[Row] = []
    for r in _load("cobo_tss_route.json").get("route", []):
        ratio, share = r["ratio_to_pure_signing"], r.get("signing_share_of_cpu")
        figure = f"{r['requests_per_s']:.0f}/s = {ratio:.0%} of signing" + (f" (CPU {share:.0%})" if share else "")
        rows.append((f"cobo_tss {r['name']}", figure, ">= 85 %", ratio >= 0.85))
    return rows


def _routes() -> list[Row]:
    data = _load("routes.json")
    rows: list[Row] = []
    for r in data.get("rows", []):
        if r["route"] == "bare_aiohttp":
            rows.append((f"bare aiohttp, {r['phase']}", _latency(r), "", None))
            continue
        ratio = r.get("ratio_rps_to_bare", 0.0)
        figure = f"{_latency(r)}, x{ratio:.2f} bare (CPU x{r.get('ratio_cpu_bare_to_route', 0):.2f})"
        goal, met = (">= 0.50 x bare", ratio >= 0.5) if r["route"] == "wyre" and r["rate"] is None else ("", None)
        rows.append((f"{r['route']}, {r['phase']}", figure, goal, met))
    for n, w in _load("routes_workers.json").get("workers", {}).items():
        per = w["stored_per_s_per_process"]
        rows.append((f"worker store rate, {n}", f"{w['stored_per_s']:.0f}/s ({per:.0f}/s/proc)", ">= 1000/s/proc",
                     per >= 1000))  # fmt: skip
    return rows


def _latency(r: dict[str, Any]) -> str:
    cpu = r.get("server_cpu_us_per_request") or 0
    return f"{r['requests_per_s']:.0f}/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms {cpu:.0f} µs/req"


def _e2e() -> list[Row]:
    e = _load("e2e.json")
    rows: list[Row] = []
    for key, s in e.items():
        if not key.startswith("steady") or not isinstance(s, dict):
            continue
        figure = f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms at {s['achieved_send_rate_per_s']}/s"
        goal, met = ("p99 < 250 ms at 500/s", s["p99_ms"] < 250) if s["rate_per_s"] >= 500 else ("", None)
        rows.append((f"e2e received -> notified, {s['rate_per_s']}/s", figure, goal, met))
    for phase in ("worker_no_subscriber", "worker_one_subscriber"):
        if phase in e:
            w = e[phase]
            rows.append((f"e2e {phase} (1 proc)", f"stored {w['stored_per_s']}/s, done {w['all_jobs_done_per_s']}/s",
                         ">= 1000/s/proc", w["stored_per_s"] >= 1000))  # fmt: skip
    return rows


def _console() -> list[Row]:
    c = _load("console_bench.json")
    if not c:
        return []
    worst = max(c["pages"], key=lambda p: p["max_ms"])
    figure = f"{len(c['pages'])} pages, slowest {worst['page']} max {worst['max_ms']} ms"
    goal_met = worst["max_ms"] < 1000 and c["events"] >= 1_000_000
    return [(f"console pages over {c['events']:,} events", figure, "< 1 s with 1M events", goal_met)]


SUMMARIES: tuple[Callable[[], list[Row]], ...] = (_policy, _cobo_tss, _routes, _e2e, _console)


def summary() -> list[Row]:
    return [row for part in SUMMARIES for row in part()]


def print_table(rows: list[Row]) -> None:
    width = max((len(r[0]) for r in rows), default=10)
    for what, figure, goal, met in rows:
        mark = {True: "met", False: "NOT MET", None: ""}[met]
        print(f"{what:<{width}}  {figure:<72}  {goal:<22} {mark}")


def print_markdown(rows: list[Row]) -> None:
    print("| what | figure | goal | met |\n|---|---|---|---|")
    for what, figure, goal, met in rows:
        mark = {True: "yes", False: "**no**", None: ""}[met]
        print(f"| {what} | {figure} | {goal} | {mark} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the goals' sizes and 10 s runs (much longer)")
    parser.add_argument("--only", nargs="*", choices=sorted(QUICK), help="run only these (the table reads all)")
    parser.add_argument(
        "--markdown", action="store_true", help="run nothing: print the table of the results as Markdown"
    )
    args = parser.parse_args()
    if args.markdown:
        print_markdown(summary())
        return
    plan = FULL if args.full else QUICK
    status: dict[str, object] = {}
    for name, extra in plan.items():
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} {' '.join(extra)}  (load average {os.getloadavg()[0]:.2f})", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}", *extra], check=False).returncode
        status[name] = {"exit": code, "seconds": round(time.perf_counter() - started, 1)}
    rows = summary()
    print(f"\n=== summary ({os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})")
    print_table(rows)
    failed = [name for name, s in status.items() if isinstance(s, dict) and s["exit"] != 0]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    out = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
           "load_average": os.getloadavg(), "runs": status,
           "rows": [{"what": w, "figure": f, "goal": g, "met": m} for w, f, g, m in rows]}  # fmt: skip
    Path(RESULTS / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
