from __future__ import annotations

import pytest
import rlp

from shared import evm
from shared.errors import InvalidInput

# Vectors published in Cobo's Go callback-server template tests (facts about the protocol: the
# signing hash is keccak-256 of the unsigned raw transaction as Cobo sends it).
LEGACY_ETH = "0xe980842ffee68f825208940f76f604fd7762bd94b48ca2523f69ab9665c97f865af3107a400080018080"
LEGACY_ETH_HASH = "0x1acf0342f77d22389a9cf6524a2af14dc420928d2942efe0dc0764be2ea5321b"
LEGACY_ERC20 = (
    "0xf86a04850127efef2283016f5b94dac17f958d2ee523a2206206994597c13d831ec780b844a9059cbb"
    "0000000000000000000000008b45b84e2cf29e5f826797df7e1aa93fc71a2bfd"
    "0000000000000000000000000000000000000000000000000000000002faf080018080"
)
LEGACY_ERC20_HASH = "0xf8d61123554ede2f342c56b4da018ec640c7ded1574a7417f0a0396aba664007"
EIP1559_ETH = "02f283aa36a70181de6f8252089447f95183e513da1c599e76611dcb00304d07b6a087038d7ea4c68000881122334455667788c0"
DEST = "0x8b45b84e2cf29e5f826797df7e1aa93fc71a2bfd"


def test_cobo_vectors_hash_and_destination() -> None:
    native = evm.parse_unsigned_tx(LEGACY_ETH)
    assert native.signing_hash == LEGACY_ETH_HASH
    assert native.to == "0x0f76f604fd7762bd94b48ca2523f69ab9665c97f"
    assert native.chain_id == 1 and native.tx_type == 0 and native.erc20 is None
    assert native.value == 100_000_000_000_000
    token = evm.parse_unsigned_tx(LEGACY_ERC20)
    assert token.signing_hash == LEGACY_ERC20_HASH
    assert token.erc20 == evm.Erc20Call("transfer", DEST, 50_000_000)


def test_eip1559_vector_without_0x() -> None:
    tx = evm.parse_unsigned_tx(EIP1559_ETH)
    assert tx.tx_type == 2 and tx.chain_id == 11155111
    assert tx.to == "0x47f95183e513da1c599e76611dcb00304d07b6a0"
    assert tx.value == 10**15 and tx.data == bytes.fromhex("1122334455667788")
    assert tx.signing_hash == "0x" + evm.keccak256(bytes.fromhex(EIP1559_ETH)).hex()


@pytest.mark.parametrize("tx_type", [0, 1, 2])
def test_encode_parse_roundtrip(tx_type: int) -> None:
    raw = evm.encode_unsigned_tx(tx_type=tx_type, chain_id=56, nonce=9, to=DEST, value=12345)
    tx = evm.parse_unsigned_tx(raw)
    assert (tx.tx_type, tx.chain_id, tx.nonce, tx.to, tx.value) == (tx_type, 56, 9, DEST, 12345)
    assert tx.signing_hash == "0x" + evm.keccak256(bytes.fromhex(raw[2:])).hex()


def test_pre_eip155_legacy_has_no_chain_id() -> None:
    tx = evm.parse_unsigned_tx(evm.encode_unsigned_tx(tx_type=0, chain_id=None, nonce=0, to=DEST, value=1))
    assert tx.chain_id is None


def test_typed_tx_with_zeroed_signature_tail_hashes_the_payload_only() -> None:
    payload = [1, 3, 10, 20, 21000, bytes.fromhex(DEST[2:]), 5, b"", []]
    canonical = b"\x02" + rlp.encode(payload)
    tolerated = b"\x02" + rlp.encode([*payload, 0, 0, 0])
    assert evm.parse_unsigned_tx(tolerated.hex()).signing_hash == "0x" + evm.keccak256(canonical).hex()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("0xzz", "not hex"),
        ("0xabc", "not hex"),
        ("03c0", "unsupported transaction type 0x03"),
        ("0x8105", "not canonical"),
        ("0x" + rlp.encode([1, 2, 3]).hex(), "with 3 fields"),
        ("0x" + rlp.encode([0, 1, 21000, b"\x01" * 19, 0, b""]).hex(), "20-byte"),
        ("0x" + rlp.encode([0, 1, 21000, b"", 0, b"", 1, 27, 5]).hex(), "carries a signature"),
        ("0x" + rlp.encode([b"\x00\x01", 1, 21000, b"", 0, b""]).hex(), "canonical 256-bit"),
        ("0x" + rlp.encode(b"abc").hex(), "not an RLP list"),
        ("0x02" + rlp.encode([1, 3, 10, 20, 21000, b"", 5, b"", b"x"]).hex(), "access_list"),
    ],
)
def test_malformed_transactions_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        evm.parse_unsigned_tx(raw)
    assert reason in str(info.value)


def test_erc20_calls() -> None:
    approve = evm.decode_erc20_call(evm.erc20_calldata("approve", DEST, evm.MAX_UINT256))
    assert approve is not None and approve.method == "approve" and approve.unlimited
    small = evm.decode_erc20_call(evm.erc20_calldata("approve", DEST, 10))
    assert small is not None and not small.unlimited
    owner = "0x" + "22" * 20
    data = bytes.fromhex("23b872dd") + bytes(12) + bytes.fromhex(owner[2:]) + bytes(12) + bytes.fromhex(DEST[2:])
    moved = evm.decode_erc20_call(data + (7).to_bytes(32, "big"))
    assert moved == evm.Erc20Call("transferFrom", DEST, 7, owner=owner)
    assert evm.decode_erc20_call(bytes.fromhex("deadbeef") + bytes(64)) is None


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a9059cbb") + bytes(63),
        bytes.fromhex("a9059cbb") + b"\x01" + bytes(63),
        evm.erc20_calldata("transfer", DEST, 1) + b"\x00",
    ],
)
def test_malformed_erc20_calls_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        evm.decode_erc20_call(data)


def test_hash_and_address_normalisation() -> None:
    assert evm.normalize_hash("AB" * 32) == "0x" + "ab" * 32
    assert evm.normalize_address(DEST.upper().replace("0X", "0x")) == DEST
    assert evm.is_evm_address(DEST) and not evm.is_evm_address("bc1qxyz")
    with pytest.raises(InvalidInput):
        evm.normalize_hash("0x1234")
    with pytest.raises(InvalidInput):
        evm.normalize_address("0x1234")


@pytest.mark.parametrize("tx_type", [0, 1, 2])
def test_hash_of_raw_bytes_equals_hash_of_the_canonical_re_encoding(tx_type: int) -> None:
    data = evm.erc20_calldata("transfer", DEST, 10**30)
    raw = bytes.fromhex(evm.encode_unsigned_tx(tx_type=tx_type, chain_id=1, nonce=0, to=DEST, value=0, data=data)[2:])
    body = raw[1:] if tx_type else raw
    prefix = raw[:1] if tx_type else b""
    assert (
        evm.parse_unsigned_tx(raw.hex()).signing_hash
        == "0x" + evm.keccak256(prefix + rlp.encode(rlp.decode(body))).hex()
    )
