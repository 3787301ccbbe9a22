"""The model card renders licenses, metrics and limitations, and tolerates missing keys."""

from __future__ import annotations

import numpy as np

from cloud.training.metrics import evaluate_predictions
from cloud.training.model_card import render_model_card
from kiosk.model.conditions import CONDITIONS

OTH = CONDITIONS.index("other")


def _reports() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(CONDITIONS)), 20)
    logits = rng.normal(size=(len(labels), len(CONDITIONS)))
    logits[np.arange(len(labels)), labels] += 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sources = [
        ("nevus" if i % 2 else "healthy_skin") if y == OTH else CONDITIONS[y]
        for i, y in enumerate(labels)
    ]
    int8 = evaluate_predictions(probs, labels, CONDITIONS, 0.3, 0.25, source_classes=sources)
    flt = evaluate_predictions(probs * 0.99 + 0.01 / len(CONDITIONS), labels, CONDITIONS, 0.3, 0.25)
    d8 = int8.to_dict()
    d8.update(int8_float_agreement=0.985, latency_ms_mean=42.25, latency_ms_p95=55.0)
    return d8, flt.to_dict()


def test_card_has_licenses_metrics_and_limitations() -> None:
    r8, rf = _reports()
    extra = {
        "split": {
            "train": {"melanoma": 890, "dermatofibroma": 92},
            "val": {"melanoma": 223, "dermatofibroma": 23},
        },
        "temperature": 1.734,
        "ece_before": 0.081,
        "ece_after": 0.023,
        "target_sensitivity": 0.95,
        "max_abstain_rate": 0.1,
        "latency": {"device": "Raspberry Pi 5"},
    }
    metadata = {"version": "2024.06-1", "classes": list(CONDITIONS), "input_size": 224}
    card = render_model_card(metadata, r8, rf, extra)
    for words in (
        "CC BY-NC 4.0",
        "CC BY 4.0",
        "ACNE04",
        "research use only",
        "DermNet",
        "11k Hands",
        "NON-COMMERCIAL",
        "not a diagnosis",
        "health worker",
        "Lesion-disjoint",
        "Skin-tone",
        "Austria and Australia",
        "dermoscope",
        "200×150",
        "Dermatofibroma",
        "not an all-clear",
        "Non-skin",
        "test split",
        "2024.06-1",
        "Raspberry Pi 5",
    ):
        assert words in card, words
    # Metric values.
    assert f"{100 * r8['accuracy']:.1f}%" in card
    assert f"{100 * r8['balanced_accuracy']:.1f}%" in card
    assert f"{100 * r8['melanoma_sensitivity_urgent']:.1f}%" in card
    assert f"{100 * rf['accuracy']:.1f}%" in card
    assert "98.5%" in card  # int8 vs float agreement
    assert "42.2 ms" in card or "42.3 ms" in card
    assert "1.734" in card and "0.081" in card and "0.023" in card
    assert "0.250" in card and "0.300" in card  # thresholds
    assert "| `melanoma` | 890 | 223 |" in card  # split counts
    assert "`nevus`" in card and "`healthy_skin`" in card  # out-of-scope by source
    for c in CONDITIONS:
        assert f"`{c}`" in card
    assert "| **melanoma** |" in card  # confusion rows


def test_card_tolerates_missing_keys() -> None:
    card = render_model_card({}, {}, None, {})
    assert "NON-COMMERCIAL" in card
    assert "CC BY-NC 4.0" in card
    assert "Limitations" in card
    r8, _ = _reports()
    partial = {k: r8[k] for k in ("accuracy", "classes")}
    card = render_model_card({"name": "x"}, partial, None, {"split": {"train": 10, "val": 3}})
    assert f"{100 * r8['accuracy']:.1f}%" in card
    assert "| `images` | 10 | 3 |" in card
    assert "float" not in card.split("## Evaluation")[1].split("## Calibration")[0]


def test_the_decision_rule_names_the_soon_tier_when_the_metadata_has_one() -> None:
    r8, rf = _reports()
    with_tier = {"classes": list(CONDITIONS), "thresholds": {"urgent_at": 0.09, "soon_at": 0.04}}
    card = render_model_card(with_tier, r8, rf, {})
    assert '**soon** ("skin cancer cannot be ruled out")' in card and "(0.040)" in card
    without = render_model_card({"classes": list(CONDITIONS)}, r8, rf, {})
    assert "**soon**" not in without
