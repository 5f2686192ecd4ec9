"""Arbitrary documents never raise anything but PolicyError, and valid ones always compile and decide."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import PolicyError
from shared.policy.document import canonical_json, load_document, parse_document
from shared.policy.model import Action, DecisionRequest, Operation, Transfer
from shared.policy.snapshot import check_examples, compile_snapshot, decide

KEYS = [
    "rules", "defaults", "lists", "examples", "name", "id", "kind", "match", "provider", "operation", "chain",
    "asset", "max_amount", "allow", "allow_lists", "deny", "deny_lists", "unlimited_approval", "node_ids",
    "min_threshold", "curves", "signature_types", "protocols", "frozen", "max_rounds", "max_risk_level",
    "request", "expect", "reasons", "order", "transfers", "amount", "destination", "attributes", "threshold",
]  # fmt: skip
WORDS = [
    "amount_limit", "destinations", "contracts", "tss", "wallets", "speed_up", "expected_order", "deposit_risk",
    "withdraw", "keygen", "*", "ETH", "APPROVE", "REJECT", "0xAb", "1.5", "-1", "NaN", "1e999999", "", " ",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=40,
)

# One level of structure under known keys: reaches the field checks of every rule kind quickly.
shallow = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=4),
)


def _try_parse(data: object) -> None:
    try:
        document = parse_document(data)
    except PolicyError:
        return
    assert canonical_json(data)  # whatever validated can be stored
    snapshot = compile_snapshot(document, version=1, published_at=0.0, sha256="")
    with contextlib.suppress(PolicyError):
        check_examples(document, snapshot)


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_arbitrary_data_raises_only_policy_errors(data: object) -> None:
    _try_parse(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), shallow, max_size=4),
       st.lists(st.dictionaries(st.sampled_from(KEYS), shallow, max_size=6), max_size=4))  # fmt: skip
def test_near_valid_documents_raise_only_policy_errors(top: dict[str, object], rules: list[object]) -> None:
    _try_parse({**top, "rules": rules})


@settings(max_examples=150)
@given(st.one_of(st.text(max_size=200), st.text(max_size=200).map(lambda t: "{" + t)))  # YAML and JSON paths
def test_arbitrary_text_raises_only_policy_errors(text: str) -> None:
    with contextlib.suppress(PolicyError):
        _try_parse(load_document(text))


ATTRIBUTES = ["pending_round", "risk_level", "risk_level_to"]
RULES: st.SearchStrategy[dict[str, object]] = st.sampled_from(
    [
        {"id": "l", "kind": "amount_limit", "max_amount": "10", "match": {"chain": "ETH"}},
        {"id": "d", "kind": "destinations", "deny": ["0xAB"], "allow": ["0xcd", "T1"]},
        {"id": "c", "kind": "contracts", "allow": ["0xcd"], "unlimited_approval": ["0xcd"]},
        {"id": "t", "kind": "tss", "node_ids": ["n1"], "min_threshold": 2, "curves": ["ED25519"]},
        {"id": "w", "kind": "wallets", "allow": ["v"], "frozen": ["f"]},
        {"id": "s", "kind": "speed_up", "max_rounds": 1},
        {"id": "o", "kind": "expected_order"},
        {"id": "r", "kind": "deposit_risk", "max_risk_level": 50},
    ]
)
text = st.one_of(st.none(), st.sampled_from(["0xAB", "0xcd", "T1", "v", "f", "n1", "ETH", " "]), st.text(max_size=6))
transfers = st.builds(
    Transfer,
    chain=st.sampled_from(["ETH", "eth", "BTC", ""]),
    asset=st.sampled_from(["ETH", "USDT", "0xCD"]),
    amount=st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False)),
    destination=text,
    contract=text,
    unlimited_approval=st.booleans(),
)
requests = st.builds(
    DecisionRequest,
    provider=st.sampled_from(["cobo_tss", "uuwallet", "x"]),
    operation=st.sampled_from(list(Operation)),
    request_id=st.text(max_size=4),
    wallet=text,
    transfers=st.lists(transfers, max_size=3).map(tuple),
    node_ids=st.lists(st.sampled_from(["n1", "n2"]), max_size=3).map(tuple),
    threshold=st.one_of(st.none(), st.integers(0, 5)),
    curve=text,
    order_ref=text,
    attributes=st.lists(st.tuples(st.sampled_from(ATTRIBUTES), st.text(max_size=8)), max_size=3).map(tuple),
)  # fmt: skip


@settings(max_examples=250)
@given(st.lists(RULES, max_size=8, unique_by=lambda rule: str(rule["id"])), requests)
def test_decide_never_raises_and_rejects_with_reasons(rules: list[dict[str, object]], request: DecisionRequest) -> None:
    snapshot = compile_snapshot(parse_document({"rules": rules}), version=3, published_at=0.0, sha256="")
    decision = decide(snapshot, request, now=0.0)
    assert decision.policy_version == 3
    assert decision.reasons
    if decision.action is Action.APPROVE and request.operation is not Operation.PING:
        assert all(reason.code == "allowed" for reason in decision.reasons)
    assert all(isinstance(t.amount, Decimal | None) for t in request.transfers)
