"""Map a parsed Cobo TSS request onto the provider-neutral `DecisionRequest`.

Besides the mapping, `assess` finds the protocol-level reasons to refuse that no policy may
override: an unsupported request type, and for EVM key signing a `msg_hash_list` that is not the
signing hash of `transaction.raw_tx_info.unsigned_raw_tx` (the check Cobo's own Go template
does). For EVM, destination, amount and contract come from the raw transaction; the descriptive
`destination` fields only have to agree with it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal

from shared import evm
from shared.errors import InvalidInput
from shared.policy.model import DecisionRequest, Operation, Reason, Transfer
from shared.providers.cobo_tss import PROVIDER, CoboTssRequest, RequestType
from shared.providers.cobo_tss_fields import (
    ExtraInfo,
    KeyGenDetail,
    KeyShareSignDetail,
    KeySignDetail,
    ReshareDetail,
    TransactionInfo,
)

CURVES = {0: "secp256k1", 2: "ed25519"}
SIGNATURE_TYPES = {1: "ecdsa", 2: "eddsa", 3: "schnorr"}
PROTOCOLS = {1: "gg18", 2: "lindell", 3: "eddsatss"}
# [I] Cobo chain ids of EVM chains we know of. A chain missing here is still treated as EVM when
# a source or destination address has the 0x shape, so a new EVM chain is verified, not waved through.
EVM_CHAINS = frozenset(
    {"ETH", "SETH", "HETH", "BSC_BNB", "MATIC", "ARBITRUM_ETH", "OPT_ETH", "BASE_ETH", "AVAXC", "FTM", "LINEA_ETH"}
)
# Transactions that sign a message, not a transaction: there is no raw transaction to check.
_MESSAGE_TYPES = frozenset({"MessageSign"})
_EIP191 = "EVM_EIP_191_Signature"
_NATIVE_DECIMALS = 18  # every EVM chain's native coin uses 18 decimals


@dataclass(frozen=True, slots=True)
class Assessment:
    """The policy question for a request, plus reasons that reject it before any policy runs."""

    request: DecisionRequest
    rejections: tuple[Reason, ...] = ()


def assess(req: CoboTssRequest) -> Assessment:
    """Build the `DecisionRequest` for `req` and collect protocol-level rejections."""
    detail = req.detail
    if isinstance(detail, KeySignDetail):
        return _keysign(req, detail)
    if isinstance(detail, KeyGenDetail):
        return Assessment(_keygen(req, detail))
    if isinstance(detail, ReshareDetail):
        return Assessment(_reshare(req, detail))
    if isinstance(detail, KeyShareSignDetail):
        return Assessment(_keysharesign(req, detail))
    if req.request_type == RequestType.PING:
        return Assessment(DecisionRequest(PROVIDER, Operation.PING, req.request_id))
    reason = Reason("unsupported_request_type", "", f"request_type {req.request_type} is not supported")
    return Assessment(DecisionRequest(PROVIDER, Operation.KEYSIGN, req.request_id), (reason,))


def _keygen(req: CoboTssRequest, d: KeyGenDetail) -> DecisionRequest:
    return _group_change(req, Operation.KEYGEN, d.node_ids, d.threshold, d.curve, d.biz_task_id, task_id=d.task_id)


def _reshare(req: CoboTssRequest, d: ReshareDetail) -> DecisionRequest:
    facts = {"task_id": d.task_id, "old_group_id": d.old_group_id, "old_threshold": str(d.old_threshold)}
    return _group_change(req, Operation.RESHARE, d.new_node_ids, d.new_threshold, d.curve, d.biz_task_id, **facts)


def _group_change(
    req: CoboTssRequest,
    operation: Operation,
    node_ids: tuple[str, ...],
    threshold: int,
    curve: int,
    biz_task_id: str,
    **facts: str,
) -> DecisionRequest:
    """Key generation and resharing ask the same question: which nodes, what threshold, which curve."""
    return DecisionRequest(
        PROVIDER,
        operation,
        req.request_id,
        wallet=req.extra.vault_id or None,
        node_ids=node_ids,
        threshold=threshold,
        curve=CURVES.get(curve, f"unknown:{curve}"),
        order_ref=biz_task_id or None,
        attributes=_attrs(req.extra, **facts),
    )


def _keysharesign(req: CoboTssRequest, d: KeyShareSignDetail) -> DecisionRequest:
    return DecisionRequest(
        PROVIDER,
        Operation.KEYSHARESIGN,
        req.request_id,
        wallet=req.extra.wallet_id or req.extra.vault_id or None,
        node_ids=(d.node_id,) if d.node_id else (),
        order_ref=d.biz_task_id or None,
        attributes=_attrs(req.extra, task_id=d.task_id, groups=",".join(sorted({i.group_id for i in d.details}))),
    )


def _keysign(req: CoboTssRequest, d: KeySignDetail) -> Assessment:
    tx = req.extra.transaction
    transfers: tuple[Transfer, ...]
    rejections: tuple[Reason, ...]
    if tx is None:
        # A key sign with nothing to check the hashes against would be a blank cheque. [U] whether
        # the node ever sends one; if it does, it is refused rather than decided on faith.
        transfers, rejections, state = (), (Reason("transaction_missing", "", "no extra_info.transaction"),), "absent"
    elif not _is_evm(tx, req.extra):
        # Non-EVM chains: descriptive fields only, and the audit says so.
        transfers = tuple(Transfer(tx.chain_id.upper(), tx.token_id.upper(), o.amount, o.address) for o in tx.outputs)
        rejections, state = (), "unverified"
    elif tx.type in _MESSAGE_TYPES:
        transfers, rejections, state = (), _message_check(d.msg_hash_list, tx), "message_verified"
    else:
        transfers, rejections = _evm_check(d.msg_hash_list, tx)
        state = "verified"
    request = DecisionRequest(
        PROVIDER,
        Operation.KEYSIGN,
        req.request_id,
        wallet=(tx.wallet_id if tx else "") or req.extra.wallet_id or None,
        transfers=transfers,
        node_ids=d.used_node_ids,
        signature_type=SIGNATURE_TYPES.get(d.signature_type, f"unknown:{d.signature_type}"),
        protocol=PROTOCOLS.get(d.tss_protocol, f"unknown:{d.tss_protocol}"),
        order_ref=(tx.request_id if tx else "") or d.biz_task_id or None,
        attributes=_attrs(req.extra, task_id=d.task_id, transaction_id=d.biz_task_id, raw_tx=state),
    )
    return Assessment(request, rejections)


def _evm_check(msg_hashes: tuple[str, ...], tx: TransactionInfo) -> tuple[tuple[Transfer, ...], tuple[Reason, ...]]:
    """Transfers read from the raw transaction, and the reasons to refuse it."""
    if not tx.unsigned_raw_tx:
        return (), (Reason("raw_tx_missing", "", "EVM transaction without unsigned_raw_tx"),)
    try:
        parsed = evm.parse_unsigned_tx(tx.unsigned_raw_tx)
        transfers = _evm_transfers(parsed, tx)
        return transfers, _hash_check(msg_hashes, parsed.signing_hash) + _consistency(parsed, tx, transfers)
    except InvalidInput as e:
        return (), (Reason("raw_tx_invalid", "", str(e)),)


def _message_check(msg_hashes: tuple[str, ...], tx: TransactionInfo) -> tuple[Reason, ...]:
    """EIP-191 personal messages are hashed here and compared; other message kinds (EIP-712
    typed data, raw hashes) cannot be checked yet and are refused rather than trusted."""
    if tx.destination_type != _EIP191 or not tx.message:
        return (Reason("message_unverifiable", "", f"cannot check a {tx.destination_type or 'missing'} message"),)
    try:
        message = base64.b64decode(tx.message, validate=True)
    except (binascii.Error, ValueError):
        return (Reason("message_unverifiable", "", "message is not base64"),)
    return _hash_check(msg_hashes, evm.personal_message_hash(message))


def _is_evm(tx: TransactionInfo, extra: ExtraInfo) -> bool:
    # Any EVM signal is enough: a request that omits the source addresses and names an unknown
    # chain still cannot dodge the raw-transaction check while describing a 0x destination.
    addresses = [*extra.source_addresses, *(o.address for o in tx.outputs)]
    return tx.chain_id.upper() in EVM_CHAINS or any(evm.is_evm_address(a) for a in addresses)


def _hash_check(msg_hashes: tuple[str, ...], expected: str) -> tuple[Reason, ...]:
    # One transaction (or message) has one signing hash, so "subset of the computed hashes" (the
    # template's rule) means every listed hash equals it. Hex case and a missing 0x are tolerated.
    for h in msg_hashes:
        try:
            same = evm.normalize_hash(h) == expected
        except InvalidInput:
            same = False
        if not same:
            return (Reason("msg_hash_mismatch", "", f"{h[:80]} is not the signing hash of what is described"),)
    return ()


def _evm_transfers(parsed: evm.EvmTransaction, tx: TransactionInfo) -> tuple[Transfer, ...]:
    chain = tx.chain_id.upper() or f"EVM:{parsed.chain_id}"
    transfers = []
    if parsed.erc20 is not None:
        # The asset label is Cobo's token id (what operators write limits against); the token
        # contract, which is what really moves, is in `contract` for allowlists.
        call = parsed.erc20
        asset = tx.token_id.upper() or str(parsed.to)
        amount = _token_amount(call.amount, tx)
        transfers.append(Transfer(chain, asset, amount, call.counterparty, parsed.to, call.unlimited))
    if parsed.value or parsed.erc20 is None:
        native = Decimal(parsed.value).scaleb(-_NATIVE_DECIMALS)
        contract = parsed.to if parsed.data and parsed.erc20 is None else None
        transfers.append(Transfer(chain, chain, native, parsed.to, contract))
    return tuple(transfers)


def _token_amount(base_units: int, tx: TransactionInfo) -> Decimal | None:
    """The descriptive amount when it is the raw amount scaled by a power of ten, else None."""
    described = [o.amount for o in tx.outputs if o.amount is not None]
    if len(described) != 1 or base_units == 0:
        return Decimal(0) if base_units == 0 else None
    for decimals in range(0, 37):
        if Decimal(base_units).scaleb(-decimals) == described[0]:
            return described[0]
    return None


def _consistency(
    parsed: evm.EvmTransaction, tx: TransactionInfo, transfers: tuple[Transfer, ...]
) -> tuple[Reason, ...]:
    """Reject when the descriptive destination contradicts the raw transaction."""
    truth = {t.destination for t in transfers} | {parsed.to}
    for output in tx.outputs:
        if output.address and output.address.lower() not in truth:
            return (
                Reason("destination_mismatch", "", f"described {output.address[:64]} is not in the raw transaction"),
            )
    if parsed.erc20 is not None and transfers[0].amount is None and any(o.amount is not None for o in tx.outputs):
        return (Reason("amount_mismatch", "", "described amount does not match the raw transaction"),)
    return ()


def _attrs(extra: ExtraInfo, **facts: str) -> tuple[tuple[str, str], ...]:
    base = {"org_id": extra.org_id, "project_id": extra.project_id, "vault_id": extra.vault_id}
    if extra.transaction is not None:
        base |= {"chain_id": extra.transaction.chain_id, "token_id": extra.transaction.token_id}
        base["transaction_type"] = extra.transaction.type
    return tuple(sorted((k, v) for k, v in (base | facts).items() if v))
