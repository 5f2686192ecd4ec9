"""The compiled, immutable policy and the pure decision function every synchronous provider calls.

`compile_snapshot` turns a validated `PolicyDocument` into dicts keyed by (provider, operation)
and (provider, operation, chain, asset), with `"*"` standing for any value, so that `decide` is
a handful of dict lookups and set memberships: no I/O, no walking of the document.

How a decision is reached:
1. no snapshot: REJECT `no_policy` (fail closed); a ping: APPROVE `ping`.
2. every applicable rule is checked; any objection: REJECT with all objections as reasons.
3. APPROVE when every transfer is vouched for (by a limit, an allowlist or a matched expected
   order / accepted deposit risk), or, for a request without transfers, when a request rule
   vouches for it; the reasons name the vouching rules.
4. otherwise the provider's default action (`defaults`), REJECT when none is set.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from types import MappingProxyType
from typing import TypeVar

from shared.errors import PolicyError
from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.document import PolicyDocument
from shared.policy.model import (
    Action,
    Decision,
    DecisionRequest,
    ExpectedOrder,
    Operation,
    OrderView,
    Reason,
    Transfer,
)
from shared.policy.rules import ANY, TRANSFER_RULES, ContractRule, RequestRule, Rule, TransferRule

K = TypeVar("K", bound=tuple[str, ...])
R = TypeVar("R", bound="Rule")
_EMPTY: tuple[()] = ()
_NO_POLICY = Decision(Action.REJECT, (Reason("no_policy", "", "no policy snapshot is loaded"),), None)
_UNLIMITED_DENIED = "unlimited_approval_denied"


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """One published policy version, compiled for lookups; never changed after compilation
    (apart from `transfer_memo`, a cache of merged lookups that does not change any answer)."""

    version: int
    published_at: float  # unix seconds
    sha256: str
    request_rules: Mapping[tuple[str, str], tuple[RequestRule, ...]]  # merged: (provider|*, operation)
    transfer_rules: Mapping[tuple[str, str, str, str], tuple[TransferRule, ...]]  # as written, "*" = any
    defaults: Mapping[str, Action]
    rule_count: int
    named: tuple[frozenset[str], frozenset[str], frozenset[str]]  # providers, chains, assets rules name
    allowed: Mapping[str, Reason]  # rule id -> its "allowed" reason, built once
    transfer_memo: dict[tuple[str, str, str, str], tuple[TransferRule, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Wallets frozen by the workers' risk checks (wallet -> reason code), merged in by the holder:
    # a freeze is part of the snapshot a decision is a pure function of, not a lookup beside it.
    risk_frozen: Mapping[str, str] = field(default_factory=dict, repr=False)

    def with_risk_frozen(self, frozen: Mapping[str, str]) -> PolicySnapshot:
        """This version with the given risk freezes (the transfer memo is shared: same rules)."""
        return dataclasses.replace(self, risk_frozen=frozen)

    def rules_for_request(self, provider: str, operation: str) -> tuple[RequestRule, ...]:
        index = self.request_rules
        return index.get((provider, operation)) or index.get((ANY, operation), _EMPTY)

    def rules_for_transfer(self, provider: str, operation: str, chain: str, asset: str) -> tuple[TransferRule, ...]:
        providers, chains, assets = self.named
        # Values no rule names behave exactly like "*": folding them keeps the memo bounded by the
        # policy, whatever chain or asset strings the requests carry.
        key = (
            provider if provider in providers else ANY,
            operation,
            chain if chain in chains else ANY,
            asset if asset in assets else ANY,
        )
        found = self.transfer_memo.get(key)
        if found is None:
            p, o, c, a = key
            keys = product((p, ANY), (o, ANY), (c, ANY), (a, ANY))
            found = self.transfer_memo[key] = _merge(self.transfer_rules, keys)
        return found

    def default_for(self, provider: str) -> Decision:
        """The decision when no rule covers a request of `provider`."""
        action = self.defaults.get(provider)
        rule = f"defaults.{provider}"
        if action is None:
            action, rule = self.defaults.get(ANY, Action.REJECT), f"defaults.{ANY}"
        return Decision(action, (Reason("default_action", rule, "no rule covers the request"),), self.version)


def compile_snapshot(document: PolicyDocument, *, version: int, published_at: float, sha256: str) -> PolicySnapshot:
    """Index the rules of a validated document for `decide`."""
    by_request: defaultdict[tuple[str, str], list[RequestRule]] = defaultdict(list)
    by_transfer: defaultdict[tuple[str, str, str, str], list[TransferRule]] = defaultdict(list)
    for rule in document.rules:
        _index(rule, by_request, by_transfer)
    request_index = {key: tuple(rules) for key, rules in by_request.items()}
    providers = {provider for provider, _ in request_index} | {ANY}
    merged_requests = {
        (provider, op.value): _merge(request_index, product((provider, ANY), (op.value, ANY)))
        for provider in providers
        for op in Operation
    }
    return PolicySnapshot(
        version=version,
        published_at=published_at,
        sha256=sha256,
        request_rules=MappingProxyType(merged_requests),
        transfer_rules=MappingProxyType({key: tuple(rules) for key, rules in by_transfer.items()}),
        defaults=MappingProxyType(dict(document.defaults)),
        rule_count=len(document.rules),
        named=(_named(by_transfer, 0), _named(by_transfer, 2), _named(by_transfer, 3)),
        allowed=MappingProxyType({rule.id: Reason("allowed", rule.id) for rule in document.rules}),
    )


def _named(index: Mapping[tuple[str, str, str, str], object], position: int) -> frozenset[str]:
    return frozenset(key[position] for key in index)


def _merge(index: Mapping[K, tuple[R, ...]], keys: Iterable[K]) -> tuple[R, ...]:
    """The rules of every key in `keys`, each key once (a "*" request value repeats keys)."""
    return tuple(rule for key in dict.fromkeys(keys) for rule in index.get(key, ()))


def _index(
    rule: Rule,
    by_request: defaultdict[tuple[str, str], list[RequestRule]],
    by_transfer: defaultdict[tuple[str, str, str, str], list[TransferRule]],
) -> None:
    scope = rule.scope
    if isinstance(rule, TRANSFER_RULES):
        for key in product(scope.providers, scope.operations, scope.chains, scope.assets):
            by_transfer[key].append(rule)
    else:
        for provider, operation in product(scope.providers, scope.operations):
            by_request[(provider, operation)].append(rule)


def decide(
    snapshot: PolicySnapshot | None,
    request: DecisionRequest,
    *,
    orders: OrderView | None = None,
    now: float | None = None,
) -> Decision:
    """Approve or reject `request` under `snapshot`; pure apart from reading the clock for order
    expiry when `now` is not given. Fails closed: no snapshot means REJECT `no_policy`."""
    if snapshot is None:
        return _NO_POLICY
    if request.operation is Operation.PING:
        return Decision(Action.APPROVE, (Reason("ping", ""),), snapshot.version)
    objections: list[Reason] = []
    vouchers: dict[str, None] = {}  # rule ids, in order, without repeats
    if request.wallet is not None and (why := snapshot.risk_frozen.get(request.wallet)) is not None:
        objections.append(Reason("wallet_frozen_by_risk", "", why))
    vouched = _check_request(snapshot, request, orders, time.time() if now is None else now, objections, vouchers)
    covered = all([_check_transfer(snapshot, request, t, objections, vouchers) for t in request.transfers])
    if objections:
        return Decision(Action.REJECT, tuple(objections), snapshot.version)
    if (covered or vouched) if request.transfers else vouchers:
        allowed = snapshot.allowed
        return Decision(Action.APPROVE, tuple([allowed[rule_id] for rule_id in vouchers]), snapshot.version)
    return snapshot.default_for(request.provider)


def _check_request(
    snapshot: PolicySnapshot,
    request: DecisionRequest,
    orders: OrderView | None,
    now: float,
    objections: list[Reason],
    vouchers: dict[str, None],
) -> bool:
    """Run the request rules; True when one of them vouches for the transfers as well."""
    vouched = False
    # `_value_`, not `.value`: Enum's `value` is a Python-level descriptor, measurably slow here.
    operation: str = request.operation._value_
    for rule in snapshot.rules_for_request(request.provider, operation):
        result = rule.check(request, orders, now)
        if result is True:
            vouchers[rule.id] = None
            vouched = vouched or rule.vouches_for_transfers
        elif result is not False:
            objections.append(result)
    return vouched


def _check_transfer(
    snapshot: PolicySnapshot,
    request: DecisionRequest,
    transfer: Transfer,
    objections: list[Reason],
    vouchers: dict[str, None],
) -> bool:
    """Run the transfer rules on one transfer; True when one of them vouches for it."""
    # Codecs normalise already; doing it again here means a codec that forgets cannot open a
    # way around a deny list by re-casing an address.
    destination = normalize_address(transfer.destination) if transfer.destination else None
    chain, asset = normalize_symbol(transfer.chain), normalize_symbol(transfer.asset)
    covered = judged_by_contracts = False
    operation: str = request.operation._value_
    for rule in snapshot.rules_for_transfer(request.provider, operation, chain, asset):
        judged_by_contracts = judged_by_contracts or isinstance(rule, ContractRule)
        result = rule.check(transfer, destination)
        if result is True:
            vouchers[rule.id] = None
            covered = True
        elif result is not False:
            objections.append(result)
    if transfer.unlimited_approval and not judged_by_contracts:
        objections.append(Reason(_UNLIMITED_DENIED, "", "no contracts rule allowlists unlimited approvals here"))
    return covered


# -- examples --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ExampleOrders:
    """The registry an example sees: at most the one order it declares."""

    order: ExpectedOrder | None

    def lookup(self, provider: str, order_ref: str) -> ExpectedOrder | None:
        order = self.order
        return order if order and order.provider == provider and order.order_ref == order_ref else None


def check_examples(document: PolicyDocument, snapshot: PolicySnapshot, *, now: float | None = None) -> None:
    """Run the document's own examples; raises PolicyError(`examples[i]`, …) on the first that fails."""
    at = time.time() if now is None else now
    for i, example in enumerate(document.examples):
        decision = decide(snapshot, example.request, orders=_ExampleOrders(example.order), now=example.now or at)
        codes = {reason.code for reason in decision.reasons}
        missing = sorted(example.reasons - codes)
        if decision.action is not example.expect or missing:
            got = ", ".join(f"{r.code}({r.rule})" if r.rule else r.code for r in decision.reasons)
            raise PolicyError(
                f"examples[{i}]",
                f"{example.name}: expected {example.expect.value}"
                + (f" with {', '.join(missing)}" if missing else "")
                + f", got {decision.action.value}: {got}",
            )
