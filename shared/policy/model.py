"""The provider-neutral question a synchronous provider asks, and the answer it gets.

Every synchronous codec (Cobo TSS, ChainUp co-signer, ChainUp/UU Wallet withdrawal confirmation)
maps its typed request onto `DecisionRequest`; the evaluator answers with a `Decision`. Keeping
one shape means one policy language and one audit format across providers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


class Action(str, enum.Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


class Operation(str, enum.Enum):
    """What the signer is about to do."""

    PING = "ping"
    KEYGEN = "keygen"
    KEYSIGN = "keysign"
    RESHARE = "reshare"
    KEYSHARESIGN = "keysharesign"
    WITHDRAW = "withdraw"  # a value transfer to a destination (ChainUp, UU Wallet)
    WEB3 = "web3"  # a contract interaction (ChainUp web3, Cobo contract call)
    DEPOSIT = "deposit"  # an incoming deposit (UU Wallet riskLevel): REJECT means "hold it"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One value movement that a signature would authorise."""

    chain: str  # normalised upper-case chain id, e.g. "ETH", "BTC", "TRON"
    asset: str  # normalised upper-case asset/token symbol or contract address
    amount: Decimal | None  # None: unknown; never a float
    destination: str | None  # normalised address (EVM: lower-case 0x…)
    contract: str | None = None  # contract called, when the transfer is a contract interaction
    unlimited_approval: bool = False  # ERC-20 approve of "everything" (ChainUp amount -1)


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """A synchronous approve/reject question, already authenticated and parsed."""

    provider: str  # "cobo_tss", "chainup_cosigner", "uuwallet", "chainup_waas"
    operation: Operation
    request_id: str
    wallet: str | None = None  # wallet/vault/account id the request acts for
    transfers: tuple[Transfer, ...] = ()
    node_ids: tuple[str, ...] = ()  # TSS participants
    threshold: int | None = None
    # The policy compares these case-insensitively; codecs should report names, not vendor
    # numbers ("SECP256K1"/"ED25519", "ECDSA"/"EDDSA"/"SCHNORR", "GG18"/"LINDELL"/"EDDSATSS").
    curve: str | None = None
    signature_type: str | None = None
    protocol: str | None = None
    order_ref: str | None = None  # id to match against the expected-order registry
    attributes: tuple[tuple[str, str], ...] = field(default=())  # extra provider facts for reasons


@dataclass(frozen=True, slots=True)
class Reason:
    """A machine-readable reason: a stable code, the rule that produced it and a short text."""

    code: str  # e.g. "amount_over_limit", "destination_denied", "no_policy"
    rule: str  # rule id from the document, or "" for built-in checks
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[Reason, ...]
    policy_version: int | None  # None when no snapshot was loaded (fail closed)


# -- expected orders (the registry the merchant's backend fills; see shared/orders.py) ------


@dataclass(frozen=True, slots=True)
class ExpectedOrder:
    """A withdrawal the merchant's backend registered before the provider asks about it."""

    provider: str
    order_ref: str  # the provider's request id / the merchant's order id
    chain: str  # normalised like Transfer.chain
    asset: str
    destination: str  # normalised address
    amount: Decimal
    expires_at: float | None  # unix seconds; None: never expires
    confirmed: bool = False  # a second confirmation already consumed it
    extras: tuple[tuple[str, str], ...] = ()  # provider facts for the reply (UU Wallet tenantUserId)

    def extra(self, key: str) -> str | None:
        """The provider extra `key`, or None."""
        return next((value for name, value in self.extras if name == key), None)


class OrderView(Protocol):
    """Read access to the expected-order registry; implementations must not do I/O per call."""

    def lookup(self, provider: str, order_ref: str) -> ExpectedOrder | None: ...
