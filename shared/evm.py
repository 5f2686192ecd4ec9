"""EVM unsigned transactions: decode, recompute the signing hash, read ERC-20 calls.

A sign request is only as trustworthy as the link between the hash to be signed and the
transaction we inspect. So we decode `unsigned_raw_tx` ourselves (RLP, canonical encodings only),
re-encode the signing payload and hash it: a `msg_hash` equal to that hash authorises exactly the
transaction decoded here, whatever the descriptive fields around it claim.

Supported: legacy (pre-EIP-155 with 6 fields, EIP-155 with `chainId, 0, 0`), EIP-2930 (type 1)
and EIP-1559 (type 2). Anything else (blob, set-code, unknown types) raises `InvalidInput`: we
refuse what we cannot check rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import rlp
from Crypto.Hash import keccak

from shared.errors import InvalidInput

MAX_UINT256 = 2**256 - 1
# An approval at or above 2**255 is "unlimited" in practice: wallets use MAX_UINT256 or 2**255
# as the sentinel, and no real token has a supply anywhere near either.
UNLIMITED_APPROVAL_FLOOR = 2**255
_MAX_RAW_TX_BYTES = 128 * 1024

_SELECTOR_TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
_SELECTOR_APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)
_SELECTOR_TRANSFER_FROM = bytes.fromhex("23b872dd")  # transferFrom(address,address,uint256)
_HEX_RE = re.compile(r"(?:0x|0X)?([0-9a-fA-F]*)")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")

# Fields of the signing payload per type; the tail of `extra` fields is a zeroed signature that
# some encoders leave in place (Cobo's Go template appends one itself before decoding type 2).
_PAYLOAD_FIELDS = {0: 6, 1: 8, 2: 9}
_TO_INDEX = {0: 3, 1: 4, 2: 5}


@dataclass(frozen=True, slots=True)
class Erc20Call:
    """An ERC-20 call decoded from calldata; `owner` is set for `transferFrom` only."""

    method: str  # "transfer" | "approve" | "transferFrom"
    counterparty: str  # recipient (transfer, transferFrom) or spender (approve), lower-case 0x…
    amount: int  # token base units
    owner: str | None = None

    @property
    def unlimited(self) -> bool:
        return self.method == "approve" and self.amount >= UNLIMITED_APPROVAL_FLOOR


@dataclass(frozen=True, slots=True)
class EvmTransaction:
    """The facts of an unsigned EVM transaction that a signature over `signing_hash` commits to."""

    tx_type: int  # 0 legacy, 1 EIP-2930, 2 EIP-1559
    chain_id: int | None  # None: pre-EIP-155 legacy transaction (replayable on any chain)
    nonce: int
    to: str | None  # lower-case 0x address; None for contract creation
    value: int  # wei
    data: bytes
    signing_hash: str  # 0x + 64 lower-case hex digits
    erc20: Erc20Call | None


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the pre-standard SHA-3 Ethereum uses)."""
    return keccak.new(digest_bits=256, data=data).digest()


def personal_message_hash(message: bytes) -> str:
    """The EIP-191 `personal_sign` hash of `message`, as 0x + 64 hex digits."""
    prefix = b"\x19Ethereum Signed Message:\n" + str(len(message)).encode()
    return "0x" + keccak256(prefix + message).hex()


def normalize_address(value: str) -> str:
    """Lower-case a 0x address after checking its shape; raises InvalidInput otherwise."""
    if not _ADDRESS_RE.fullmatch(value):
        raise InvalidInput("address", "not a 0x-prefixed 20-byte hex address")
    return value.lower()


def is_evm_address(value: str) -> bool:
    """True if `value` has the shape of a 0x-prefixed 20-byte hex address."""
    return _ADDRESS_RE.fullmatch(value) is not None


def normalize_hash(value: str) -> str:
    """A 32-byte hash as 0x + lower-case hex, accepting either case and an optional 0x."""
    match = _HEX_RE.fullmatch(value.strip())
    if match is None or len(match.group(1)) != 64:
        raise InvalidInput("msg_hash", "not a 32-byte hex hash")
    return "0x" + match.group(1).lower()


def parse_unsigned_tx(raw_hex: str) -> EvmTransaction:
    """Decode an unsigned EVM transaction given as hex (0x optional) and recompute its signing hash."""
    raw = _hex_bytes(raw_hex)
    if not raw:
        raise InvalidInput("unsigned_raw_tx", "empty")
    tx_type = raw[0] if raw[0] < 0x7F else 0
    if tx_type not in _PAYLOAD_FIELDS:
        raise InvalidInput("unsigned_raw_tx", f"unsupported transaction type {tx_type:#04x}")
    body = raw[1:] if tx_type else raw
    try:
        fields = rlp.decode(body)
    except rlp.exceptions.DecodingError as e:
        raise InvalidInput("unsigned_raw_tx", f"not canonical RLP: {e}") from None
    if not isinstance(fields, list):
        raise InvalidInput("unsigned_raw_tx", "not an RLP list")
    payload = _signing_payload(tx_type, fields)
    # pyrlp decodes canonical encodings only, so `raw` is the one encoding of these fields:
    # hashing it equals hashing the re-encoding, without the cost of re-encoding.
    prefix = bytes([tx_type]) if tx_type else b""
    signed = raw if payload is fields else prefix + rlp.encode(payload)
    return _build(tx_type, payload, "0x" + keccak256(signed).hex())


def encode_unsigned_tx(
    *, tx_type: int, chain_id: int | None, nonce: int, to: str | None, value: int, data: bytes = b"", gas: int = 21000
) -> str:
    """Encode an unsigned transaction as 0x hex (for samples, tests and benchmarks; fees are fixed)."""
    to_raw = bytes.fromhex(normalize_address(to)[2:]) if to else b""
    gwei = 10**9
    if tx_type == 0:
        tail = [chain_id, 0, 0] if chain_id is not None else []
        return "0x" + bytes(rlp.encode([nonce, 20 * gwei, gas, to_raw, value, data, *tail])).hex()
    fees = [20 * gwei] if tx_type == 1 else [gwei, 30 * gwei]
    payload: list[object] = [chain_id, nonce, *fees, gas, to_raw, value, data, []]
    return "0x" + bytes([tx_type]).hex() + bytes(rlp.encode(payload)).hex()


def erc20_calldata(method: str, counterparty: str, amount: int) -> bytes:
    """ABI calldata of an ERC-20 `transfer` or `approve` (for samples and tests)."""
    selector = _SELECTOR_TRANSFER if method == "transfer" else _SELECTOR_APPROVE
    address = bytes.fromhex(normalize_address(counterparty)[2:])
    return selector + address.rjust(32, b"\0") + amount.to_bytes(32, "big")


def decode_erc20_call(data: bytes) -> Erc20Call | None:
    """Decode ERC-20 transfer/approve/transferFrom calldata; None for any other call.

    Strict ABI: exact length, address words zero-padded. A call that starts with a known
    selector but is malformed raises InvalidInput, because a token contract may still accept it.
    """
    selector, args = data[:4], data[4:]
    if selector in (_SELECTOR_TRANSFER, _SELECTOR_APPROVE):
        words = _abi_words(args, 2)
        method = "transfer" if selector == _SELECTOR_TRANSFER else "approve"
        return Erc20Call(method, _abi_address(words[0]), int.from_bytes(words[1], "big"))
    if selector == _SELECTOR_TRANSFER_FROM:
        words = _abi_words(args, 3)
        return Erc20Call(
            "transferFrom", _abi_address(words[1]), int.from_bytes(words[2], "big"), owner=_abi_address(words[0])
        )
    return None


def _signing_payload(tx_type: int, fields: list[object]) -> list[object]:
    count = _PAYLOAD_FIELDS[tx_type]
    if tx_type == 0 and len(fields) == 9:
        # EIP-155 unsigned form: [.., chainId, 0, 0]. Non-empty r/s means a signed transaction,
        # whose signing hash is not keccak(raw): refuse rather than reinterpret it.
        if fields[7] != b"" or fields[8] != b"":
            raise InvalidInput("unsigned_raw_tx", "legacy transaction carries a signature")
        return fields
    if len(fields) == count + 3 and tx_type and all(f == b"" for f in fields[count:]):
        return fields[:count]  # tolerated: zeroed y/r/s appended to a typed payload
    if len(fields) != count:
        raise InvalidInput("unsigned_raw_tx", f"type {tx_type} transaction with {len(fields)} fields")
    return fields


def _build(tx_type: int, payload: list[object], signing_hash: str) -> EvmTransaction:
    to_raw = _bytes(payload[_TO_INDEX[tx_type]], "to")
    if len(to_raw) not in (0, 20):
        raise InvalidInput("unsigned_raw_tx.to", "not a 20-byte address")
    data = _bytes(payload[_TO_INDEX[tx_type] + 2], "data")
    if tx_type == 0:
        chain_id = _int(payload[6], "chain_id") if len(payload) == 9 else None
        nonce = _int(payload[0], "nonce")
    else:
        chain_id = _int(payload[0], "chain_id")
        nonce = _int(payload[1], "nonce")
        if not isinstance(payload[-1], list):
            raise InvalidInput("unsigned_raw_tx.access_list", "not a list")
    return EvmTransaction(
        tx_type=tx_type,
        chain_id=chain_id,
        nonce=nonce,
        to="0x" + to_raw.hex() if to_raw else None,
        value=_int(payload[_TO_INDEX[tx_type] + 1], "value"),
        data=data,
        signing_hash=signing_hash,
        erc20=decode_erc20_call(data) if to_raw else None,
    )


def _hex_bytes(value: str) -> bytes:
    match = _HEX_RE.fullmatch(value.strip())
    if match is None or len(match.group(1)) % 2:
        raise InvalidInput("unsigned_raw_tx", "not hex")
    if len(match.group(1)) > 2 * _MAX_RAW_TX_BYTES:
        raise InvalidInput("unsigned_raw_tx", "too long")
    return bytes.fromhex(match.group(1))


def _bytes(item: object, field: str) -> bytes:
    if not isinstance(item, bytes):
        raise InvalidInput(f"unsigned_raw_tx.{field}", "a list where bytes were expected")
    return item


def _int(item: object, field: str) -> int:
    raw = _bytes(item, field)
    if raw[:1] == b"\x00" or len(raw) > 32:
        raise InvalidInput(f"unsigned_raw_tx.{field}", "not a canonical 256-bit integer")
    return int.from_bytes(raw, "big")


def _abi_words(args: bytes, count: int) -> list[bytes]:
    if len(args) != 32 * count:
        raise InvalidInput("calldata", f"expected {count} ABI words, got {len(args)} bytes")
    return [args[i : i + 32] for i in range(0, len(args), 32)]


def _abi_address(word: bytes) -> str:
    if any(word[:12]):
        raise InvalidInput("calldata", "address argument with dirty upper bytes")
    return "0x" + word[12:].hex()
