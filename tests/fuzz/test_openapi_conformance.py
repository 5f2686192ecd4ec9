"""Schemathesis against `/openapi.json` of a real gateway process with every provider and the
admin API configured: every operation the document lists, examples generated from its schemas
(a bounded number each), sent with the admin token, and schema-valid examples once more with the
headers the HTTP layer itself acts on (`Expect`, `Content-Encoding`). No answer may be a 5xx, and
every answer's status code, content type, body and headers must be ones the document declares."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Ok

from tests.fuzz.gateway_process import GatewayProcess, gateway_process
from tests.gateway.test_openapi import _all_providers_env

# What the document promises. Not schemathesis's positive_data_acceptance: a request can match
# every schema and still carry a wrong signature, which the provider's protocol refuses.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# Headers aiohttp acts on before or around any handler: an Expect it does not know is answered
# 417 by its router, a body it cannot decode 400 by our middleware (and the drain after an answer).
_TOKEN = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}", fullmatch=True)
_EXPECT = st.one_of(st.just("100-continue"), _TOKEN)
_ENCODING = st.sampled_from(["gzip", "deflate"])
TRANSPORT_HEADERS = st.one_of(
    st.fixed_dictionaries({"Expect": _EXPECT}),
    st.fixed_dictionaries({"Content-Encoding": _ENCODING}),
    st.fixed_dictionaries({"Expect": _EXPECT, "Content-Encoding": _ENCODING}),
)
# Examples per operation: schema-valid requests, requests that break the schema on purpose (wrong
# types, missing fields), and schema-valid ones with transport headers. ~30 operations x these ~20 s.
_NONE: st.SearchStrategy[dict[str, str]] = st.just({})
PASSES = (
    ("positive", GenerationMode.POSITIVE, 20, _NONE),
    ("negative", GenerationMode.NEGATIVE, 10, _NONE),
    ("transport", GenerationMode.POSITIVE, 10, TRANSPORT_HEADERS),
)


@pytest.fixture(scope="module")
def every_provider(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    folder = tmp_path_factory.mktemp("openapi-conformance")
    env = _all_providers_env(folder)
    with gateway_process(env, folder, redis_url, database_url) as process:
        yield process, env["CALLGATE_ADMIN_TOKEN"]


@pytest.fixture(scope="module")
def document(every_provider: tuple[GatewayProcess, str]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{every_provider[0].base}/openapi.json")


def test_every_answer_is_one_the_document_declares(
    document: schemathesis.BaseSchema, every_provider: tuple[GatewayProcess, str]
) -> None:
    # Schemathesis's own pytest integration (from_fixture) does not run under pytest 9: drive
    # each operation's Hypothesis strategies directly.
    headers = {"Authorization": f"Bearer {every_provider[1]}"}
    results = list(document.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]  # every operation is well-formed
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) > 15, [op.label for op in operations]
    failures: list[str] = []
    for operation, (label, mode, examples, extra) in itertools.product(operations, PASSES):

        @given(case=operation.as_strategy(mode), transport=extra)
        @settings(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def answers_as_declared(case: schemathesis.Case[Any], transport: dict[str, str]) -> None:
            case.call_and_validate(headers={**headers, **transport}, timeout=10, checks=CHECKS)

        try:
            answers_as_declared()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation with nothing to get wrong
        except FailureGroup as e:  # every operation's findings in one report, not the first only
            failures.append(f"{operation.label} ({label}): {e}")
    assert not failures, "\n\n".join(failures)
