"""kiosk.model.decision: abstention, urgency and input validation (pure, no model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kiosk.model.conditions import (
    CONDITIONS,
    OTHER,
    URGENCY_BY_CONDITION,
    URGENT_CONDITIONS,
    Urgency,
)
from kiosk.model.decision import Decision, Thresholds, decide

THRESHOLDS = Thresholds(abstain_below=0.5, urgent_at=0.3)


def probs(**values: float) -> dict[str, float]:
    """A full probability dict: the given classes, the rest spread evenly over the others."""
    rest = [c for c in CONDITIONS if c not in values]
    remaining = 1.0 - sum(values.values())
    assert remaining >= -1e-12
    out = {c: remaining / len(rest) for c in rest} if rest else {}
    out.update(values)
    return {c: out[c] for c in CONDITIONS}


class TestAbstain:
    def test_exactly_at_threshold_is_not_abstained(self):
        d = decide(probs(eczema=0.5, melanoma=0.0, basal_cell_carcinoma=0.0), THRESHOLDS)
        assert d.label == "eczema"
        assert d.confidence == pytest.approx(0.5)
        assert not d.abstained
        assert d.urgency == Urgency.ROUTINE

    def test_just_below_threshold_abstains_and_asks_for_a_health_worker(self):
        d = decide(probs(eczema=0.4999, melanoma=0.0, basal_cell_carcinoma=0.0), THRESHOLDS)
        assert d.label == "eczema"  # the label is still the top-1 class
        assert d.abstained
        assert d.urgency == Urgency.SOON

    def test_unsure_other_is_soon_not_none(self):
        d = decide(probs(other=0.45, acne=0.35, melanoma=0.0, basal_cell_carcinoma=0.0), THRESHOLDS)
        assert d.label == OTHER
        assert d.abstained
        assert d.urgency == Urgency.SOON

    def test_abstained_and_urgent_is_urgent(self):
        d = decide(probs(acne=0.4, melanoma=0.2, basal_cell_carcinoma=0.15), THRESHOLDS)
        assert d.abstained
        assert d.urgency == Urgency.URGENT


class TestUrgent:
    @pytest.mark.parametrize("top", [OTHER, "acne"])
    def test_cancer_sum_escalates_whatever_the_top_label(self, top):
        # Neither cancer class is anywhere near top-1, but together they reach urgent_at.
        p = {c: 0.0 for c in CONDITIONS}
        p.update({top: 0.69, "melanoma": 0.16, "basal_cell_carcinoma": 0.15})
        d = decide(p, THRESHOLDS)
        assert d.label == top
        assert not d.abstained
        assert d.urgency == Urgency.URGENT

    def test_sum_exactly_at_threshold_is_urgent(self):
        p = {c: 0.0 for c in CONDITIONS}
        p.update({OTHER: 0.75, "melanoma": 0.125, "basal_cell_carcinoma": 0.125})
        assert decide(p, Thresholds(abstain_below=0.5, urgent_at=0.25)).urgency == Urgency.URGENT

    def test_sum_just_below_threshold_is_not_urgent(self):
        p = {c: 0.0 for c in CONDITIONS}
        p.update({OTHER: 0.7002, "melanoma": 0.15, "basal_cell_carcinoma": 0.1498})
        d = decide(p, THRESHOLDS)
        assert d.urgency == Urgency.NONE

    def test_each_cancer_class_alone_can_trigger(self):
        for cancer in URGENT_CONDITIONS:
            p = {c: 0.0 for c in CONDITIONS}
            p.update({"dermatofibroma": 0.7, cancer: 0.3})
            assert decide(p, THRESHOLDS).urgency == Urgency.URGENT


@pytest.mark.parametrize("condition", CONDITIONS)
def test_confident_urgency_follows_the_condition_table(condition):
    # 0.9 on the class; the other 0.1 spread so the cancer sum stays below 0.3 unless the class
    # itself is a cancer.
    d = decide(probs(**{condition: 0.9}), THRESHOLDS)
    assert d.label == condition
    assert d.confidence == pytest.approx(0.9)
    assert not d.abstained
    assert d.urgency == URGENCY_BY_CONDITION[condition]


def test_tie_goes_to_the_earlier_condition():
    d = decide(np.full(len(CONDITIONS), 1 / len(CONDITIONS)), Thresholds(0.1, 0.9))
    assert d.label == CONDITIONS[0]


def test_accepts_array_in_conditions_order():
    arr = np.array([0.05, 0.05, 0.05, 0.05, 0.7, 0.05, 0.05])
    d = decide(arr, THRESHOLDS)
    assert d.label == "eczema"
    assert list(d.probabilities) == list(CONDITIONS)
    assert d.probabilities["eczema"] == pytest.approx(0.7)
    assert all(type(v) is float for v in d.probabilities.values())


def test_decision_is_immutable():
    d = decide(probs(acne=0.9), THRESHOLDS)
    assert isinstance(d, Decision)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.label = "melanoma"  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.probabilities["acne"] = 0.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.full(6, 1 / 6), "expected 7"),
        ({c: 1 / 7 for c in CONDITIONS[:6]} | {"psoriasis": 1 / 7}, "missing"),
        (np.full(7, 0.2), "sum to"),
        (np.array([1.1, -0.1, 0, 0, 0, 0, 0]), "within"),
        (np.array([np.nan, 1, 0, 0, 0, 0, 0]), "within"),
    ],
)
def test_rejects_invalid_probabilities(value, message):
    with pytest.raises(ValueError, match=message):
        decide(value, THRESHOLDS)


@pytest.mark.parametrize(
    ("abstain_below", "urgent_at"), [(-0.1, 0.3), (0.5, 1.2), (0.5, 0.0), ("0.5", 0.3)]
)
def test_thresholds_validated(abstain_below, urgent_at):
    with pytest.raises(ValueError, match="threshold"):
        Thresholds(abstain_below=abstain_below, urgent_at=urgent_at)


def test_the_reason_says_where_the_urgency_comes_from():
    """A confident melanoma is urgent by its own label ("condition"), even with a cancer sum
    past the threshold; only an escalation of a label that is not itself a cancer is
    "cancer cannot be ruled out" (the screens print that line only then)."""
    th = Thresholds(abstain_below=0.5, urgent_at=0.2, soon_at=0.1)
    own = decide(probs(melanoma=0.9, other=0.1), th)
    assert (own.urgency, own.reason) == (Urgency.URGENT, "condition")
    escalated = decide(probs(actinic_keratosis=0.7, melanoma=0.3), th)
    assert (escalated.urgency, escalated.reason) == (Urgency.URGENT, "cancer_not_ruled_out")
    middle = decide(probs(actinic_keratosis=0.85, basal_cell_carcinoma=0.15), th)
    assert (middle.urgency, middle.reason) == (Urgency.SOON, "cancer_not_ruled_out")
    unsure = decide(probs(acne=0.4, eczema=0.35, other=0.25), th)
    assert (unsure.urgency, unsure.reason) == (Urgency.SOON, "unsure")
