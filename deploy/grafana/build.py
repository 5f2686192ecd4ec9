"""Writes the Grafana dashboards in deploy/grafana/dashboards/ (run: `python deploy/grafana/build.py`).

The JSON files are generated so that every panel has the same shape and every query is in one
readable place: the dashboards are in `boards/` (one module each, the panel helpers in
`boards/panels.py`). tests/deploy checks the files are what this script writes and that every
query names metrics the code defines. Edit there, not in the JSON.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"


def _boards() -> ModuleType:
    # deploy/ is not an importable package: load boards/ under a name of its own, so that its
    # modules (`workers`, ...) never shadow the project's packages on sys.path.
    name = "callgate_grafana_boards"
    if name in sys.modules:
        return sys.modules[name]
    folder = HERE / "boards"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


DASHBOARDS = _boards().DASHBOARDS


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))


if __name__ == "__main__":
    main()
