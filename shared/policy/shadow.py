"""Shadow evaluation: a candidate version decides every live request too, and never answers.

`publish --shadow` stores a candidate beside the active version; every gateway's holder compiles
it as well (`PolicyHolder.shadow`). After a synchronous handler has its answer, `audit` decides
the same request under the shadow with the same pure `decide`, counts a disagreement
(`callgate_policy_shadow_disagreements_total{provider,rule}`) and returns what the audit keeps
besides the answer: the request itself (so that `callgate policy test` can decide it again) and
the shadow's verdict. The answer is never read from here: a shadow cannot change it.
"""

from __future__ import annotations

from shared.jobs import JsonObject
from shared.metrics import Metrics
from shared.policy.model import Decision, DecisionRequest, OrderView
from shared.policy.requests import request_to_data
from shared.policy.snapshot import PolicySnapshot, decide


def audit(
    source: object | None,
    question: DecisionRequest,
    verdict: Decision,
    *,
    orders: OrderView | None = None,
    metrics: Metrics | None = None,
    with_request: bool = True,
) -> JsonObject:
    """The audit fields of a policy `verdict` besides its answer: `request` (unless the handler
    stores it already) and, while `source` (the holder) has a shadow version, `shadow`."""
    data: JsonObject = {"request": request_to_data(question)} if with_request else {}
    shadow = getattr(source, "shadow", None)  # stand-in sources (tests, embedders) may have none
    if isinstance(shadow, PolicySnapshot):
        other = decide(shadow, question, orders=orders)
        agrees = other.action is verdict.action
        data["shadow"] = shadow_data(other, agrees=agrees)
        if not agrees and metrics is not None:
            metrics.policy_shadow_disagreements.labels(question.provider, rule_label(other)).inc()
    return data


def shadow_data(decision: Decision, *, agrees: bool) -> JsonObject:
    """The shadow's verdict as the audit stores it (`decision.shadow`)."""
    return {
        "version": decision.policy_version,
        "action": decision.action.value,
        "agrees": agrees,
        "reasons": [{"code": r.code, "rule": r.rule} for r in decision.reasons],
    }


def rule_label(decision: Decision) -> str:
    """A bounded label: the first rule id behind a decision (ids come from published documents)."""
    return next((r.rule for r in decision.reasons if r.rule), "builtin")
