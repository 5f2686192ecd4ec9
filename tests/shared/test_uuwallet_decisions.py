from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import rsablocks
from shared.policy.model import ExpectedOrder, Operation, Transfer
from shared.providers import uuwallet as uu
from shared.providers import uuwallet_decisions as ud
from shared.providers.uuwallet_samples import DEPOSIT, REQUEST_WITHDRAW, decrypt_as_waas

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the WaaS's size)


def _deposit(**changes: Any) -> uu.Deposit:
    deposit = uu.parse_callback({**DEPOSIT, **changes})
    assert isinstance(deposit, uu.Deposit)
    return deposit


# -- deposits --------------------------------------------------------------------------------


def test_deposit_question_carries_risk_levels_and_the_normalised_transfer() -> None:
    deposit = _deposit(riskLevelFrom=12, riskLevelTo=85, chainName="eth", symbol="usdt", toAddress="0xABCD")
    question = ud.deposit_request(deposit, "deposit:k")
    assert (question.provider, question.operation, question.request_id) == ("uuwallet", Operation.DEPOSIT, "deposit:k")
    assert question.wallet == "2049"
    assert question.transfers == (Transfer("ETH", "USDT", Decimal("2.500000000000"), "0xabcd"),)
    assert ("risk_level_from", "12") in question.attributes and ("risk_level_to", "85") in question.attributes


def test_deposit_question_leaves_out_missing_risk_levels() -> None:
    question = ud.deposit_request(_deposit(riskLevelFrom=None, riskLevelTo=None), "k")
    assert not any(name.startswith("risk_level") for name, _ in question.attributes)


# -- withdrawal second confirmation ----------------------------------------------------------

ORDER = ExpectedOrder(
    provider="uuwallet",
    order_ref="D611657466",
    chain="ETH",
    asset="USDT",
    destination="0xabcdef0123456789abcdef0123456789abcdef01",
    amount=Decimal("3.30"),
    expires_at=2_000_000_000.0,
    extras=(("tenantUserId", "bbxuzbc"),),
)
NOW = 1_900_000_000.0


def _request(**changes: Any) -> uu.WithdrawRequest:
    request = uu.parse_callback({**REQUEST_WITHDRAW, **changes})
    assert isinstance(request, uu.WithdrawRequest)
    return request


def test_confirmation_answer_comes_from_the_order() -> None:
    # Extra detail fields in the request must never leak into the answer.
    request = _request(address="TAttacker", amount="999", symbol="TRX", chainName="TRON")
    assert ud.order_problem(request, ORDER, now=NOW) is None
    data = ud.confirmation_data(request, ORDER)
    assert data == {
        "tenantUserId": "bbxuzbc",
        "callBackId": "D611657466",
        "address": ORDER.destination,
        "chainName": "ETH",
        "symbol": "USDT",
        "amount": "3.30",
        "type": 2,
        "requestUUID": REQUEST_WITHDRAW["requestUUID"],
    }
    private = rsablocks.private_from_crypto(_KEY)
    answered = uu.answer(private.public, uu.ErrCode.OK, data=data)["data"]
    assert decrypt_as_waas(str(answered), private) == data


def test_confirmation_amount_is_never_in_exponent_notation() -> None:
    order = replace(ORDER, amount=Decimal("1E+3"))
    assert ud.confirmation_data(_request(), order)["amount"] == "1000"


@pytest.mark.parametrize(
    ("order", "request_changes", "problem"),
    [
        (None, {}, "unknown_order"),
        (replace(ORDER, order_ref="D0"), {}, "unknown_order"),
        (replace(ORDER, provider="chainup_waas"), {}, "unknown_order"),
        (replace(ORDER, expires_at=NOW), {}, "order_expired"),
        (replace(ORDER, expires_at=None), {}, None),
        (replace(ORDER, confirmed=True), {}, "order_already_confirmed"),
        (replace(ORDER, extras=()), {}, "order_without_tenant"),
        (ORDER, {"tenantUserId": "mallory"}, "tenant_mismatch"),
        (ORDER, {"requestUUID": "a-retry"}, None),
    ],
)
def test_order_problems(order: ExpectedOrder | None, request_changes: dict[str, Any], problem: str | None) -> None:
    assert ud.order_problem(_request(**request_changes), order, now=NOW) == problem


def test_decision_request_comes_from_the_order_and_is_keyed_on_the_call_back_id() -> None:
    question = ud.decision_request(_request(requestUUID="retry-2"), ORDER)
    assert (question.provider, question.operation) == ("uuwallet", Operation.WITHDRAW)
    assert (question.request_id, question.order_ref, question.wallet) == ("D611657466", "D611657466", "bbxuzbc")
    assert question.transfers == (Transfer("ETH", "USDT", Decimal("3.30"), ORDER.destination),)
    assert ud.decision_request(_request(), ORDER) == question  # a retry asks the same question
