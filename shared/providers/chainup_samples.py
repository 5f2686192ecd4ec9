"""Sample ChainUp callbacks, as ChainUp documents them: for `callgate demo` and the tests.

Co-signer bodies are plain JSON (the seed's Web3 example, DEPLOY_EN's withdraw example). WaaS
notifications play ChainUp's side of §2A: JSON encrypted with ChainUp's *private* key in type-1
blocks, URL-safe Base64 without padding, posted as the form `app_id` + `data`. Whoever sends them
needs the private half of a test key pair; against a real ChainUp key they are rightly refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from shared import rsablocks
from shared.policy.model import ExpectedOrder
from shared.providers import chainup_waas as waas

USDT_ROUTER = "0xe012F3957226894B1a2a44b3ef5070417a069dC2"
TREASURY = "0x5EDc9177997Bf6B4db559A5C184051858B3B3704"

# DEPLOY_EN §5, with the documented `pending_round`.
COSIGNER_WITHDRAW: Mapping[str, Any] = {
    "type": "sign_start",
    "withdraw_id": 12345,
    "request_id": "unique_request_id",
    "pending_round": False,
    "from": "0xc70d1eebb7c687ec8d56bead73f104d41e6e0bda",
    "to": TREASURY,
    "amount": "100.5",
    "symbol": "USDTERC20",
    "memo": "",
}
# The seed's Web3 example, without its trailing comma.
COSIGNER_WEB3: Mapping[str, Any] = {
    "type": "sign_start",
    "trans_id": 432,
    "request_id": "0000000003",
    "pending_round": False,
    "from": "0xc70d1eebb7c687ec8d56bead73f104d41e6e0bda",
    "to": USDT_ROUTER,
    "amount": 0,
    "main_chain_symbol": "HECO",
    "input_data": "0xca718c65",
    "interactive_contract": USDT_ROUTER,
    "txid": "",
}
# WaaS V2 deposit (§2A field list), numbers as the Go SDK's webhook type writes them.
WAAS_DEPOSIT: Mapping[str, Any] = {
    "charset": "utf-8",
    "version": "v2",
    "side": "deposit",
    "notify_time": "2024-05-01 10:00:00",
    "id": "45325",
    "uid": "10596",
    "symbol": "USDTERC20",
    "amount": "1250.000000000000000001",
    "address_to": TREASURY,
    "created_at": "1539050731000",
    "updated_at": "1543483252000",
    "txid": "0x" + "ab" * 32,
    "confirmations": "12",
    "status": "1",
}
WAAS_WITHDRAW: Mapping[str, Any] = {
    **WAAS_DEPOSIT,
    "side": "withdraw",
    "id": "45326",
    "request_id": "order-77",
    "withdraw_fee_symbol": "ETH",
    "withdraw_fee": "0.001",
    "fee_symbol": "ETH",
    "real_fee": "0.0004",
    "status": "5",
}
# Second confirmation (§2A): what ChainUp asks after POST /api/v2/billing/withdraw.
WAAS_CONFIRM: Mapping[str, Any] = {
    "time": 1700000000000,
    "charset": "utf-8",
    "version": "v2",
    "request_id": "order-77",
    "from_uid": "10596",
    "to_address": TREASURY,
    "amount": "12.5",
    "symbol": "USDTERC20",
    "check_sum": "k3j4h5g6",
}


def waas_confirm_order(order_ref: str, *, expires_at: float | None) -> ExpectedOrder:
    """The order a merchant registers before ChainUp asks `WAAS_CONFIRM` under `order_ref`: what
    the confirmation's own policy question pays (USDTERC20 as chain ETH, asset USDT)."""
    (transfer,) = waas.confirmation_request(waas.parse_withdraw_confirmation(WAAS_CONFIRM)).transfers
    assert transfer.destination is not None and transfer.amount is not None  # a withdrawal names both
    return ExpectedOrder(
        waas.PROVIDER, order_ref, transfer.chain, transfer.asset, transfer.destination, transfer.amount, expires_at
    )


def cosigner_body(sample: Mapping[str, Any], **changes: Any) -> bytes:
    """A co-signer JSON body: `sample` with `changes`."""
    return json.dumps({**sample, **changes}).encode()


def encrypt_as_chainup(
    payload: Mapping[str, object], private_key: rsablocks.RsaPrivate, *, chunk: int = 234, urlsafe: bool = True
) -> str:
    """`payload` as ChainUp's helpers encrypt it (Java 234-byte chunks, or the Go SDK's 245)."""
    ciphertext = rsablocks.private_encrypt(private_key, json.dumps(payload).encode(), chunk_size=chunk)
    return rsablocks.b64encode(ciphertext, urlsafe=urlsafe, padded=not urlsafe)


def waas_form(app_id: str, data: str) -> bytes:
    """The urlencoded form body ChainUp posts."""
    return urlencode({"app_id": app_id, "data": data}).encode()
