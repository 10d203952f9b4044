"""The gate cascade: the 16-row truth table, bypasses, the org flag, fail-open, the decision metric."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from sluice.auth import Environment
from sluice.engine import TriggerOptions
from sluice.mollifier.gate import GateInput, evaluate_gate, org_enrolled, record_decision
from sluice.mollifier.models import Decision, Outcome, Reason, TripResult


class Evaluator:
    def __init__(self, divert: bool = True, error: Exception | None = None) -> None:
        self.divert, self.error, self.calls = divert, error, 0

    def __call__(self, env: Environment) -> TripResult:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return TripResult(count=101 if self.divert else 1, tripped=self.divert)


def gate_input(flags: dict[str, Any] | None = None, payload_bytes: int = 10, **options: Any) -> GateInput:
    env = Environment(org_id="org_a", env_id="env_a", org_flags=flags or {})
    return GateInput(env, "hello", TriggerOptions.model_validate(options), payload_bytes)


def decide(gi: GateInput, evaluator: Evaluator, *, shadow: bool = False) -> Decision:
    return evaluate_gate(gi, shadow_mode=shadow, max_entry_bytes=1000, evaluate_trip=evaluator)


ROWS = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize(("shadow", "flag", "divert"), ROWS)
def test_truth_table(shadow: bool, flag: bool, divert: bool) -> None:
    evaluator = Evaluator(divert)
    decision = decide(gate_input({"mollifierEnabled": flag}), evaluator, shadow=shadow)
    evaluated = flag or shadow
    assert evaluator.calls == int(evaluated)
    if evaluated and divert:
        expected = Outcome.MOLLIFY if flag else Outcome.SHADOW_LOG
    else:
        expected = Outcome.PASS_THROUGH
    assert decision.outcome is expected
    assert decision.enrolled is flag


@pytest.mark.parametrize(
    ("value", "enrolled"),
    [
        (True, True),
        ("true", True),
        ("1", True),
        (1, True),
        (False, False),
        ("false", False),
        (None, False),
        ("maybe", False),
        ({"nested": 1}, False),
        ([], False),
    ],
)
def test_org_flag_absent_or_unparsable_is_off(value: Any, enrolled: bool) -> None:
    assert org_enrolled({"mollifierEnabled": value}) is enrolled
    assert org_enrolled({"betaFlag": True}) is False


def test_trigger_and_wait_passes_through_without_invoking_the_evaluator() -> None:
    evaluator = Evaluator()
    decision = decide(
        gate_input({"mollifierEnabled": True}, parentRunId="run_p", resumeParentOnCompletion=True), evaluator
    )
    assert (decision.outcome, decision.reason, evaluator.calls) == (
        Outcome.PASS_THROUGH,
        Reason.WAITS_ON_PARENT,
        0,
    )


def test_parent_run_id_alone_does_not_bypass() -> None:
    decision = decide(gate_input({"mollifierEnabled": True}, parentRunId="run_p"), Evaluator())
    assert decision.outcome is Outcome.MOLLIFY


def test_a_payload_over_the_entry_limit_passes_through_uncounted() -> None:
    evaluator = Evaluator()
    decision = decide(gate_input({"mollifierEnabled": True}, payload_bytes=1001), evaluator)
    assert (decision.reason, evaluator.calls) == (Reason.LARGE_PAYLOAD, 0)


def test_a_throwing_evaluator_is_no_divert() -> None:
    decision = decide(gate_input({"mollifierEnabled": True}), Evaluator(error=ConnectionError("down")))
    assert (decision.outcome, decision.reason) == (Outcome.PASS_THROUGH, Reason.EVALUATOR_FAILED)


def test_decision_metric_carries_outcome_and_reason_only(capsys: pytest.CaptureFixture[str]) -> None:
    gi = gate_input({"mollifierEnabled": True})
    record_decision(decide(gi, Evaluator()), gi)
    emf = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line)
    assert emf["MollifierDecision"] == [1.0] or emf["MollifierDecision"] == 1.0
    assert set(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == {"outcome", "reason"}
    assert (emf["outcome"], emf["reason"]) == ("mollify", "per_env_rate")
    assert "org_a" not in json.dumps(emf["_aws"])
