"""Policy lifecycle without a gateway: `policy diff`, `promote`, `rollback`, recorded requests."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from callgate.cli import main
from shared.errors import PolicyError
from shared.policy.model import DecisionRequest, Operation, Transfer
from shared.policy.replay import recorded_request
from shared.policy.requests import parse_decision_request, request_to_data

OLD = {
    "defaults": {"*": "REJECT"},
    "lists": {"sanctioned": ["0x000000000000000000000000000000000000dead"]},
    "rules": [
        {"id": "sanctions", "kind": "destinations", "deny_lists": ["sanctioned"]},
        {"id": "usdt-limit", "kind": "amount_limit", "match": {"asset": "USDT"}, "max_amount": "1000"},
        {"id": "freeze", "kind": "wallets", "frozen": ["vault-9"]},
    ],
}
NEW = {
    "defaults": {"*": "REJECT", "uuwallet": "APPROVE"},
    "lists": {"sanctioned": ["0x000000000000000000000000000000000000beef"]},
    "rules": [
        {"id": "sanctions", "kind": "destinations", "deny_lists": ["sanctioned"]},
        {"id": "usdt-limit", "kind": "amount_limit", "match": {"asset": ["USDT", "USDC"]}, "max_amount": "500"},
        {"id": "speed", "kind": "speed_up", "max_rounds": 1},
    ],
}


def write(tmp_path: Path, name: str, document: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_diff_shows_added_removed_and_changed_rules_exactly(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "publish", write(tmp_path, "old.json", OLD)]) == 0
    assert main(["policy", "publish", write(tmp_path, "new.json", NEW)]) == 0
    capsys.readouterr()
    assert main(["policy", "diff", "1", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "policy 1 -> 2",
        "+ rule speed",
        "- rule freeze",
        "~ rule usdt-limit",
        '    match: {"asset": "USDT"} -> {"asset": ["USDT", "USDC"]}',
        "    max_amount: 1000 -> 500",
        "~ defaults.uuwallet: (absent) -> APPROVE",
        "~ lists.sanctioned: +1 -1",
    ]
    assert main(["policy", "diff", "1", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "old": 1,
        "new": 2,
        "added": ["speed"],
        "removed": ["freeze"],
        "changed": [
            {
                "id": "usdt-limit",
                "fields": [
                    {"field": "match", "old": {"asset": "USDT"}, "new": {"asset": ["USDT", "USDC"]}},
                    {"field": "max_amount", "old": "1000", "new": "500"},
                ],
            }
        ],
        "defaults": [{"field": "uuwallet", "old": None, "new": "APPROVE"}],
        "lists": [{"name": "sanctioned", "added": 1, "removed": 1}],
    }
    assert main(["policy", "diff", "2", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["policy 2 -> 2", "  no rule-level difference"]
    assert main(["policy", "diff", "1", "9"]) == 1
    assert "no policy version 9" in capsys.readouterr().out


def test_promote_and_rollback_verbs(cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "rollback"]) == 1
    assert "no earlier active version" in capsys.readouterr().out
    assert main(["policy", "publish", write(tmp_path, "old.json", OLD)]) == 0
    assert main(["policy", "promote"]) == 1
    assert "no shadow version to promote" in capsys.readouterr().out
    assert main(["policy", "publish", "--shadow", write(tmp_path, "new.json", NEW)]) == 0
    assert "published version 2 (shadow" in capsys.readouterr().out
    assert main(["policy", "promote", "--by", "ops"]) == 0
    assert "published version 3 (active" in capsys.readouterr().out
    assert main(["policy", "promote"]) == 1  # the shadow ended with its promotion
    assert main(["policy", "rollback"]) == 0
    assert "published version 4 (active" in capsys.readouterr().out
    assert main(["policy", "diff", "1", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["  no rule-level difference"]
    assert main(["policy", "rollback"]) == 0  # the previous active version is 3 (NEW) again
    assert main(["policy", "diff", "3", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  no rule-level difference"


def test_policy_test_refuses_a_bad_window_and_a_bad_candidate(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["policy", "test", write(tmp_path, "old.json", OLD), "--since", "yesterday"])
    assert "not a duration" in capsys.readouterr().err
    bad = {"rules": [{"id": "l", "kind": "amount_limit", "max_amount": "lots"}]}
    assert main(["policy", "test", write(tmp_path, "bad.json", bad)]) == 1
    assert "rules[0].max_amount: not a decimal" in capsys.readouterr().out


REQUEST = DecisionRequest(
    "chainup_cosigner",
    Operation.WITHDRAW,
    "r-1",
    wallet="vault-1",
    transfers=(Transfer("ETH", "USDT", Decimal("12.5"), "0xabc", None, False),),
    node_ids=("n1",),
    threshold=2,
    attributes=(("pending_round", "false"),),
)


def test_recorded_requests_read_fast_exactly_as_the_parser_reads_them() -> None:
    data = request_to_data(REQUEST)
    assert recorded_request(json.loads(json.dumps(data))) == parse_decision_request(data) == REQUEST


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"operation": "teleport"}, "request.operation"),
        ({"threshold": True}, "request.threshold"),
        ({"transfers": [{"chain": "ETH", "asset": "USDT", "amount": "NaN"}]}, "request.transfers[0].amount"),
        ({"extra": 1}, "request.extra"),
    ],
)
def test_other_recorded_shapes_go_through_the_validating_parser(change: dict[str, object], path: str) -> None:
    with pytest.raises(PolicyError) as refused:
        recorded_request({**request_to_data(REQUEST), **change})
    assert refused.value.path == path
    older = {"provider": "COBO_TSS", "operation": "keygen", "request_id": "k"}  # an older, shorter shape
    assert recorded_request(older) == DecisionRequest("cobo_tss", Operation.KEYGEN, "k")
