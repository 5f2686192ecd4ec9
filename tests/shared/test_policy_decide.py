"""decide(): every rule kind approves and rejects; fail-closed and default behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from shared.policy.document import parse_document
from shared.policy.model import Action, Decision, DecisionRequest, ExpectedOrder, Operation, Transfer
from shared.policy.snapshot import PolicySnapshot, compile_snapshot, decide

TREASURY = "0x1111111111111111111111111111111111111111"
OTHER = "0x999999999999999999999999999999999999abcd"
ROUTER = "0xe012f3957226894b1a2a44b3ef5070417a069dc2"


def snapshot(*rules: Mapping[str, object], defaults: dict[str, str] | None = None) -> PolicySnapshot:
    document = parse_document({"rules": list(rules), "defaults": defaults or {}})
    return compile_snapshot(document, version=7, published_at=1.0, sha256="test")


def transfer(amount: str | None = "10", destination: str | None = TREASURY, **extra: object) -> Transfer:
    return Transfer(
        chain=str(extra.get("chain", "ETH")),
        asset=str(extra.get("asset", "USDT")),
        amount=None if amount is None else Decimal(amount),
        destination=destination,
        contract=extra.get("contract"),  # type: ignore[arg-type]
        unlimited_approval=bool(extra.get("unlimited_approval", False)),
    )


def withdraw(*transfers: Transfer, provider: str = "chainup_cosigner", **extra: object) -> DecisionRequest:
    return DecisionRequest(provider, Operation.WITHDRAW, "r-1", transfers=transfers, **extra)  # type: ignore[arg-type]


def codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


LIMIT: dict[str, object] = {
    "id": "usdt",
    "kind": "amount_limit",
    "match": {"chain": "ETH", "asset": "USDT"},
    "max_amount": "100",
}


def test_no_snapshot_fails_closed() -> None:
    decision = decide(None, withdraw(transfer()))
    assert decision.action is Action.REJECT
    assert codes(decision) == ["no_policy"]
    assert decision.policy_version is None


def test_ping_is_approved_when_a_policy_is_loaded() -> None:
    decision = decide(snapshot(LIMIT), DecisionRequest("cobo_tss", Operation.PING, ""))
    assert decision.action is Action.APPROVE
    assert decision.policy_version == 7


def test_amount_limit_approves_within_and_rejects_over() -> None:
    policy = snapshot(LIMIT)
    ok = decide(policy, withdraw(transfer("100")))
    assert ok.action is Action.APPROVE and ok.reasons[0].rule == "usdt"
    over = decide(policy, withdraw(transfer("100.000001")))
    assert over.action is Action.REJECT and codes(over) == ["amount_over_limit"]
    assert decide(policy, withdraw(transfer(None))).reasons[0].code == "amount_unknown"


def test_every_applicable_limit_must_hold() -> None:
    policy = snapshot(LIMIT, {"id": "cosigner", "kind": "amount_limit", "match": {"provider": "chainup_cosigner"},
                              "max_amount": "50"})  # fmt: skip
    assert codes(decide(policy, withdraw(transfer("60")))) == ["amount_over_limit"]
    assert decide(policy, withdraw(transfer("60"), provider="uuwallet")).action is Action.APPROVE


def test_uncovered_transfer_falls_to_the_provider_default() -> None:
    policy = snapshot(LIMIT, defaults={"chainup_cosigner": "APPROVE", "*": "REJECT"})
    btc = transfer("5", chain="BTC", asset="BTC")
    assert decide(policy, withdraw(btc)).action is Action.APPROVE
    assert codes(decide(policy, withdraw(btc))) == ["default_action"]
    assert decide(policy, withdraw(btc, provider="uuwallet")).reasons[0].rule == "defaults.*"
    # One covered and one uncovered transfer: still the default, not an approval.
    assert decide(snapshot(LIMIT), withdraw(transfer("1"), btc)).action is Action.REJECT


def test_destination_deny_list_rejects_whatever_the_case() -> None:
    policy = snapshot(LIMIT, {"id": "sanctions", "kind": "destinations", "deny": [OTHER.upper().replace("0X", "0x")]})
    assert decide(policy, withdraw(transfer())).action is Action.APPROVE
    mixed_case = "0x" + OTHER[2:].upper()
    decision = decide(policy, withdraw(transfer(destination=mixed_case)))
    assert decision.action is Action.REJECT and codes(decision) == ["destination_denied"]


def test_deny_only_rules_never_approve_on_their_own() -> None:
    policy = snapshot({"id": "sanctions", "kind": "destinations", "deny": [OTHER]})
    assert codes(decide(policy, withdraw(transfer()))) == ["default_action"]


def test_destination_allow_list() -> None:
    policy = snapshot({"id": "treasury", "kind": "destinations", "allow": [TREASURY]})
    assert decide(policy, withdraw(transfer())).action is Action.APPROVE
    assert codes(decide(policy, withdraw(transfer(destination=OTHER)))) == ["destination_not_allowed"]
    assert codes(decide(policy, withdraw(transfer(destination=None)))) == ["destination_unknown"]


def test_named_lists_are_resolved() -> None:
    document = parse_document({
        "lists": {"treasury": [TREASURY]},
        "rules": [{"id": "t", "kind": "destinations", "allow_lists": ["treasury"]}],
    })  # fmt: skip
    policy = compile_snapshot(document, version=1, published_at=0.0, sha256="")
    assert decide(policy, withdraw(transfer())).action is Action.APPROVE
    assert decide(policy, withdraw(transfer(destination=OTHER))).action is Action.REJECT


def test_contract_allowlist() -> None:
    policy = snapshot({"id": "web3", "kind": "contracts", "allow": [ROUTER]})
    call = DecisionRequest("chainup_cosigner", Operation.WEB3, "w", transfers=(transfer("0", contract=ROUTER.upper()),))
    assert decide(policy, call).action is Action.APPROVE
    other = DecisionRequest("chainup_cosigner", Operation.WEB3, "w", transfers=(transfer("0", contract=OTHER),))
    assert codes(decide(policy, other)) == ["contract_not_allowed"]


def test_unlimited_approval_is_denied_unless_allowlisted() -> None:
    approve_all = transfer(None, contract=ROUTER, unlimited_approval=True)
    call = DecisionRequest("chainup_cosigner", Operation.WEB3, "w", transfers=(approve_all,))
    # No contracts rule at all: a built-in refusal, whatever the default says.
    assert codes(decide(snapshot(LIMIT, defaults={"*": "APPROVE"}), call)) == ["unlimited_approval_denied"]
    only_calls = snapshot({"id": "web3", "kind": "contracts", "allow": [ROUTER]})
    assert codes(decide(only_calls, call)) == ["unlimited_approval_denied"]
    allowed = snapshot({"id": "web3", "kind": "contracts", "allow": [ROUTER], "unlimited_approval": [ROUTER]})
    assert decide(allowed, call).action is Action.APPROVE


def test_tss_node_threshold_and_curve() -> None:
    policy = snapshot({"id": "kg", "kind": "tss", "match": {"operation": ["keygen", "reshare"]},
                       "node_ids": ["a", "b", "c"], "min_threshold": 2, "curves": ["secp256k1"]})  # fmt: skip

    def keygen(nodes: tuple[str, ...], threshold: int | None, curve: str | None) -> list[str]:
        request = DecisionRequest("cobo_tss", Operation.KEYGEN, "k", node_ids=nodes, threshold=threshold, curve=curve)
        return codes(decide(policy, request))

    assert keygen(("a", "b"), 2, "SECP256K1") == ["allowed"]
    assert keygen(("a", "x"), 2, "SECP256K1") == ["node_not_allowed"]
    assert keygen((), 2, "SECP256K1") == ["node_ids_missing"]
    assert keygen(("a", "b"), 1, "SECP256K1") == ["threshold_below_minimum"]
    assert keygen(("a", "b"), None, "SECP256K1") == ["threshold_unknown"]
    assert keygen(("a", "b"), 2, "ED25519") == ["curve_not_allowed"]
    assert keygen(("a", "b"), 2, None) == ["curve_unknown"]


def test_keysign_signature_type_and_protocol() -> None:
    policy = snapshot({"id": "ks", "kind": "tss", "match": {"provider": "cobo_tss", "operation": "keysign"},
                       "signature_types": ["ECDSA"], "protocols": ["GG18", "LINDELL"]})  # fmt: skip

    def keysign(signature_type: str, protocol: str) -> list[str]:
        request = DecisionRequest("cobo_tss", Operation.KEYSIGN, "s", signature_type=signature_type, protocol=protocol)
        return codes(decide(policy, request))

    assert keysign("ecdsa", "Lindell") == ["allowed"]
    assert keysign("SCHNORR", "GG18") == ["signature_type_not_allowed"]
    assert keysign("ECDSA", "EDDSATSS") == ["protocol_not_allowed"]


def test_keysign_transfers_still_need_limits() -> None:
    policy = snapshot({"id": "ks", "kind": "tss", "signature_types": ["ECDSA"]})
    request = DecisionRequest("cobo_tss", Operation.KEYSIGN, "s", signature_type="ECDSA", transfers=(transfer(),))
    assert codes(decide(policy, request)) == ["default_action"]


def test_wallet_allow_and_freeze() -> None:
    policy = snapshot(LIMIT, {"id": "w", "kind": "wallets", "allow": ["v1", "v2"], "frozen": ["v2"]})
    assert decide(policy, withdraw(transfer(), wallet="v1")).action is Action.APPROVE
    assert codes(decide(policy, withdraw(transfer(), wallet="v2"))) == ["wallet_frozen"]
    assert codes(decide(policy, withdraw(transfer(), wallet="v3"))) == ["wallet_not_allowed"]
    assert codes(decide(policy, withdraw(transfer()))) == ["wallet_unknown"]


def test_speed_up_rounds() -> None:
    policy = snapshot(LIMIT, {"id": "su", "kind": "speed_up", "max_rounds": 0})

    def with_round(value: str) -> Decision:
        return decide(policy, withdraw(transfer(), attributes=(("pending_round", value),)))

    assert with_round("false").action is Action.APPROVE
    assert codes(with_round("true")) == ["speed_up_over_limit"]
    assert codes(with_round("maybe")) == ["speed_up_invalid"]
    assert codes(with_round("²")) == ["speed_up_invalid"]


@dataclass
class Orders:
    orders: dict[tuple[str, str], ExpectedOrder]

    def lookup(self, provider: str, order_ref: str) -> ExpectedOrder | None:
        return self.orders.get((provider, order_ref))


def _order(**changes: object) -> ExpectedOrder:
    fields: dict[str, object] = {"provider": "uuwallet", "order_ref": "o-1", "chain": "ETH", "asset": "USDT",
                                 "destination": TREASURY, "amount": Decimal("10"), "expires_at": 2000.0}  # fmt: skip
    fields.update(changes)
    return ExpectedOrder(**fields)  # type: ignore[arg-type]


def test_expected_order_required() -> None:
    policy = snapshot({"id": "eo", "kind": "expected_order", "match": {"provider": "uuwallet"}})
    request = withdraw(transfer("10.00"), provider="uuwallet", order_ref="o-1")

    def with_order(order: ExpectedOrder | None, *, now: float = 1000.0) -> list[str]:
        orders = Orders({("uuwallet", "o-1"): order} if order else {})
        return codes(decide(policy, request, orders=orders, now=now))

    assert with_order(_order()) == ["allowed"]
    assert with_order(None) == ["order_not_found"]
    assert with_order(_order(), now=2000.0) == ["order_expired"]
    assert with_order(_order(confirmed=True)) == ["order_already_confirmed"]
    assert with_order(_order(amount=Decimal("9"))) == ["order_mismatch"]
    assert with_order(_order(destination=OTHER)) == ["order_mismatch"]
    assert codes(decide(policy, request)) == ["order_registry_unavailable"]
    no_ref = withdraw(transfer(), provider="uuwallet")
    assert codes(decide(policy, no_ref, orders=Orders({}))) == ["order_ref_missing"]


def test_expected_order_without_transfers_matches_by_reference() -> None:
    policy = snapshot({"id": "eo", "kind": "expected_order"})
    request = DecisionRequest("uuwallet", Operation.WITHDRAW, "cb", order_ref="o-1")
    orders = Orders({("uuwallet", "o-1"): _order(expires_at=None)})
    assert decide(policy, request, orders=orders).action is Action.APPROVE


def test_deposit_risk_threshold() -> None:
    policy = snapshot({"id": "risk", "kind": "deposit_risk", "match": {"provider": "uuwallet"}, "max_risk_level": 60})

    def deposit(*attributes: tuple[str, str]) -> list[str]:
        return codes(decide(policy, DecisionRequest("uuwallet", Operation.DEPOSIT, "d", attributes=attributes)))

    assert deposit(("risk_level_from", "10"), ("risk_level_to", "60")) == ["allowed"]
    assert deposit(("risk_level_to", "61")) == ["risk_level_over_threshold"]
    assert deposit(("risk_level", "60.5")) == ["risk_level_over_threshold"]
    assert deposit() == ["risk_level_unknown"]
    assert deposit(("risk_level", "1e9")) == ["risk_level_invalid"]


def test_all_objections_are_reported() -> None:
    policy = snapshot(LIMIT, {"id": "sanctions", "kind": "destinations", "deny": [OTHER]})
    decision = decide(policy, withdraw(transfer("500", destination=OTHER)))
    assert sorted(codes(decision)) == ["amount_over_limit", "destination_denied"]


def test_unnamed_chains_share_one_memo_entry() -> None:
    policy = snapshot(LIMIT, defaults={"*": "APPROVE"})
    for i in range(50):
        decide(policy, withdraw(transfer("1", chain=f"CHAIN{i}", asset=f"ASSET{i}")))
    assert len(policy.transfer_memo) == 1
    assert decide(policy, withdraw(transfer("101", chain="eth", asset="usdt"))).action is Action.REJECT
