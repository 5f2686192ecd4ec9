"""Policy documents: validation errors name the bad field; examples that fail refuse the document."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from shared.errors import PolicyError
from shared.policy.document import canonical_json, load_document, parse_document
from shared.policy.model import Action
from shared.policy.rules import AmountLimit, DestinationRule
from shared.policy.snapshot import check_examples, compile_snapshot

EXAMPLE = Path(__file__).parents[2] / "deploy" / "policy.example.yaml"
LIMIT = {"id": "usdt", "kind": "amount_limit", "max_amount": "100"}


def error(data: object) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_document(data)
    return caught.value


def test_the_deploy_sample_is_valid_and_its_examples_pass() -> None:
    document = parse_document(load_document(EXAMPLE.read_text()))
    assert len(document.rules) >= 10 and len(document.examples) >= 5
    check_examples(document, compile_snapshot(document, version=1, published_at=0.0, sha256=""))


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], "$"),
        ({}, "rules"),
        ({"rules": [LIMIT], "version": 3}, "version"),
        ({"rules": "x"}, "rules"),
        ({"rules": [LIMIT, LIMIT]}, "rules[1].id"),
        ({"rules": [LIMIT, {**LIMIT, "id": "b", "max_amount": "lots"}]}, "rules[1].max_amount"),
        ({"rules": [{**LIMIT, "max_amount": 1.5}]}, "rules[0].max_amount"),
        ({"rules": [{**LIMIT, "max_amount": "NaN"}]}, "rules[0].max_amount"),
        ({"rules": [{**LIMIT, "max_amount": "-1"}]}, "rules[0].max_amount"),
        ({"rules": [{**LIMIT, "max_amout": "1"}]}, "rules[0].max_amout"),
        ({"rules": [{**LIMIT, "kind": "amount-limit"}]}, "rules[0].kind"),
        ({"rules": [{**LIMIT, "match": {"operation": "steal"}}]}, "rules[0].match.operation[0]"),
        ({"rules": [{**LIMIT, "match": {"chain": []}}]}, "rules[0].match.chain"),
        ({"rules": [{"id": "t", "kind": "tss", "match": {"chain": "E"}, "min_threshold": 2}]}, "rules[0].match.chain"),
        ({"rules": [{"id": "t", "kind": "tss", "min_threshold": 0}]}, "rules[0].min_threshold"),
        ({"rules": [{"id": "t", "kind": "tss", "min_threshold": True}]}, "rules[0].min_threshold"),
        ({"rules": [{"id": "t", "kind": "tss"}]}, "rules[0]"),
        ({"rules": [{"id": "d", "kind": "destinations", "deny": ["0xab", 12]}]}, "rules[0].deny[1]"),
        ({"rules": [{"id": "d", "kind": "destinations", "deny_lists": ["nope"]}]}, "rules[0].deny_lists[0]"),
        ({"rules": [{"id": "r", "kind": "deposit_risk", "max_risk_level": 101}]}, "rules[0].max_risk_level"),
        ({"rules": [LIMIT], "defaults": {"cobo_tss": "MAYBE"}}, "defaults.cobo_tss"),
        ({"rules": [LIMIT], "lists": {"x": "0xab"}}, "lists.x"),
        ({"rules": [LIMIT], "examples": [{"request": {"provider": "p"}, "expect": "REJECT"}]},
         "examples[0].request.operation"),
        ({"rules": [LIMIT], "examples": [{"request": {"provider": "p", "operation": "withdraw",
          "transfers": [{"chain": "ETH", "asset": "USDT", "amount": "x"}]}, "expect": "APPROVE"}]},
         "examples[0].request.transfers[0].amount"),
    ],
)  # fmt: skip
def test_errors_name_the_bad_field(data: object, path: str) -> None:
    assert error(data).path == path


def test_yaml_keeps_amounts_exact_and_unquoted_hex_addresses_as_text() -> None:
    data = load_document(
        "rules:\n"
        "  - {id: l, kind: amount_limit, max_amount: 0.1}\n"
        "  - {id: d, kind: destinations, deny: [0xAbCdEf0000000000000000000000000000000001]}\n"
    )
    document = parse_document(data)
    limit, deny = document.rules
    assert isinstance(limit, AmountLimit) and limit.max_amount == Decimal("0.1")
    assert isinstance(deny, DestinationRule) and deny.deny == {"0xabcdef0000000000000000000000000000000001"}


def test_yaml_errors_and_aliases_are_policy_errors() -> None:
    with pytest.raises(PolicyError) as bad:
        load_document("rules: [unclosed")
    assert bad.value.path == "$"
    with pytest.raises(PolicyError, match="aliases"):
        load_document("a: &x [1]\nb: *x\n")


def test_json_documents_are_accepted() -> None:
    document = parse_document(load_document('{"rules": [{"id": "l", "kind": "amount_limit", "max_amount": 2.50}]}'))
    assert isinstance(document.rules[0], AmountLimit) and document.rules[0].max_amount == Decimal("2.50")


def test_canonical_json_round_trips() -> None:
    data = load_document(EXAMPLE.read_text())
    again = load_document(canonical_json(data))
    assert canonical_json(again) == canonical_json(data)
    assert parse_document(again) == parse_document(data)


def _with_example(expect: str, reasons: list[str] | None = None) -> object:
    example: dict[str, object] = {
        "name": "small",
        "request": {"provider": "uuwallet", "operation": "withdraw",
                    "transfers": [{"chain": "ETH", "asset": "USDT", "amount": "5", "destination": "0xab"}]},
        "expect": expect,
    }  # fmt: skip
    if reasons is not None:
        example["reasons"] = reasons
    return {"rules": [LIMIT], "examples": [{"request": {"provider": "x", "operation": "keygen"}, "expect": "REJECT"},
                                           example]}  # fmt: skip


def test_failing_examples_refuse_the_document() -> None:
    passing = parse_document(_with_example("APPROVE"))
    snapshot = compile_snapshot(passing, version=1, published_at=0.0, sha256="")
    check_examples(passing, snapshot)
    assert passing.examples[1].expect is Action.APPROVE
    for failing in (_with_example("REJECT"), _with_example("APPROVE", ["amount_over_limit"])):
        document = parse_document(failing)
        with pytest.raises(PolicyError) as refused:
            check_examples(document, compile_snapshot(document, version=1, published_at=0.0, sha256=""))
        assert refused.value.path == "examples[1]"
        assert "small" in refused.value.reason
