from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson

from shared import evm
from shared.policy.model import DecisionRequest, Operation, Transfer
from shared.providers import cobo_tss_samples as samples
from shared.providers.cobo_tss import parse_request
from shared.providers.cobo_tss_decision import Assessment, assess

DEST = samples.SAMPLE_DESTINATION


def assessed(package: dict[str, Any]) -> Assessment:
    return assess(parse_request(package))


def codes(assessment: Assessment) -> list[str]:
    return [r.code for r in assessment.rejections]


def attr(request: DecisionRequest, name: str) -> str | None:
    return dict(request.attributes).get(name)


def test_keygen_and_reshare_map_nodes_threshold_and_curve() -> None:
    keygen = assessed(samples.keygen("k", threshold=3, curve=2)).request
    assert keygen.operation == Operation.KEYGEN and keygen.threshold == 3 and keygen.curve == "ed25519"
    assert keygen.node_ids == samples.NODE_IDS and keygen.wallet == "vault-1" and keygen.order_ref == "tss-k"
    reshare = assessed(samples.reshare("r", new_node_ids=("n1", "n2"), new_threshold=2)).request
    assert reshare.operation == Operation.RESHARE and reshare.node_ids == ("n1", "n2") and reshare.threshold == 2
    assert attr(reshare, "old_group_id") == "group-old"


def test_keysharesign_and_ping() -> None:
    kss = assessed(samples.keysharesign("s", node_id="nodeX")).request
    assert kss.operation == Operation.KEYSHARESIGN and kss.node_ids == ("nodeX",) and kss.wallet == "wallet-1"
    ping = assessed(samples.ping())
    assert ping.request.operation == Operation.PING and ping.rejections == ()


def test_unsupported_type_is_rejected_with_a_reason() -> None:
    result = assess(parse_request({"request_type": 9, "request_id": "u"}))
    assert codes(result) == ["unsupported_request_type"] and "9" in result.rejections[0].detail


def test_evm_native_transfer_comes_from_the_raw_tx() -> None:
    result = assessed(samples.keysign("t", raw_tx=samples.evm_transfer_tx(wei=25 * 10**17), amount="2.5"))
    assert result.rejections == ()
    request = result.request
    assert request.transfers == (Transfer("ETH", "ETH", Decimal("2.5"), DEST),)
    assert request.signature_type == "ecdsa" and request.protocol == "lindell"
    assert request.wallet == "wallet-1" and request.order_ref == "order-t"
    assert attr(request, "raw_tx") == "verified"


def test_all_three_tx_types_verify() -> None:
    for tx_type in (0, 1, 2):
        result = assessed(samples.keysign("t", raw_tx=samples.evm_transfer_tx(tx_type=tx_type)))
        assert result.rejections == () and result.request.transfers[0].amount == Decimal("1.5")


def test_msg_hash_list_must_match_the_raw_tx() -> None:
    wrong = "0x" + "00" * 32
    assert codes(assessed(samples.keysign("t", msg_hashes=[wrong]))) == ["msg_hash_mismatch"]
    real = evm.parse_unsigned_tx(samples.evm_transfer_tx()).signing_hash
    assert codes(assessed(samples.keysign("t", msg_hashes=[real, wrong]))) == ["msg_hash_mismatch"]
    # case and a missing 0x are tolerated
    assert assessed(samples.keysign("t", msg_hashes=[real[2:].upper()])).rejections == ()


def test_hash_of_another_tx_is_rejected_even_if_descriptive_fields_agree() -> None:
    evil = samples.evm_transfer_tx(to="0x" + "66" * 20, wei=10**21)
    evil_hash = evm.parse_unsigned_tx(evil).signing_hash
    assert codes(assessed(samples.keysign("t", msg_hashes=[evil_hash]))) == ["msg_hash_mismatch"]


def test_descriptive_destination_must_agree_with_raw_tx() -> None:
    result = assessed(samples.keysign("t", destination="0x" + "44" * 20))
    assert codes(result) == ["destination_mismatch"]
    assert result.request.transfers[0].destination == DEST


def test_missing_or_broken_raw_tx_is_rejected_on_evm() -> None:
    package = samples.keysign("t")
    extra = orjson.loads(package["extra_info"])
    extra["transaction"]["raw_tx_info"] = {}
    missing = package | {"extra_info": orjson.dumps(extra).decode()}
    assert codes(assessed(missing)) == ["raw_tx_missing"]
    assert codes(assessed(samples.keysign("t", raw_tx="0x03c0", msg_hashes=["0x" + "00" * 32]))) == ["raw_tx_invalid"]


def test_unknown_evm_chain_is_detected_by_address_shape() -> None:
    result = assessed(
        samples.keysign("t", chain_id="NEWCHAIN_ETH", token_id="NEWCHAIN_ETH", msg_hashes=["0x" + "11" * 32])
    )
    assert codes(result) == ["msg_hash_mismatch"]


def test_erc20_transfer_amount_scaled_by_the_described_decimals() -> None:
    raw = samples.erc20_tx(units=50_500_000)
    result = assessed(samples.keysign("t", raw_tx=raw, token_id="ETH_USDT", amount="50.5"))
    assert result.rejections == ()
    assert result.request.transfers == (Transfer("ETH", "ETH_USDT", Decimal("50.5"), DEST, samples.USDT_CONTRACT),)
    lying = assessed(samples.keysign("t", raw_tx=raw, token_id="ETH_USDT", amount="0.5"))
    assert codes(lying) == ["amount_mismatch"]


def test_unlimited_approve_is_flagged() -> None:
    raw = samples.erc20_tx(method="approve", units=evm.MAX_UINT256)
    result = assessed(samples.keysign("t", raw_tx=raw, token_id="ETH_USDT", amount=""))
    transfer = result.request.transfers[0]
    assert transfer.unlimited_approval and transfer.destination == DEST and transfer.contract == samples.USDT_CONTRACT
    assert transfer.amount is None


def test_non_evm_transfer_uses_descriptive_fields_and_says_so() -> None:
    package = samples.keysign(
        "t", chain_id="BTC", token_id="BTC", destination="bc1qdest", amount="0.1", source_address="bc1qsource"
    )
    result = assessed(package)
    assert result.rejections == ()
    assert result.request.transfers == (Transfer("BTC", "BTC", Decimal("0.1"), "bc1qdest"),)
    assert attr(result.request, "raw_tx") == "unverified"


# ethers' hashMessage("hello world"), a widely published EIP-191 vector
HELLO_WORLD_HASH = "0xd9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"


def message_sign(msg_hash: str, destination: dict[str, str]) -> dict[str, Any]:
    package = samples.keysign("t", msg_hashes=[msg_hash])
    extra = orjson.loads(package["extra_info"])
    extra["transaction"]["type"] = "MessageSign"
    extra["transaction"]["destination"] = destination
    return package | {"extra_info": orjson.dumps(extra).decode()}


def test_evm_personal_message_is_hashed_and_checked() -> None:
    eip191 = {"destination_type": "EVM_EIP_191_Signature", "message": base64.b64encode(b"hello world").decode()}
    result = assessed(message_sign(HELLO_WORLD_HASH, eip191))
    assert result.rejections == () and result.request.transfers == ()
    assert attr(result.request, "transaction_type") == "MessageSign"
    assert attr(result.request, "raw_tx") == "message_verified"
    assert codes(assessed(message_sign("0x" + "12" * 32, eip191))) == ["msg_hash_mismatch"]


def test_messages_we_cannot_hash_are_refused() -> None:
    typed = {"destination_type": "EVM_EIP_712_Signature", "structured_data": "{}"}
    assert codes(assessed(message_sign(HELLO_WORLD_HASH, typed))) == ["message_unverifiable"]
    not_b64 = {"destination_type": "EVM_EIP_191_Signature", "message": "%%%"}
    assert codes(assessed(message_sign(HELLO_WORLD_HASH, not_b64))) == ["message_unverifiable"]


def test_keysign_without_a_transaction_is_refused() -> None:
    package = samples.keysign("t")
    extra = orjson.loads(package["extra_info"])
    del extra["transaction"]
    assert codes(assessed(package | {"extra_info": orjson.dumps(extra).decode()})) == ["transaction_missing"]


def test_malformed_hash_in_the_list_is_a_mismatch() -> None:
    assert codes(assessed(samples.keysign("t", msg_hashes=["not-a-hash"]))) == ["msg_hash_mismatch"]


def test_unknown_chain_without_source_addresses_is_still_hash_checked() -> None:
    package = samples.keysign("t", chain_id="XCHAIN", token_id="XCHAIN", msg_hashes=["0x" + "11" * 32])
    extra = orjson.loads(package["extra_info"])
    extra["source_addresses"] = []
    assert codes(assessed(package | {"extra_info": orjson.dumps(extra).decode()})) == ["msg_hash_mismatch"]
