"""WaaS 2.0 TSSRequest and webhook event codecs."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.waas.cobo_models import TSSRequestStatus, parse_tss_request, parse_tss_request_event

TSS = {
    "tss_request_id": "20240711114129000132315000003970",
    "target_key_share_holder_group_id": "g1",
    "type": "KeyGen",
    "status": "KeyGenerating",
    "created_timestamp": 1720000000000,
}


def test_tss_request_fields_and_terminal_states() -> None:
    got = parse_tss_request(TSS)
    assert got.status is TSSRequestStatus.KEY_GENERATING and got.status_raw == "KeyGenerating"
    terminal = {s.value for s in TSSRequestStatus if s.is_terminal}
    assert terminal == {"Success", "KeyGeneratingFailed", "KeyHolderConfirmationFailed"}


def test_tss_request_tolerates_missing_and_unknown_values() -> None:
    got = parse_tss_request({"tss_request_id": "r", "status": "Paused", "new_field": [1]})
    assert got.status is TSSRequestStatus.UNKNOWN and got.status_raw == "Paused" and got.type is None
    assert parse_tss_request({"tss_request_id": "r"}).status_raw == ""


@pytest.mark.parametrize(
    "data",
    [None, [], {"status": "Success"}, {**TSS, "status": 1}, {**TSS, "created_timestamp": "x"}, {**TSS, "type": True}],
)
def test_tss_request_refuses_wrong_types(data: object) -> None:
    with pytest.raises(InvalidInput):
        parse_tss_request(data)


def test_tss_request_webhook_event() -> None:
    event = {
        "event_id": "e1",
        "url": "https://example.com/cobo/waas/webhooks",
        "created_timestamp": 1720000000001,
        "type": "wallets.mpc.tss_request.succeeded",
        "data": {"data_type": "TSSRequest", **TSS, "status": "Success"},
        "status": "Success",
    }
    got = parse_tss_request_event(event)
    assert got is not None and got.event_id == "e1" and got.request.status is TSSRequestStatus.SUCCESS
    assert parse_tss_request_event({**event, "type": "wallets.transaction.created", "data": {}}) is None
    with pytest.raises(InvalidInput):
        parse_tss_request_event({**event, "data": {**TSS, "data_type": "Transaction"}})
    with pytest.raises(InvalidInput):
        parse_tss_request_event({**event, "data": "x"})
    with pytest.raises(InvalidInput):
        parse_tss_request_event({**event, "event_id": None})
