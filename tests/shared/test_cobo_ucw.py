"""UCW TSS request callback codec: what is accepted, what is refused, and the answer envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import InvalidInput
from shared.providers.cobo_ucw import (
    Agreement,
    CallbackResult,
    UcwStatus,
    compare,
    envelope,
    error_envelope,
    idempotency_key,
    parse_tss_callback,
    parse_wallet_uuid,
    status_name,
)
from shared.waas.cobo_models import TSSRequestStatus as W

WALLET = "9b2f7a4e-3c1d-4e5f-8a6b-7c8d9e0f1a2b"


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tss_request_id": "20240711114129000132315000003970",
        "status": 190,
        "results": [
            {
                "id": "group-1",
                "type": 1,
                "created_timestamp": 1_720_000_000_000,
                "root_extended_public_key": "xpub661MyMwAqRbcF",
                "chaincode": "ab" * 32,
                "curve": "secp256k1",
                "threshold": 2,
                "participants": [{"node_id": "n1", "share_id": "s1", "share_public_key": "02ab"}],
            }
        ],
        "failed_reasons": [],
    }
    body.update(overrides)
    return body


def test_full_body_is_parsed() -> None:
    cb = parse_tss_callback(_body())
    assert cb.tss_request_id == "20240711114129000132315000003970" and cb.status == 190
    assert cb.results[0].threshold == 2 and cb.results[0].participants[0].share_public_key == "02ab"
    assert cb.results[0].created_timestamp == 1_720_000_000_000
    assert cb.failed_reasons == ()


def test_minimal_body_and_nulls_are_accepted() -> None:
    cb = parse_tss_callback({"tss_request_id": "x", "status": 130, "results": None, "failed_reasons": None})
    assert (cb.results, cb.failed_reasons, status_name(cb.status)) == ((), (), "Approving")
    # Unknown fields and partial key share groups: tolerated (the SDK may add or omit fields).
    cb = parse_tss_callback({"tss_request_id": "x", "status": 170, "extra": 1, "results": [{"participants": [{}]}]})
    assert cb.results[0].id == "" and cb.results[0].participants[0].node_id == ""


def test_unknown_status_is_kept_as_a_number() -> None:
    cb = parse_tss_callback(_body(status=150))
    assert cb.status == 150 and status_name(150) == "Unknown(150)"
    assert UcwStatus(190).name == "COMPLETED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("x", "body"),
        ({"status": 130}, "tss_request_id"),
        (_body(tss_request_id=""), "tss_request_id"),
        (_body(tss_request_id=123), "tss_request_id"),
        (_body(tss_request_id="has space"), "tss_request_id"),
        (_body(tss_request_id="x" * 129), "tss_request_id"),
        ({"tss_request_id": "x"}, "status"),
        (_body(status="190"), "status"),
        (_body(status=True), "status"),
        (_body(status=1.5), "status"),
        (_body(status=2**40), "status"),
        (_body(results={}), "results"),
        (_body(results=[1]), "results[0]"),
        (_body(results=[{}] * 65), "results"),
        (_body(results=[{"threshold": "2"}]), "results[0].threshold"),
        (_body(results=[{"participants": "n1"}]), "results[0].participants"),
        (_body(results=[{"participants": [{"node_id": 1}]}]), "results[0].participants[0].node_id"),
        (_body(results=[{"created_timestamp": -1}]), "results[0].created_timestamp"),
        (_body(failed_reasons="boom"), "failed_reasons"),
        (_body(failed_reasons=[1]), "failed_reasons"),
        (_body(failed_reasons=["x" * 1025]), "failed_reasons"),
    ],
)
def test_invalid_bodies_name_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_tss_callback(body)
    assert caught.value.field == field


def test_wallet_uuid_is_canonicalised_or_refused() -> None:
    assert parse_wallet_uuid(WALLET.upper()) == WALLET
    assert parse_wallet_uuid(WALLET.replace("-", "")) == WALLET
    for bad in ("", "not-a-uuid", "{" + WALLET + "}", "urn:uuid:" + WALLET, WALLET[:-1] + "g"):
        with pytest.raises(InvalidInput):
            parse_wallet_uuid(bad)


def test_idempotency_key_separates_statuses_not_repeats() -> None:
    first = idempotency_key(WALLET, parse_tss_callback(_body(status=130)))
    assert first == idempotency_key(WALLET, parse_tss_callback(_body(status=130, failed_reasons=["again"])))
    assert first != idempotency_key(WALLET, parse_tss_callback(_body(status=190)))
    assert first != idempotency_key(WALLET.replace("9b", "9c", 1), parse_tss_callback(_body(status=130)))


def test_envelopes_have_the_seed_shape() -> None:
    ok = envelope(CallbackResult("r1", "MPCProcessing", '{"status": "MPCProcessing"}'))
    assert set(ok) == {"result", "success", "suggestion", "message", "meta"}
    assert ok["success"] is True and ok["result"] == {
        "tss_request_id": "r1",
        "status": "MPCProcessing",
        "waas_status_snapshot": '{"status": "MPCProcessing"}',
    }
    bad = error_envelope("wallet not found", suggestion="register it with `callgate wallets add`")
    assert set(bad) == set(ok) and bad["success"] is False and bad["result"] is None
    assert json.loads(json.dumps(bad))["message"] == "wallet not found"


def test_reports_are_judged_against_waas() -> None:
    assert compare(190, W.SUCCESS) is Agreement.AGREE
    assert compare(190, W.KEY_GENERATING_FAILED) is Agreement.DISAGREE
    assert compare(170, W.SUCCESS) is Agreement.DISAGREE
    assert compare(180, W.KEY_HOLDER_CONFIRMATION_FAILED) is Agreement.AGREE
    assert compare(190, W.KEY_GENERATING) is Agreement.PENDING
    assert compare(190, W.KEY_GENERATING, horizon_reached=True) is Agreement.DISAGREE
    assert compare(190, W.UNKNOWN) is Agreement.PENDING
    assert compare(130, W.SUCCESS) is Agreement.NO_CLAIM
    assert compare(150, W.KEY_GENERATING_FAILED) is Agreement.NO_CLAIM
