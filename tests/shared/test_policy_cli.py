"""`callgate policy publish|check|show` and `callgate orders add|list` against real services."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate.cli import main

EXAMPLE = Path(__file__).parents[2] / "deploy" / "policy.example.yaml"


def test_policy_check_publish_and_show(cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(EXAMPLE)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {id: l, kind: amount_limit, max_amount: lots}\n")
    assert main(["policy", "publish", str(bad)]) == 1
    assert "rules[0].max_amount: not a decimal" in capsys.readouterr().out
    assert main(["policy", "show"]) == 1
    capsys.readouterr()
    assert main(["policy", "test", str(EXAMPLE)]) == 0
    assert "0 recorded decisions replayed, 0 would change" in capsys.readouterr().out
    assert main(["policy", "publish", str(EXAMPLE), "--by", "ops"]) == 0
    assert "published version 1" in capsys.readouterr().out
    assert main(["policy", "publish", str(EXAMPLE)]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["policy", "show"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# version 1") and "# Publish with `callgate policy publish" in shown
    assert main(["policy", "activate", "1"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["policy", "activate", "7"]) == 1
    assert "no policy version 7" in capsys.readouterr().out
    assert main(["policy", "show", "--versions"]) == 0
    assert "active" in capsys.readouterr().out


def test_orders_add_and_list(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    order = ["--provider", "uuwallet", "--ref", "cb-5", "--chain", "tron", "--asset", "usdt",
             "--destination", "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE", "--amount", "10"]  # fmt: skip
    assert main(["orders", "add", *order, "--expires-in", "600", "--extra", "tenantUserId=u-1"]) == 0
    assert '"tenantUserId": "u-1"' in capsys.readouterr().out
    assert main(["orders", "add", *order[:-1], "11"]) == 1
    assert main(["orders", "add", *order[:-1], "ten"]) == 2
    assert "amount: not a decimal" in capsys.readouterr().out
    assert main(["orders", "sync"]) == 0
    assert "1 orders written to Redis" in capsys.readouterr().out
    assert main(["orders", "list", "--provider", "uuwallet"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and "cb-5" in listed[0] and "open" in listed[0]
