"""Alert rules and scrape config: metrics they query exist, and promtool accepts and tests them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    check_promql,
    load_yaml,
    promql_labels,
    promql_metrics,
    unknown_label_values,
)

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "tests" / "alerts_test.yml"
# The alerts the issue requires a promtool test for.
TESTED_ALERTS = {
    "CallgateAckPathFailing",
    "CallgateQueueGrowing",
    "CallgateOldestJobTooOld",
    "CallgateDecisionLatencyHigh",
    "CallgateWaasDisagreements",
    "CallgateDeadLetters",
    "CallgatePolicyStale",
}


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; .ci/run installs it)")
    return path


def test_promql_scanner_finds_metrics_and_labels() -> None:
    expr = 'sum by (provider, le) (rate(callgate_x_bucket{outcome=~"a|b",queue="callgate_not_a_metric"}[5m]))'
    assert promql_metrics(expr) == {"callgate_x_bucket"}
    assert promql_labels(expr) == {"provider", "le", "outcome", "queue"}
    assert check_promql("callgate_callbacks_total") == []
    assert check_promql("callgate_callbacks") == ["unknown metric callgate_callbacks"]
    assert check_promql("sum by (provder) (callgate_callbacks_total)") == ["unknown label provder"]


def test_every_alert_queries_defined_metrics_and_labels() -> None:
    problems = {rule["alert"]: check_promql(rule["expr"]) for rule in _rules()}
    assert {name: p for name, p in problems.items() if p} == {}
    assert all(promql_metrics(rule["expr"]) for rule in _rules() if rule["alert"] != "CallgateTargetDown")


def test_alerts_match_label_values_the_code_emits() -> None:
    assert unknown_label_values('callgate_callbacks_total{outcome=~"spooled|spool",job="x"}') == ['outcome="spool"']
    problems = {rule["alert"]: unknown_label_values(rule["expr"]) for rule in _rules()}
    assert {name: p for name, p in problems.items() if p} == {}


def test_every_alert_has_severity_summary_and_runbook() -> None:
    docs = (DEPLOY.parent / "docs" / "operations.md").read_text()
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"{{#{anchor}}}" in docs or f'<a id="{anchor}"' in docs or _heading_anchor(docs, anchor), anchor


def _heading_anchor(docs: str, anchor: str) -> bool:
    headings = [line.lstrip("#").strip() for line in docs.splitlines() if line.startswith("#")]
    return any("-".join(h.lower().replace("/", " ").split()) == anchor for h in headings)


def test_alert_unit_tests_use_real_metrics_and_cover_the_important_alerts() -> None:
    suite = load_yaml(ALERT_TESTS)
    tested = {case["alertname"] for test in suite["tests"] for case in test.get("alert_rule_test", [])}
    assert tested >= TESTED_ALERTS
    assert tested <= {rule["alert"] for rule in _rules()}
    for test in suite["tests"]:
        for series in test["input_series"]:
            assert check_promql(series["series"]) == [], series["series"]


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_scrape_config(tmp_path: Path) -> None:
    promtool = _promtool()
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    config["rule_files"] = [str(ALERTS)]  # the compose mount point, as a local path
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
