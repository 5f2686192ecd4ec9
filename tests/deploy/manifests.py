"""What the deploy files may refer to, derived from the code itself (never from a list kept here).

- settings names: every environment variable `shared/config.py` can read, found by walking its
  syntax tree (string literals, f-string templates, and the `NAME_FILE` form of secrets) plus
  the names `Settings.from_env` actually reads from an instrumented, empty environment;
- metric names: every sample name the `shared.metrics.Metrics` registry can expose, by type;
- CLI commands: parsed by `callgate.cli._parser()`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from callgate.cli import COMMANDS, _parser
from shared import config
from shared.config import Settings
from shared.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_SOURCE = Path(config.__file__)
# Literal names in config.py; REDIS_URL and DATABASE_URL (no prefix) are read unconditionally,
# so the instrumented run below finds them.
_NAME = re.compile(r"^CALLGATE_[A-Z0-9_]*[A-Z0-9]$")
# Functions that read a secret also accept `<NAME>_FILE` (the Docker/Kubernetes convention).
_SECRET_READERS = frozenset({"_secret", "_secret_list"})
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every name asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False


def _template(node: ast.JoinedStr) -> re.Pattern[str] | None:
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(re.escape(value.value))
        else:
            parts.append("[A-Z0-9_]+")
    literal = "".join(p for p, v in zip(parts, node.values, strict=True) if isinstance(v, ast.Constant))
    # A template with no upper-case text of its own (f"{name}_FILE") is covered by _SECRET_READERS.
    if not re.search(r"[A-Z]{3,}", literal.replace("\\", "")):
        return None
    return re.compile("^" + "".join(parts) + "$")


@cache
def settings_names() -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """(exact names, name patterns) of every variable `shared/config.py` may read."""
    tree = ast.parse(CONFIG_SOURCE.read_text())
    names: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _NAME.match(node.value):
            names.add(node.value)
        elif isinstance(node, ast.JoinedStr) and (pattern := _template(node)) is not None:
            patterns.append(pattern)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SECRET_READERS:
            arg = node.args[1] if len(node.args) > 1 else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(f"{arg.value}_FILE")
    recorder = RecordingEnv()
    Settings.from_env(recorder)
    names |= recorder.asked
    return frozenset(names), tuple(patterns)


def is_setting(name: str) -> bool:
    exact, patterns = settings_names()
    return name in exact or any(p.match(name) for p in patterns)


@cache
def metric_samples() -> dict[str, tuple[str, frozenset[str]]]:
    """Every sample name the registry can expose -> (family name, its label names)."""
    metrics = Metrics()
    labels = {
        family.name: frozenset(getattr(wrapper, "_labelnames", ()))
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
        for family in wrapper.describe()
    }
    samples: dict[str, tuple[str, frozenset[str]]] = {}
    for family in metrics.registry.collect():
        for suffix in _SUFFIXES[family.type]:
            samples[family.name + suffix] = (family.name, labels.get(family.name, frozenset()))
    return samples


def metric_families() -> set[str]:
    return {family for family, _ in metric_samples().values()}


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_METRIC = re.compile(r"(?<![\w:])(callgate_[A-Za-z0-9_]+)(?![\w:(])")


def promql_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (callgate's own; label values are ignored)."""
    return set(_METRIC.findall(_QUOTED.sub('""', expr)))


def cli_verb(command: Iterable[str]) -> str:
    """Parse a container command with the real CLI parser; returns the verb (fails if invalid)."""
    argv = list(command)
    if argv and argv[0] == "callgate":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    verb = str(args.command)
    assert verb in COMMANDS or verb == "dev", verb
    return verb


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# Labels Prometheus itself attaches: target labels, histogram buckets, and `exported_job`, which is
# where our `job` label (callgate_jobs_total) lands because the target already has a `job` label.
TARGET_LABELS = frozenset({"job", "instance", "component", "le", "exported_job", "namespace", "pod"})
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def promql_labels(expr: str) -> set[str]:
    """Label names an expression groups or matches on."""
    labels: set[str] = set()
    for match in _MATCHER.finditer(expr):
        labels |= set(_MATCHER_LABEL.findall(_QUOTED.sub('""', match[1])))
    stripped = _QUOTED.sub('""', expr)
    for match in _GROUPING.finditer(stripped):
        labels |= {part.strip() for part in match[1].split(",") if part.strip()}
    return labels


def check_promql(expr: str) -> list[str]:
    """Problems with one expression: unknown metrics, or labels none of its metrics carry."""
    samples = metric_samples()
    names = promql_metrics(expr)
    problems = [f"unknown metric {name}" for name in sorted(names - samples.keys())]
    known = set(TARGET_LABELS)
    for name in names & samples.keys():
        known |= samples[name][1]
    problems += [f"unknown label {label}" for label in sorted(promql_labels(expr) - known)]
    return problems


_MATCHER_VALUE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*"([^"]*)"')


@cache
def _code_literals() -> frozenset[str]:
    """Every string literal in the code that emits metrics (label values come from these)."""
    literals: set[str] = set()
    for package in ("gateway", "workers", "shared"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    literals.add(node.value)
    return frozenset(literals)


def unknown_label_values(expr: str) -> list[str]:
    """Label values an expression matches on that no code could emit (typos like outcome="spool")."""
    problems = []
    for match in _MATCHER.finditer(expr):
        for label, op, value in _MATCHER_VALUE.findall(match[1]):
            if label in TARGET_LABELS:
                continue
            values = value.split("|") if op == "=~" else [value]
            # `$provider`: a Grafana template variable, filled in from label values at view time.
            problems += [f'{label}="{v}"' for v in values if v not in _code_literals() and not v.startswith("$")]
    return problems
