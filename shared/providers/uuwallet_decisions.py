"""UU Wallet policy questions: deposit risk holds and the type 2 withdrawal second confirmation.

Both are answered from the in-memory policy snapshot. A second confirmation is answered from the
order the merchant registered beforehand, never from what the request says: the WaaS executes
exactly what we answer (protocols/chainup_wyre.md §2B).
"""

from __future__ import annotations

from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import DecisionRequest, ExpectedOrder, Operation, Transfer
from shared.providers.uuwallet import PROVIDER, CallbackType, Deposit, WithdrawRequest

# -- deposits --------------------------------------------------------------------------------


def deposit_request(deposit: Deposit, idempotency_key: str) -> DecisionRequest:
    """The policy question a deposit asks: REJECT means "hold it, do not credit" (deposit_risk rules)."""
    moved = deposit.transfer
    levels = (("risk_level_from", deposit.risk_level_from), ("risk_level_to", deposit.risk_level_to))
    return DecisionRequest(
        provider=PROVIDER,
        operation=Operation.DEPOSIT,
        request_id=idempotency_key,
        wallet=deposit.header.tenant_user_id,
        transfers=(
            Transfer(
                chain=normalize_symbol(moved.chain_name),
                asset=normalize_symbol(moved.symbol),
                amount=moved.amount,
                destination=normalize_address(moved.to_address),
            ),
        ),
        attributes=(
            *((name, str(level)) for name, level in levels if level is not None),
            ("from_address", normalize_address(moved.from_address or "")),
        ),
    )


# -- withdrawal second confirmation ----------------------------------------------------------

# The merchant registers each withdrawal with its UU Wallet user id as an order extra: the answer
# must name it, and it must never be taken from the request.
TENANT_EXTRA = "tenantUserId"


def _tenant(order: ExpectedOrder) -> str | None:
    # Not `order.extra(...)`: ruff's S610 mistakes that name for Django's QuerySet.extra.
    return dict(order.extras).get(TENANT_EXTRA)


def order_problem(request: WithdrawRequest, order: ExpectedOrder | None, *, now: float) -> str | None:
    """Why `order` may not answer `request` (a short reason code), or None when it may.

    The order must be this provider's, registered under the request's `callBackId`, unexpired,
    not yet confirmed, and for the same `tenantUserId`.
    """
    if order is None or order.provider != PROVIDER or order.order_ref != request.call_back_id:
        return "unknown_order"
    if order.expires_at is not None and now >= order.expires_at:
        return "order_expired"
    if order.confirmed:
        return "order_already_confirmed"
    tenant = _tenant(order)
    if tenant is None:
        return "order_without_tenant"
    if tenant != request.header.tenant_user_id:
        return "tenant_mismatch"
    return None


def decision_request(request: WithdrawRequest, order: ExpectedOrder) -> DecisionRequest:
    """The policy question for a second confirmation, built from the registered order.

    The request itself names no destination or amount, so the transfer is the order's;
    `request_id` is the stable `callBackId` (a retry has a new `requestUUID` and must get the
    same answer).
    """
    return DecisionRequest(
        provider=PROVIDER,
        operation=Operation.WITHDRAW,
        request_id=request.call_back_id,
        wallet=_tenant(order),
        transfers=(Transfer(chain=order.chain, asset=order.asset, amount=order.amount, destination=order.destination),),
        order_ref=order.order_ref,
        attributes=(("tracking_id", request.header.tracking_id or ""),),
    )


def confirmation_data(request: WithdrawRequest, order: ExpectedOrder) -> dict[str, object]:
    """The approving answer's `data`: the registered order, never fields taken from the request.

    Only `requestUUID` and `type` (correlation) come from the request; call `order_problem` first.
    """
    return {
        "tenantUserId": _tenant(order),
        "callBackId": order.order_ref,
        "address": order.destination,
        "chainName": order.chain,
        "symbol": order.asset,
        # Plain notation: str(Decimal) could say "1E+3", which the WaaS may not read as 1000.
        "amount": format(order.amount, "f"),
        "type": CallbackType.REQUEST_WITHDRAW.value,
        "requestUUID": request.header.request_uuid,
    }
