"""EvaluationReport on hand-computed cases, the Markdown table and the PNG."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cloud.training.metrics import (
    EvaluationReport,
    confusion_table_markdown,
    evaluate_predictions,
    plot_confusion,
)
from kiosk.model.conditions import CONDITIONS

MEL = CONDITIONS.index("melanoma")
BCC = CONDITIONS.index("basal_cell_carcinoma")
OTH = CONDITIONS.index("other")
ACNE = CONDITIONS.index("acne")


def _onehotish(top: list[int], conf: list[float], n_classes: int) -> np.ndarray:
    """Rows with probability `conf` on `top`, the rest spread evenly."""
    p = np.empty((len(top), n_classes))
    for i, (t, c) in enumerate(zip(top, conf, strict=True)):
        p[i] = (1 - c) / (n_classes - 1)
        p[i, t] = c
    return p


def test_two_class_confusion() -> None:
    classes = ("melanoma", "other")
    probs = _onehotish([0, 0, 1, 0, 1], [0.9] * 5, 2)
    labels = np.array([0, 0, 0, 1, 1])
    r = evaluate_predictions(probs, labels, classes, abstain_below=0.0, urgent_at=0.99)
    assert r.confusion == [[2, 1, 0], [1, 1, 0]]
    assert r.confusion_columns == ("melanoma", "other", "abstained")
    assert r.accuracy == pytest.approx(3 / 5)
    assert r.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert r.per_class["melanoma"] == {"sensitivity": 2 / 3, "specificity": 0.5, "support": 3}
    assert r.per_class["other"]["specificity"] == pytest.approx(2 / 3)
    # Urgent by top-1 melanoma (sum 0.9 < 0.99): the two melanoma predictions.
    assert r.melanoma_sensitivity_urgent == pytest.approx(2 / 3)
    assert r.bcc_sensitivity_urgent is None
    assert r.out_of_scope_rate == pytest.approx(0.5)
    assert r.urgent_rate_non_urgent == pytest.approx(0.5)
    assert r.abstain_rate == 0.0


def test_balanced_accuracy_with_abstention() -> None:
    classes = ("melanoma", "other")
    # mel right (0.9), mel right but abstained (0.55), other right (0.8), other right (0.6)
    probs = _onehotish([0, 0, 1, 1], [0.9, 0.55, 0.8, 0.6], 2)
    labels = np.array([0, 0, 1, 1])
    r = evaluate_predictions(probs, labels, classes, abstain_below=0.58, urgent_at=0.99)
    assert r.confusion == [[1, 0, 1], [0, 2, 0]]
    assert r.accuracy == pytest.approx(3 / 4)  # abstained = miss
    assert r.balanced_accuracy == pytest.approx((1 / 2 + 1) / 2)
    assert r.abstain_rate == pytest.approx(1 / 4)
    # The abstained melanoma is not urgent (sum 0.55 < 0.99, top-1 rule off when abstained).
    assert r.melanoma_sensitivity_urgent == pytest.approx(1 / 2)
    assert r.out_of_scope_rate == 1.0


def test_urgent_by_sum_and_out_of_scope_by_source() -> None:
    n_c = len(CONDITIONS)
    probs = np.full((6, n_c), 0.0)
    # 0: melanoma image, top-1 other, but mel+bcc = 0.45 >= 0.4 -> urgent
    probs[0, [MEL, BCC, OTH]] = [0.25, 0.2, 0.55]
    # 1: bcc image, top-1 bcc -> urgent
    probs[1, [BCC, OTH]] = [0.7, 0.3]
    # 2: nevus (other), abstained (0.3 top-1) -> out-of-scope ok, not urgent
    probs[2, [OTH, ACNE, MEL, 1]] = [0.3, 0.3, 0.2, 0.2]
    # 3: nevus, predicted melanoma -> not ok, urgent
    probs[3, [MEL, OTH]] = [0.8, 0.2]
    # 4: healthy skin, predicted other -> ok
    probs[4, [OTH, ACNE]] = [0.9, 0.1]
    # 5: acne image predicted acne
    probs[5, [ACNE, OTH]] = [0.9, 0.1]
    labels = np.array([MEL, BCC, OTH, OTH, OTH, ACNE])
    sources = ["melanoma", "basal_cell_carcinoma", "nevus", "nevus", "healthy_skin", "acne"]
    r = evaluate_predictions(probs, labels, CONDITIONS, 0.35, 0.4, source_classes=sources)
    assert r.melanoma_sensitivity_urgent == 1.0
    assert r.bcc_sensitivity_urgent == 1.0
    assert r.out_of_scope_rate == pytest.approx(2 / 3)
    assert r.abstain_rate == pytest.approx(1 / 6)
    assert r.out_of_scope_by_source == {
        "healthy_skin": {"support": 1, "rate": 1.0, "abstained": 0.0, "urgent": 0.0},
        "nevus": {"support": 2, "rate": 0.5, "abstained": 0.5, "urgent": 0.5},
    }
    assert r.urgent_rate_non_urgent == pytest.approx(1 / 4)
    # Rows sum to support; abstained image sits in the last column.
    assert [sum(row) for row in r.confusion] == [r.per_class[c]["support"] for c in CONDITIONS]
    assert r.confusion[OTH][-1] == 1
    # Classes without images have no sensitivity and do not enter balanced accuracy.
    assert r.per_class["eczema"]["sensitivity"] is None
    assert r.balanced_accuracy == pytest.approx((1 + 0 + 1 + 1 / 3) / 4)


def test_report_is_frozen_and_json_ready(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CONDITIONS), size=200)
    logits = rng.normal(size=(200, len(CONDITIONS)))
    logits[np.arange(200), labels] += 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    r = evaluate_predictions(probs, labels, CONDITIONS, 0.3, 0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.accuracy = 1.0  # type: ignore[misc]
    r2 = dataclasses.replace(r, int8_float_agreement=0.97, latency_ms_mean=41.0)
    d = json.loads(json.dumps(r2.to_dict()))
    assert d["classes"] == list(CONDITIONS)
    assert d["int8_float_agreement"] == 0.97
    assert d["latency_ms_p95"] is None
    assert d["confusion_columns"][-1] == "abstained"
    assert d["out_of_scope_by_source"] is None
    assert isinstance(r, EvaluationReport)
    assert 0.0 <= d["ece"] <= 1.0


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        evaluate_predictions(np.ones((3, 2)) / 2, np.array([0, 1]), ("a", "other"), 0, 1)
    with pytest.raises(ValueError):
        evaluate_predictions(np.ones((2, 3)) / 3, np.array([0, 1]), ("a", "other"), 0, 1)
    with pytest.raises(ValueError):
        evaluate_predictions(np.ones((2, 2)) / 2, np.array([0, 5]), ("a", "other"), 0, 1)


def test_markdown_table_and_png(tmp_path: Path) -> None:
    classes = ("melanoma", "other")
    probs = _onehotish([0, 0, 1, 1], [0.9, 0.55, 0.8, 0.6], 2)
    r = evaluate_predictions(probs, np.array([0, 0, 1, 1]), classes, 0.58, 0.99)
    md = confusion_table_markdown(r)
    lines = md.strip().splitlines()
    assert lines[0] == "| true \\ predicted | melanoma | other | abstained | support | recall |"
    assert lines[2] == "| **melanoma** | 1 | 0 | 1 | 2 | 50.0% |"
    assert lines[3] == "| **other** | 0 | 2 | 0 | 2 | 100.0% |"
    out = plot_confusion(r, tmp_path / "plots" / "confusion.png")
    assert out.is_file()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
