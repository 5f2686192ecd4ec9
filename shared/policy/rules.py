"""What each kind of policy rule means: compiled, immutable rules and their pure checks.

A check answers with a `Reason` when the rule objects, `True` when the rule holds and vouches for
what it looked at (an allowlist that contains the address, a limit that is respected), and
`False` when it holds but says nothing (a deny list that does not contain the address). Only
vouching rules make a request approvable; rules that merely forbid never approve on their own,
so a typo'd scope falls through to the provider's default instead of approving everything.

Every applicable rule must hold: two allowlists that both apply are both required.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import DecisionRequest, OrderView, Reason, Transfer

ANY = "*"


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a rule applies; each dimension is a tuple of values, `("*",)` meaning any."""

    providers: tuple[str, ...] = (ANY,)
    operations: tuple[str, ...] = (ANY,)
    chains: tuple[str, ...] = (ANY,)
    assets: tuple[str, ...] = (ANY,)


def _listed(
    rule_id: str, what: str, value: str | None, allow: frozenset[str] | None, deny: frozenset[str], denied: str
) -> Reason | bool:
    """An allow/deny list check: objects when `value` is denied, or missing from a given `allow`."""
    if value is None:
        return Reason(f"{what}_unknown", rule_id, f"the request names no {what}") if allow is not None else False
    if value in deny:
        return Reason(denied, rule_id, value)
    if allow is None:
        return False
    return True if value in allow else Reason(f"{what}_not_allowed", rule_id, value)


# -- transfer rules: keyed by (provider, operation, chain, asset) -----------------------------


@dataclass(frozen=True, slots=True)
class AmountLimit:
    """A transfer of this chain/asset may move at most `max_amount`."""

    id: str
    scope: Scope
    max_amount: Decimal

    def check(self, transfer: Transfer, destination: str | None) -> Reason | bool:
        # An unlimited approval moves nothing when signed; the contracts rules judge it.
        if transfer.unlimited_approval:
            return False
        if transfer.amount is None:
            return Reason("amount_unknown", self.id, "the request carries no amount")
        if transfer.amount > self.max_amount:
            return Reason("amount_over_limit", self.id, f"{transfer.amount} > {self.max_amount} {transfer.asset}")
        return True


@dataclass(frozen=True, slots=True)
class DestinationRule:
    """Destinations must be in `allow` (when given) and never in `deny`."""

    id: str
    scope: Scope
    allow: frozenset[str] | None
    deny: frozenset[str]

    def check(self, transfer: Transfer, destination: str | None) -> Reason | bool:
        return _listed(self.id, "destination", destination, self.allow, self.deny, "destination_denied")


@dataclass(frozen=True, slots=True)
class ContractRule:
    """Contract interactions must target `allow` (when given); unlimited approvals need
    `unlimited_approval` to list the contract, and are denied when no contracts rule applies."""

    id: str
    scope: Scope
    allow: frozenset[str] | None
    unlimited_approval: frozenset[str]

    def check(self, transfer: Transfer, destination: str | None) -> Reason | bool:
        contract = normalize_address(transfer.contract) if transfer.contract else None
        if transfer.unlimited_approval:
            target = contract or destination
            if target is None or target not in self.unlimited_approval:
                return Reason("unlimited_approval_denied", self.id, target or "unknown contract")
        if contract is None:
            return transfer.unlimited_approval
        if self.allow is None:
            return transfer.unlimited_approval
        return True if contract in self.allow else Reason("contract_not_allowed", self.id, contract)


TransferRule = AmountLimit | DestinationRule | ContractRule


# -- request rules: keyed by (provider, operation) --------------------------------------------


def _member(rule_id: str, what: str, value: str | None, allowed: frozenset[str] | None) -> Reason | None:
    if allowed is None:
        return None
    if value is None:
        return Reason(f"{what}_unknown", rule_id, f"the request names no {what}")
    normal = normalize_symbol(value)
    return None if normal in allowed else Reason(f"{what}_not_allowed", rule_id, normal)


@dataclass(frozen=True, slots=True)
class TssRule:
    """Key generation, resharing and signing constraints: participants, threshold, algorithms."""

    id: str
    scope: Scope
    node_ids: frozenset[str] | None = None
    min_threshold: int | None = None
    curves: frozenset[str] | None = None
    signature_types: frozenset[str] | None = None
    protocols: frozenset[str] | None = None
    vouches_for_transfers = False

    def check(self, request: DecisionRequest, orders: OrderView | None, now: float) -> Reason | bool:
        # `is not None` guards first: most rules set one or two of the five constraints.
        return (
            (self.node_ids is not None and self._nodes(request))
            or (self.min_threshold is not None and self._threshold(request))
            or (self.curves is not None and _member(self.id, "curve", request.curve, self.curves))
            or (
                self.signature_types is not None
                and _member(self.id, "signature_type", request.signature_type, self.signature_types)
            )
            or (self.protocols is not None and _member(self.id, "protocol", request.protocol, self.protocols))
            or True
        )

    def _nodes(self, request: DecisionRequest) -> Reason | None:
        if self.node_ids is None:
            return None
        if not request.node_ids:
            return Reason("node_ids_missing", self.id, "the request names no participants")
        unknown = [node for node in request.node_ids if node not in self.node_ids]
        return Reason("node_not_allowed", self.id, ",".join(unknown)[:200]) if unknown else None

    def _threshold(self, request: DecisionRequest) -> Reason | None:
        if self.min_threshold is None:
            return None
        if request.threshold is None:
            return Reason("threshold_unknown", self.id, "the request carries no threshold")
        if request.threshold < self.min_threshold:
            return Reason("threshold_below_minimum", self.id, f"{request.threshold} < {self.min_threshold}")
        return None


@dataclass(frozen=True, slots=True)
class WalletRule:
    """The acting wallet/vault must be in `allow` (when given) and not in `frozen`."""

    id: str
    scope: Scope
    allow: frozenset[str] | None
    frozen: frozenset[str]
    vouches_for_transfers = False

    def check(self, request: DecisionRequest, orders: OrderView | None, now: float) -> Reason | bool:
        wallet = request.wallet.strip() if request.wallet else None
        return _listed(self.id, "wallet", wallet, self.allow, self.frozen, "wallet_frozen")


def attribute(request: DecisionRequest, name: str) -> str | None:
    """The provider attribute `name` of `request`, or None."""
    for key, value in request.attributes:
        if key == name:
            return value
    return None


def _small_int(raw: str) -> int | None:
    """A non-negative decimal of at most 6 integer digits, rounded up; None when it is not one."""
    head, _, tail = raw.strip().partition(".")
    if not (head.isascii() and head.isdigit() and len(head) <= 6):
        return None
    if tail and not (tail.isascii() and tail.isdigit()):
        return None
    # Rounded up: a risk level of 50.5 must not pass a threshold of 50.
    return int(head) + (1 if tail.strip("0") else 0)


def _speed_up_round(raw: str) -> int | None:
    # ChainUp sends `pending_round` as a boolean [V]; a codec may also pass a round count.
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return int(lowered == "true")
    return _small_int(lowered)


@dataclass(frozen=True, slots=True)
class SpeedUpRule:
    """At most `max_rounds` speed-up (replacement) rounds per request; 0 forbids speed-ups."""

    id: str
    scope: Scope
    max_rounds: int
    vouches_for_transfers = False

    def check(self, request: DecisionRequest, orders: OrderView | None, now: float) -> Reason | bool:
        raw = attribute(request, "pending_round")
        if raw is None:
            return False
        rounds = _speed_up_round(raw)
        if rounds is None:
            return Reason("speed_up_invalid", self.id, raw[:50])
        if rounds > self.max_rounds:
            return Reason("speed_up_over_limit", self.id, f"round {rounds} > {self.max_rounds}")
        return False


@dataclass(frozen=True, slots=True)
class ExpectedOrderRule:
    """The request must match a registered, unexpired, unconfirmed order (exact amount)."""

    id: str
    scope: Scope
    vouches_for_transfers = True

    def check(self, request: DecisionRequest, orders: OrderView | None, now: float) -> Reason | bool:
        if orders is None:
            return Reason("order_registry_unavailable", self.id, "no expected-order view was given")
        if not request.order_ref:
            return Reason("order_ref_missing", self.id, "the request carries no order reference")
        order = orders.lookup(request.provider, request.order_ref)
        if order is None:
            return Reason("order_not_found", self.id, request.order_ref[:100])
        if order.expires_at is not None and order.expires_at <= now:
            return Reason("order_expired", self.id, request.order_ref[:100])
        if order.confirmed:
            return Reason("order_already_confirmed", self.id, request.order_ref[:100])
        for transfer in request.transfers:
            mismatch = _order_mismatch(transfer, order.chain, order.asset, order.destination, order.amount)
            if mismatch:
                return Reason("order_mismatch", self.id, mismatch)
        return True


def _order_mismatch(transfer: Transfer, chain: str, asset: str, destination: str, amount: Decimal) -> str:
    if normalize_symbol(transfer.chain) != normalize_symbol(chain):
        return "chain"
    if normalize_symbol(transfer.asset) != normalize_symbol(asset):
        return "asset"
    if transfer.destination is None or normalize_address(transfer.destination) != normalize_address(destination):
        return "destination"
    if transfer.amount is None or transfer.amount != amount:
        return "amount"
    return ""


def _risk_level(request: DecisionRequest) -> int | None:
    # UU Wallet reports riskLevelFrom/riskLevelTo [V]; codecs may pass one or both, or a single level.
    levels: list[int] = []
    for name in ("risk_level", "risk_level_from", "risk_level_to"):
        raw = attribute(request, name)
        if raw is None:
            continue
        level = _small_int(raw)
        if level is None:
            return -1
        levels.append(level)
    return max(levels) if levels else None


@dataclass(frozen=True, slots=True)
class DepositRiskRule:
    """A deposit whose risk level exceeds `max_risk_level` (0-100) is held (REJECT)."""

    id: str
    scope: Scope
    max_risk_level: int
    vouches_for_transfers = True

    def check(self, request: DecisionRequest, orders: OrderView | None, now: float) -> Reason | bool:
        level = _risk_level(request)
        if level is None:
            return Reason("risk_level_unknown", self.id, "the deposit carries no risk level")
        if level < 0:
            return Reason("risk_level_invalid", self.id, "a risk level is not a number")
        if level > self.max_risk_level:
            return Reason("risk_level_over_threshold", self.id, f"{level} > {self.max_risk_level}")
        return True


RequestRule = TssRule | WalletRule | SpeedUpRule | ExpectedOrderRule | DepositRiskRule
Rule = TransferRule | RequestRule
TRANSFER_RULES = (AmountLimit, DestinationRule, ContractRule)
