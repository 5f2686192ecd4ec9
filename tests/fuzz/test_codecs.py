"""Hostile input on every codec that tests/shared does not fuzz yet: whatever arrives, the only
exceptions are our own InputError subclasses (InvalidInput, Unauthorized, TokenRejected).

Covered elsewhere already: rsablocks and Base64 variants (test_rsablocks), ChainUp WaaS data and
notifications (test_chainup_waas), co-signer bodies (test_chainup_cosigner), UU Wallet bodies
(test_uuwallet), policy documents (test_policy_fuzz).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import InputError
from shared.providers import (
    chainup_samples,
    chainup_waas,
    cobo_tss,
    cobo_tss_event,
    cobo_tss_samples,
    cobo_ucw,
    uuwallet,
    uuwallet_samples,
    wyre,
)
from shared.providers.cobo_jwt import sign_rs256, verify_rs256
from shared.providers.jsonfields import decode_json
from shared.waas.cobo_auth import verify_webhook
from shared.waas.cobo_models import parse_tss_request, parse_tss_request_event

EXAMPLES = settings(max_examples=120, deadline=None)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1e400", "NaN", "0x10", "Success", "190", "\u0000", "9" * 80]),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
# What our own signer (orjson) can write: integers within 64 bits.
JSON64 = st.recursive(
    JSON_SCALARS.filter(lambda v: not isinstance(v, int) or isinstance(v, bool) or abs(v) < 2**63),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)


def dumps(value: object) -> bytes:
    """JSON as any sender may write it: huge integers and Infinity included."""
    return json.dumps(value).encode()


def mutations(sample: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid sample with some fields replaced by arbitrary JSON, some dropped, some added."""
    keys = sorted(sample)
    return st.builds(
        lambda changes, drop, extra: {
            **{k: v for k, v in sample.items() if k not in drop},
            **changes,
            **extra,
        },
        st.dictionaries(st.sampled_from(keys), JSON, max_size=3),
        st.sets(st.sampled_from(keys), max_size=3),
        st.dictionaries(st.text(max_size=8), JSON, max_size=2),
    )


def only_input_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(InputError):
        call()


@cache
def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- JSON and Cobo JWT -----------------------------------------------------------------------


@EXAMPLES
@given(raw=st.one_of(st.binary(max_size=300), JSON.map(dumps)))
def test_decode_json_raises_only_input_errors(raw: bytes) -> None:
    only_input_errors(lambda: decode_json(raw))


@EXAMPLES
@given(token=st.one_of(st.text(max_size=300), st.lists(st.text(max_size=60), min_size=3, max_size=3).map(".".join)))
def test_any_text_as_a_jwt_raises_only_input_errors(token: str) -> None:
    only_input_errors(lambda: verify_rs256(token, _rsa().public_key()))


@EXAMPLES
@given(
    header=st.one_of(JSON, st.fixed_dictionaries({"alg": st.just("RS256")}, optional={"crit": JSON, "typ": JSON})),
    payload=st.one_of(JSON.map(dumps), st.binary(max_size=80)),
    signature=st.binary(max_size=300),
)
def test_jwt_shaped_tokens_with_arbitrary_parts_raise_only_input_errors(
    header: object, payload: bytes, signature: bytes
) -> None:
    token = ".".join((_b64url(dumps(header)), _b64url(payload), _b64url(signature)))
    only_input_errors(lambda: verify_rs256(token, _rsa().public_key()))


@EXAMPLES
@given(claims=st.dictionaries(st.text(max_size=10), JSON64, max_size=5), exp=st.one_of(JSON64, st.just(4_000_000_000)))
def test_validly_signed_arbitrary_claims_raise_only_input_errors(claims: dict[str, Any], exp: object) -> None:
    token = sign_rs256({**claims, "exp": exp}, _rsa())
    only_input_errors(lambda: cobo_tss.decode_package_data(verify_rs256(token, _rsa().public_key())))


# -- Cobo TSS Node ---------------------------------------------------------------------------


def _package_claims(package: object) -> dict[str, Any]:
    raw = dumps(package) if not isinstance(package, bytes) else package
    return {"package_data": base64.b64encode(raw).decode()}


@EXAMPLES
@given(package=st.one_of(JSON, st.binary(max_size=100), mutations(cobo_tss_samples.keysign("ks-1"))))
def test_tss_packages_raise_only_input_errors(package: object) -> None:
    only_input_errors(lambda: cobo_tss.parse_request(cobo_tss.decode_package_data(_package_claims(package))))


@EXAMPLES
@given(detail=st.one_of(JSON, mutations(orjson.loads(cobo_tss_samples.keysign("ks-2")["request_detail"]))))
def test_tss_request_details_raise_only_input_errors(detail: object) -> None:
    package = {**cobo_tss_samples.keysign("ks-2"), "request_detail": dumps(detail).decode()}
    only_input_errors(lambda: cobo_tss.parse_request(package))


@EXAMPLES
@given(claims=st.dictionaries(st.sampled_from(["package_data", "exp", "iss"]), JSON, max_size=3))
def test_tss_claims_without_a_valid_package_raise_only_input_errors(claims: dict[str, Any]) -> None:
    only_input_errors(lambda: cobo_tss.decode_package_data(claims))


EVENT = {"event_id": "ev-1", "event_type": "request.keysign.succeeded", "node_id": "n1", "data": {"request_id": "r"}}


@EXAMPLES
@given(event=st.one_of(JSON, mutations(EVENT)))
def test_tss_events_raise_only_input_errors(event: object) -> None:
    only_input_errors(lambda: cobo_tss_event.parse_event(event))


# -- Wyre ------------------------------------------------------------------------------------

WYRE_SAMPLE = orjson.loads(
    b'{"id":"TR_1","status":"PENDING","createdAt":1,"source":"s","dest":"d","currency":"BTC","amount":1.5,'
    b'"metadata":{"a":"b"},"fees":0}'
)


@EXAMPLES
@given(body=st.one_of(st.binary(max_size=300), JSON.map(dumps), mutations(WYRE_SAMPLE).map(dumps)))
def test_wyre_bodies_raise_only_input_errors(body: bytes) -> None:
    only_input_errors(lambda: wyre.parse_body(body))


@EXAMPLES
@given(body=st.binary(max_size=100), header=st.one_of(st.none(), st.text(max_size=80)))
def test_wyre_signatures_raise_only_input_errors_and_never_verify_by_chance(body: bytes, header: str | None) -> None:
    try:
        wyre.check_signature(body, header, "wyre-secret")
    except InputError:
        return
    assert header == wyre.sign(body, "wyre-secret")


# -- Cobo UCW and WaaS webhooks --------------------------------------------------------------


@EXAMPLES
@given(report=st.one_of(JSON, mutations({"tss_request_id": "r-1", "status": 190, "failed_reason": ""})))
def test_ucw_reports_raise_only_input_errors(report: object) -> None:
    only_input_errors(lambda: cobo_ucw.parse_tss_callback(report))


@EXAMPLES
@given(value=st.text(max_size=60))
def test_ucw_wallet_ids_raise_only_input_errors(value: str) -> None:
    only_input_errors(lambda: cobo_ucw.parse_wallet_uuid(value))


WEBHOOK_DATA: dict[str, Any] = {"data_type": "TSSRequest", "tss_request_id": "r-1", "status": "Success", "type": 1}
WEBHOOK: dict[str, Any] = {"event_id": "e-1", "type": "wallets.mpc.tss_request.status_updated", "data": WEBHOOK_DATA}


@EXAMPLES
@given(event=st.one_of(JSON, mutations(WEBHOOK), mutations(WEBHOOK_DATA).map(lambda d: {**WEBHOOK, "data": d})))
def test_waas_webhook_events_raise_only_input_errors(event: object) -> None:
    only_input_errors(lambda: parse_tss_request_event(event))
    only_input_errors(lambda: parse_tss_request(event))


@EXAMPLES
@given(
    headers=st.dictionaries(
        st.sampled_from(["BIZ_TIMESTAMP", "BIZ-TIMESTAMP", "BIZ_RESP_SIGNATURE", "BIZ-RESP-SIGNATURE", "X"]),
        st.one_of(st.text(max_size=140), st.binary(max_size=64).map(bytes.hex)),
    ),
    body=st.binary(max_size=100),
)
def test_waas_webhook_signatures_raise_only_unauthorized(headers: dict[str, str], body: bytes) -> None:
    try:
        verify_webhook(_ed25519().public_key(), headers, body)
    except InputError:
        return
    raise AssertionError(f"a random signature verified: {headers}")


# -- UU Wallet and ChainUp parsers on decrypted JSON (their decryption is fuzzed in tests/shared) --


@EXAMPLES
@given(
    data=st.one_of(
        JSON,
        mutations(uuwallet_samples.DEPOSIT),
        mutations(uuwallet_samples.WITHDRAW),
        mutations(uuwallet_samples.REQUEST_WITHDRAW),
    )
)
def test_uuwallet_callbacks_raise_only_input_errors(data: object) -> None:
    only_input_errors(lambda: uuwallet.idempotency_key(uuwallet.parse_callback(data)))


@EXAMPLES
@given(data=st.one_of(JSON, mutations(chainup_samples.WAAS_CONFIRM)))
def test_chainup_withdraw_confirmations_raise_only_input_errors(data: object) -> None:
    only_input_errors(lambda: chainup_waas.parse_withdraw_confirmation(data))


@EXAMPLES
@given(form=st.dictionaries(st.sampled_from(["app_id", "data", "sign", "x"]), JSON, max_size=4))
def test_chainup_forms_raise_only_input_errors(form: dict[str, object]) -> None:
    only_input_errors(lambda: chainup_waas.parse_form(form))
