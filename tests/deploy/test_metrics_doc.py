"""docs/metrics.md lists every metric the registry defines, with its labels and its alerts."""

from __future__ import annotations

import re

from shared.metrics import Metrics
from tests.deploy.manifests import DEPLOY, ROOT, load_yaml, metric_samples, promql_metrics

CATALOG = ROOT / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(callgate_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \| .* \| ([^|]*) \|$")


def _rows() -> dict[str, tuple[str, frozenset[str], frozenset[str]]]:
    rows = {}
    for line in CATALOG.read_text().splitlines():
        if match := _ROW.match(line):
            assert match[1] not in rows, f"listed twice: {match[1]}"
            labels = frozenset(re.findall(r"`(\w+)`", match[3]))
            alerts = frozenset(a.strip() for a in match[4].split(",") if a.strip() not in ("", "—"))
            rows[match[1]] = (match[2], labels, alerts)
    return rows


def _families() -> dict[str, frozenset[str]]:
    """Family name -> labels, for every metric the registry defines."""
    return dict(metric_samples().values())


def _listed_family(name: str) -> str:
    return metric_samples()[name][0] if name in metric_samples() else name


def test_catalog_lists_every_metric_with_its_labels() -> None:
    rows = _rows()
    listed = {_listed_family(name): labels for name, (_, labels, _) in rows.items()}
    missing, extra = set(_families()) - set(listed), set(listed) - set(_families())
    assert not missing, f"add a row to docs/metrics.md for {sorted(missing)}"
    assert not extra, f"docs/metrics.md lists metrics the registry does not define: {sorted(extra)}"
    assert {f: sorted(labels) for f, labels in listed.items()} == {f: sorted(ls) for f, ls in _families().items()}


def test_catalog_names_are_queryable_names_with_their_type() -> None:
    types = {family.name: family.type for family in Metrics().registry.collect()}
    for name, (kind, _, _) in _rows().items():
        family = _listed_family(name)
        assert types[family] == kind, name
        # Counters as queried (`_total`); gauges and histograms by their family name.
        assert name == (family + "_total" if kind == "counter" else family), name


def test_catalog_names_the_alerts_that_use_each_metric() -> None:
    rules = [r for group in load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"] for r in group["rules"]]
    expected: dict[str, set[str]] = {}
    for rule in rules:
        for name in promql_metrics(rule["expr"]):
            expected.setdefault(_listed_family(name), set()).add(rule["alert"])
    documented = {_listed_family(name): set(alerts) for name, (_, _, alerts) in _rows().items()}
    assert {f: a for f, a in documented.items() if a} == expected
