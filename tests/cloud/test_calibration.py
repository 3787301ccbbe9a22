"""Calibration and threshold selection on small hand-computed and synthetic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cloud.training.calibration import (
    choose_abstain_threshold,
    choose_urgent_threshold,
    expected_calibration_error,
    fit_temperature,
    nll,
    softmax,
    urgent_mask,
    urgent_sensitivities,
)
from kiosk.model.conditions import CONDITIONS

MEL = CONDITIONS.index("melanoma")
BCC = CONDITIONS.index("basal_cell_carcinoma")
OTH = CONDITIONS.index("other")


def test_softmax_stable_and_normalised() -> None:
    logits = np.array([[1000.0, 1000.0, -1000.0], [0.0, 0.0, 0.0]])
    p = softmax(logits)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    # Higher temperature flattens.
    q = softmax(np.array([[2.0, 0.0]]), temperature=2.0)
    np.testing.assert_allclose(q[0, 0], 1 / (1 + math.exp(-1.0)))
    with pytest.raises(ValueError):
        softmax(logits, temperature=0.0)


def test_ece_perfectly_calibrated_bins_is_zero() -> None:
    # 10 images at confidence 0.8 with 8 right, 10 at 0.6 with 6 right.
    probs = np.array([[0.8, 0.2]] * 10 + [[0.6, 0.4]] * 10)
    labels = np.array([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_computed() -> None:
    # All at 0.9 and all right: gap 0.1 in one bin. Add 0.6 with 0 of 2 right: gap 0.6.
    probs = np.array([[0.9, 0.1]] * 8 + [[0.6, 0.4]] * 2)
    labels = np.array([0] * 8 + [1] * 2)
    expected = 0.8 * 0.1 + 0.2 * 0.6
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(expected)


def test_ece_single_bin_averages_gaps_within_bin() -> None:
    probs = np.array([[0.9, 0.1], [0.7, 0.3]])
    labels = np.array([0, 1])
    # One bin: accuracy 0.5, mean confidence 0.8.
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(0.3)


def test_fit_temperature_recovers_known_temperature() -> None:
    rng = np.random.default_rng(0)
    t_true = 2.5
    logits = rng.normal(scale=4.0, size=(6000, 7))
    p = softmax(logits, t_true)
    labels = np.array([rng.choice(7, p=row) for row in p])
    t = fit_temperature(logits, labels)
    assert abs(t - t_true) / t_true < 0.10
    # It is the NLL minimiser: neighbours are no better.
    assert nll(logits, labels, t) <= nll(logits, labels, t * 1.05)
    assert nll(logits, labels, t) <= nll(logits, labels, t / 1.05)


def test_fit_temperature_sharpens_underconfident_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(3000, 5))
    labels = np.array([rng.choice(5, p=row) for row in softmax(z)])
    # Logits scaled down by 4 (under-confident): T should come out near 1/4.
    t = fit_temperature(z / 4.0, labels)
    assert t == pytest.approx(0.25, rel=0.1)
    assert fit_temperature(z / 4.0, labels) == t


def _synthetic_probs(rng: np.random.Generator, labels: np.ndarray, strength: float) -> np.ndarray:
    logits = rng.normal(size=(len(labels), len(CONDITIONS)))
    logits[np.arange(len(labels)), labels] += strength
    return softmax(logits)


def test_urgent_threshold_meets_target_on_synthetic_data() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, len(CONDITIONS), size=2000)
    probs = _synthetic_probs(rng, labels, strength=1.5)
    for target in (0.8, 0.9, 0.95, 0.99):
        t = choose_urgent_threshold(probs, labels, CONDITIONS, target)
        s = probs[:, MEL] + probs[:, BCC]
        mel = labels == MEL
        assert (s[mel] >= t).mean() >= target
        # The largest such threshold: any higher one misses the target.
        higher = np.min(s[mel][s[mel] > t], initial=np.inf)
        assert (s[mel] >= higher).mean() < target
        # The full kiosk rule (sum or top-1 urgent) only adds flags.
        sens = urgent_sensitivities(probs, labels, CONDITIONS, t)
        assert sens["melanoma"] is not None and sens["melanoma"] >= target
        assert sens["basal_cell_carcinoma"] is not None


def test_urgent_threshold_hand_computed() -> None:
    # Four melanoma images with urgent sums 0.9, 0.6, 0.4, 0.2 (+ one nevus that must not count).
    sums = [0.9, 0.6, 0.4, 0.2, 0.95]
    probs = np.zeros((5, len(CONDITIONS)))
    for i, s in enumerate(sums):
        probs[i, MEL] = s
        probs[i, OTH] = 1 - s
    labels = np.array([MEL] * 4 + [OTH])
    # 75% needs 3 of 4: threshold is the 3rd largest melanoma sum.
    assert choose_urgent_threshold(probs, labels, CONDITIONS, 0.75) == pytest.approx(0.4)
    assert choose_urgent_threshold(probs, labels, CONDITIONS, 0.5) == pytest.approx(0.6)
    assert choose_urgent_threshold(probs, labels, CONDITIONS, 1.0) == pytest.approx(0.2)
    # Class names work as labels too.
    names = np.array([CONDITIONS[i] for i in labels])
    assert choose_urgent_threshold(probs, names, CONDITIONS, 0.75) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        choose_urgent_threshold(probs[4:], labels[4:], CONDITIONS)


def test_urgent_mask_top1_rule_respects_abstention() -> None:
    probs = np.zeros((3, len(CONDITIONS)))
    probs[0, [BCC, OTH]] = [0.4, 0.6]  # sum 0.4 < 0.5, top-1 other: not urgent
    probs[1, [BCC, OTH, 0]] = [0.45, 0.3, 0.25]  # top-1 bcc, confident enough: urgent
    probs[2, [BCC, OTH, 0, 1]] = [0.3, 0.25, 0.25, 0.2]  # top-1 bcc but abstained: not urgent
    got = urgent_mask(probs, CONDITIONS, urgent_at=0.5, abstain_below=0.35)
    assert got.tolist() == [False, True, False]
    # Over the threshold, abstention does not hide the flag.
    assert urgent_mask(probs, CONDITIONS, urgent_at=0.3, abstain_below=0.9).all()


def test_abstain_threshold_hand_computed() -> None:
    # Two classes for clarity: names must include "other".
    classes = ("melanoma", "other")
    probs = np.array(
        [
            [0.95, 0.05],  # mel, right
            [0.90, 0.10],  # mel, right
            [0.55, 0.45],  # other image called mel: wrong, low confidence
            [0.10, 0.90],  # other, right
        ]
    )
    labels = np.array([0, 0, 1, 1])
    # Abstaining below 0.9 (only the 0.55 image) fixes the out-of-scope miss for free.
    assert choose_abstain_threshold(probs, labels, 0.25, classes) == pytest.approx(0.9)
    # With no abstention allowed, the threshold is 0.
    assert choose_abstain_threshold(probs, labels, 0.0, classes) == 0.0


def test_abstain_threshold_respects_cap_and_trades_off() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, len(CONDITIONS), size=3000)
    probs = _synthetic_probs(rng, labels, strength=2.0)
    for cap in (0.0, 0.05, 0.1, 0.3):
        t = choose_abstain_threshold(probs, labels, cap)
        assert (probs.max(axis=1) < t).mean() <= cap + 1e-12
    # Deterministic.
    assert choose_abstain_threshold(probs, labels, 0.1) == choose_abstain_threshold(
        probs, labels, 0.1
    )
