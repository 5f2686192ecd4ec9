"""Schemathesis against `/openapi.json` of a real gateway process with every provider and the
admin API configured: every operation the document lists, examples generated from its schemas
(a bounded number each), sent with the admin token. No answer may be a 5xx, and every answer's
status code, content type, body and headers must be ones the document declares for it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
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
# Examples per operation: schema-valid requests, and requests that break the schema on purpose
# (wrong types, missing fields). ~25 operations x these take ~20 s.
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}


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
    for operation, mode in itertools.product(operations, EXAMPLES):

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=EXAMPLES[mode], deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def answers_as_declared(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=headers, timeout=10, checks=CHECKS)

        try:
            answers_as_declared()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation with nothing to get wrong
        except FailureGroup as e:  # every operation's findings in one report, not the first only
            failures.append(f"{operation.label} ({mode.value}): {e}")
    assert not failures, "\n\n".join(failures)
