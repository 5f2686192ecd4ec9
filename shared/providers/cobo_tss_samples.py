"""Correctly signed sample TSS Node callbacks: for `callgate demo`, the tests and the benchmark.

They play the node's side of the protocol (protocols/cobo.md A.2-A.3): the request JSON is
double-encoded (`request_detail`/`extra_info` are JSON strings) and sits base64-encoded in the
`package_data` claim of an RS256 token signed with the node's callback key.
"""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import evm
from shared.providers.cobo_jwt import sign_rs256, verify_rs256
from shared.providers.cobo_tss import decode_package_data

NODE_IDS = ("coboNodeA1", "coboNodeB2", "coboNodeC3")
SAMPLE_DESTINATION = "0x8b45b84e2cf29e5f826797df7e1aa93fc71a2bfd"
USDT_CONTRACT = "0xdac17f958d2ee523a2206206994597c13d831ec7"


def request_token(
    package: dict[str, Any], key: rsa.RSAPrivateKey, *, issuer: str = "cobo-tss-node", ttl_s: float = 120.0
) -> str:
    """Wrap a request package into a node-style token signed with `key`."""
    claims = {
        "package_data": base64.b64encode(orjson.dumps(package)).decode("ascii"),
        "exp": int(time.time() + ttl_s),
        "iss": issuer,
    }
    return sign_rs256(claims, key)


def read_response(token: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    """Verify our answer token with our public key and return its `package_data` JSON."""
    return decode_package_data(verify_rs256(token.strip().strip('"'), key))


def ping() -> dict[str, Any]:
    return {"request_id": "", "request_type": 0, "request_detail": "", "extra_info": ""}


def keygen(
    request_id: str, *, node_ids: tuple[str, ...] = NODE_IDS, threshold: int = 2, curve: int = 0
) -> dict[str, Any]:
    detail = {"threshold": threshold, "node_ids": list(node_ids), "curve": curve, "task_id": f"task-{request_id}"}
    return _package(request_id, 1, detail | {"biz_task_id": f"tss-{request_id}"}, _org(tss_request_id=request_id))


def reshare(request_id: str, *, new_node_ids: tuple[str, ...] = NODE_IDS, new_threshold: int = 2) -> dict[str, Any]:
    detail = {
        "old_group_id": "group-old",
        "root_pub_key": "xpub-sample",
        "curve": 0,
        "used_node_ids": list(NODE_IDS[:2]),
        "old_threshold": 2,
        "new_threshold": new_threshold,
        "new_node_ids": list(new_node_ids),
        "task_id": f"task-{request_id}",
        "biz_task_id": f"tss-{request_id}",
    }
    return _package(request_id, 3, detail, _org(tss_request_id=request_id))


def keysharesign(request_id: str, *, node_id: str = NODE_IDS[0]) -> dict[str, Any]:
    detail = {
        "node_id": node_id,
        "task_id": f"task-{request_id}",
        "details": [{"group_id": "group-main", "message": "68656c6c6f"}],
        "biz_task_id": f"kss-{request_id}",
    }
    return _package(request_id, 5, detail, _org(wallet_id="wallet-1"))


def evm_transfer_tx(*, to: str = SAMPLE_DESTINATION, wei: int = 15 * 10**17, tx_type: int = 2, nonce: int = 7) -> str:
    """An unsigned native ETH transfer (mainnet chain id 1)."""
    return evm.encode_unsigned_tx(tx_type=tx_type, chain_id=1, nonce=nonce, to=to, value=wei)


def erc20_tx(
    *, method: str = "transfer", to: str = SAMPLE_DESTINATION, units: int = 50_500_000, tx_type: int = 2
) -> str:
    """An unsigned ERC-20 `transfer`/`approve` on the USDT contract."""
    data = evm.erc20_calldata(method, to, units)
    return evm.encode_unsigned_tx(
        tx_type=tx_type, chain_id=1, nonce=3, to=USDT_CONTRACT, value=0, data=data, gas=60_000
    )


def keysign(
    request_id: str,
    *,
    raw_tx: str | None = None,
    msg_hashes: list[str] | None = None,
    chain_id: str = "ETH",
    token_id: str = "ETH",  # noqa: S107 (a Cobo token id, not a credential)
    destination: str = SAMPLE_DESTINATION,
    amount: Decimal | str = "1.5",
    wallet_id: str = "wallet-1",
    source_address: str = "0x1111111111111111111111111111111111111111",
) -> dict[str, Any]:
    """A key-sign request for a transfer; the hash list defaults to the raw transaction's own."""
    raw = evm_transfer_tx() if raw_tx is None else raw_tx
    hashes = msg_hashes if msg_hashes is not None else [evm.parse_unsigned_tx(raw).signing_hash]
    detail = {
        "group_id": "group-main",
        "root_pub_key": "xpub-sample",
        "used_node_ids": list(NODE_IDS[:2]),
        "bip32_path_list": ["m/44/60/0/0/0"],
        "msg_hash_list": hashes,
        "tweak_list": [],
        "signature_type": 1,
        "tss_protocol": 2,
        "task_id": f"task-{request_id}",
        "biz_task_id": f"tx-{request_id}",
    }
    transaction = {
        "transaction_id": f"tx-{request_id}",
        "request_id": f"order-{request_id}",
        "wallet_id": wallet_id,
        "type": "Withdrawal",
        "status": "PendingSignature",
        "chain_id": chain_id,
        "token_id": token_id,
        "source": {"source_type": "Org-Controlled", "wallet_id": wallet_id},
        "destination": {
            "destination_type": "Address",
            "account_output": {"address": destination, "amount": str(amount)},
        },
        "raw_tx_info": {"unsigned_raw_tx": raw},
        "created_timestamp": 1_700_000_000_000,
        "updated_timestamp": 1_700_000_000_000,
    }
    # AddressInfo requires chain_id beside the address (protocols/cobo.md A.3; Cobo's SDK refuses one without).
    source = {"address": source_address, "chain_id": chain_id, "path": "m/44/60/0/0/0"}
    extra = _org(wallet_id=wallet_id) | {"source_addresses": [source], "transaction": transaction}
    return _package(request_id, 2, detail, extra)


def _org(*, tss_request_id: str = "", wallet_id: str = "") -> dict[str, Any]:
    extra: dict[str, Any] = {
        "org": {"org_id": "org-1", "name": "Sample org"},
        "project": {"project_id": "project-1"},
        "vault": {"vault_id": "vault-1", "type": "Org-Controlled"},
    }
    if tss_request_id:
        extra["tss_request"] = {"tss_request_id": f"tss-{tss_request_id}", "status": "MPCProcessing"}
    if wallet_id:
        # MPCWalletInfo names the org and vault the wallet belongs to (protocols/cobo.md A.3):
        # the same ones as the `org` and `vault` objects beside it.
        extra["wallet"] = {
            "wallet_id": wallet_id,
            "wallet_type": "MPC",
            "wallet_subtype": "Org-Controlled",
            "name": "Sample wallet",
            "org_id": extra["org"]["org_id"],
            "project_id": extra["project"]["project_id"],
            "vault_id": extra["vault"]["vault_id"],
        }
    return extra


def _package(request_id: str, request_type: int, detail: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "request_type": request_type,
        "request_detail": orjson.dumps(detail).decode(),
        "extra_info": orjson.dumps(extra).decode(),
    }
