"""What every dashboard is made of: panels of one shape, queries written once, a grid layout.

Edit the dashboards in their own modules beside this one, then run `python deploy/grafana/build.py`.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "callgate-prometheus"}  # provisioning/datasources/prometheus.yml
PROVIDER = 'provider=~"$provider"'
RATE = "$__rate_interval"

Panel = dict[str, Any]


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + ref)}


def timeseries(title: str, queries: list[tuple[str, str]], *, unit: str = "short", stack: bool = False) -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(queries)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"fillOpacity": 20 if stack else 0, "stacking": {"mode": "normal" if stack else "none"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]}},
    }


def stat(title: str, expr: str, *, unit: str = "short", red_above: float | None = None) -> Panel:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above})
    return {
        "type": "stat",
        "title": title,
        "datasource": DATASOURCE,
        "targets": [_target(expr, "", 0)],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
    }


def quantiles(metric: str, by: str, where: str = "") -> list[tuple[str, str]]:
    selector = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({selector}[{RATE}])))", f"p{round(q * 100)} {{{{{by}}}}}")
        for q in (0.5, 0.99)
    ]


def per(labels: str, metric: str, where: str = "", *, fn: str = "rate") -> tuple[str, str]:
    """`sum by (labels)` of a counter's rate (or increase), with the labels as the legend."""
    selector = f"{metric}{{{where}}}" if where else metric
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in labels.split(","))
    return f"sum by ({labels}) ({fn}({selector}[{RATE}]))", legend


def _layout(rows: list[list[Panel]]) -> list[Panel]:
    panels, y, next_id = [], 0, 1
    for row in rows:
        width = 24 // len(row)
        height = 4 if all(p["type"] == "stat" for p in row) else 8
        for x, panel in enumerate(row):
            panels.append({**panel, "id": next_id, "gridPos": {"h": height, "w": width, "x": x * width, "y": y}})
            next_id += 1
        y += height
    return panels


def variable(name: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"} if multi else {},
    }


def dashboard(uid: str, title: str, rows: list[list[Panel]], variables: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["callgate"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["callgate"], "asDropdown": True, "title": "callgate"}],
        "panels": _layout(rows),
    }
