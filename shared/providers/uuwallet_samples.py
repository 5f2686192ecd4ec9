"""Sample UU Wallet callbacks, as the WaaS documents them: for `callgate demo` and the tests.

They play the WaaS side of the protocol (protocols/chainup_wyre.md §2B): the JSON is encrypted
with the WaaS *private* key (type-1 blocks) and posted as bare Base64 with `X-API-KEY`; answers
are opened with that private key. Whoever runs them needs the private half of a test key pair.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from shared import rsablocks
from shared.providers.jsonfields import decode_json

# The documented examples (waasapi.uuwallet.com, webhook/deposit, withdrawal, withdrawal_second).
DEPOSIT: Mapping[str, Any] = {
    "requestUUID": "fbd70fb4-c302-4228-bd61-6326e0539551",
    "chainName": "TRON",
    "symbol": "TRX",
    "amount": "2.500000000000",
    "business": 0,
    "toAddress": "TYLdkix4wqk1wLXbqbxrrY1oi1mHEM6uwP",
    "fromAddress": "TGDHyoMpgDQj4DmoZdwJP2FSkSG4DEchnK",
    "riskLevelTo": 3,
    "riskLevelFrom": 3,
    "txId": "b00a4aa3d6426f6409a83ae72a79de5b559a2c339ebc89b8b75427c2600978e3",
    "tenantUserId": "2049",
    "type": 1,
    "txIndex": -1,
    "newAddress": "TYLdkix4wqk1wLXbqbxrrY1oi1mHEM6uwP",
    "trackingId": "6484",
}
WITHDRAW: Mapping[str, Any] = {
    "tenantUserId": "1945",
    "requestUUID": "00f2faf7-b705-4d65-9d82-0b6e372b92e4",
    "txId": "598433d2fe70a2e944bbda8b517cca36e0cf7cfe49642b569e73cf1a641148cb",
    "type": 3,
    "chainName": "TRON",
    "symbol": "USDT",
    "amount": "2.500000000000",
    "fromAddress": "TBmNNTP84QSRW8Dvb1aCBk7GmxQnNS5rAb",
    "toAddress": "TGDHyoMpgDQj4DmoZdwJP2FSkSG4DEchnK",
    "business": 0,
    "callBackId": "250624392590001",
    "newAddress": "TGDHyoMpgDQj4DmoZdwJP2FSkSG4DEchnK",
    "trackingId": "102003",
}
REQUEST_WITHDRAW: Mapping[str, Any] = {
    "business": 0,
    "requestUUID": "f56d2814-7a8f-4dcf-9008-990c1be6e13e",
    "tenantUserId": "bbxuzbc",
    "callBackId": "D611657466",
    "type": 2,
    "trackingId": "102004",
}


def with_new_request_uuid(sample: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A retry of `sample` as the WaaS sends it: the same event, a fresh `requestUUID`."""
    return {**sample, "requestUUID": str(uuid.uuid4()), **changes}


def encrypt_as_waas(payload: Mapping[str, object], private_key: rsablocks.RsaPrivate) -> bytes:
    """What the WaaS posts: type-1 blocks made with its private key, standard Base64."""
    plaintext = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return rsablocks.b64encode(rsablocks.private_encrypt(private_key, plaintext)).encode()


def decrypt_as_waas(data: str, private_key: rsablocks.RsaPrivate) -> object:
    """What the WaaS does with an answer's `data` (a padding oracle: demo and tests only)."""
    return decode_json(rsablocks.private_decrypt(private_key, rsablocks.b64decode(data)))
