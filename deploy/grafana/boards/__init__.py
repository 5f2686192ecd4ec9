"""The callgate dashboards, one module each; `DASHBOARDS` maps each JSON file to its builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import decisions, reconciliation, traffic, workers

DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "traffic.json": traffic.build,
    "decisions.json": decisions.build,
    "workers.json": workers.build,
    "reconciliation.json": reconciliation.build,
}
