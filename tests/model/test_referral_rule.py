"""The referral rule is chosen from a ROC to a stated policy: on synthetic scores whose ROC is
known by construction, the chosen thresholds and rates are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.training.referral import (
    ReferralPolicy,
    auc,
    bootstrap_interval,
    choose_rule,
    melanoma_vs_benign_auc,
    merge_outputs,
    operating_table,
    roc_points,
)
from kiosk.model.conditions import CONDITIONS


def synthetic():
    """100 melanomas scoring 0.01..1.00, 50 BCCs scoring 0.02..1.00 (step 0.02), 200 benign
    lesions scoring 0.0025..0.5 (step 0.0025)."""
    mel = np.arange(1, 101) / 100
    bcc = np.arange(1, 51) / 50
    benign = np.arange(1, 201) / 400
    scores = np.concatenate([mel, bcc, benign])
    kinds = ["melanoma"] * 100 + ["basal_cell_carcinoma"] * 50 + ["nevus"] * 200
    return scores, np.array(kinds)


def test_known_roc_gives_known_thresholds():
    scores, kinds = synthetic()
    rule = choose_rule(scores, kinds, ReferralPolicy(0.95, 0.92, 0.99, 0.99))
    # melanoma: 95 of 100 must reach t → the 95th largest, 0.06; BCC: ceil(0.92 * 50) = 46 of
    # 50 → the 46th largest, 0.10. Both must hold: the smaller, 0.06.
    assert rule.urgent_at == pytest.approx(0.06)
    # soon: 99 of 100 melanomas (0.02) and 50 of 50 BCCs (0.02, ceil(0.99 * 50) = 50).
    assert rule.soon_at == pytest.approx(0.02)
    rows = operating_table(scores, kinds, {"urgent": rule.urgent_at, "soon": rule.soon_at})
    urgent, soon = rows
    assert urgent["melanoma"] == pytest.approx(0.95)
    assert urgent["basal_cell_carcinoma"] == pytest.approx(0.96)  # 48 of 50 reach 0.06
    assert urgent["benign_referred"] == pytest.approx(177 / 200)  # benign >= 0.06: 24..200 / 400
    assert soon["benign_referred"] == pytest.approx(193 / 200)


def test_the_chosen_threshold_is_the_lowest_benign_rate_meeting_the_policy():
    scores, kinds = synthetic()
    rule = choose_rule(scores, kinds, ReferralPolicy(0.95, 0.92, 0.99))
    benign = scores[kinds == "nevus"]
    mel = scores[kinds == "melanoma"]
    bcc = scores[kinds == "basal_cell_carcinoma"]
    for t in np.unique(scores):
        meets = (mel >= t).mean() >= 0.95 and (bcc >= t).mean() >= 0.92
        if meets:
            assert (benign >= t).mean() >= (benign >= rule.urgent_at).mean()
    assert (mel >= rule.urgent_at + 1e-9).mean() < 0.95  # any higher and melanoma falls short


def test_the_soon_tier_asks_its_own_bcc_share():
    scores, kinds = synthetic()
    rule = choose_rule(scores, kinds, ReferralPolicy(0.95, 0.92, 0.97, 0.90))
    # melanoma 97 of 100 → 0.04; BCC ceil(0.9 * 50) = 45 of 50 → 0.12; soon = 0.04
    assert rule.soon_at == pytest.approx(0.04)
    rule = choose_rule(scores, kinds, ReferralPolicy(0.50, 0.50, 0.60, 0.98))
    # BCC 49 of 50 → 0.04 binds below melanoma's 0.41; urgent: min(0.51, 0.52) = 0.51
    assert (rule.urgent_at, rule.soon_at) == (pytest.approx(0.51), pytest.approx(0.04))


def test_bcc_can_be_the_binding_constraint():
    scores, kinds = synthetic()
    rule = choose_rule(scores, kinds, ReferralPolicy(0.50, 0.92, 0.99))
    assert rule.urgent_at == pytest.approx(0.10)  # melanoma alone would allow 0.51


def test_auc_and_roc_of_a_known_ordering():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = np.array([True, False, True, False, False, False])
    # pairs (pos, neg) ranked right: 0.9 beats all 4 negatives, 0.7 beats 3 → 7 of 8
    assert auc(scores, positive) == pytest.approx(7 / 8)
    fpr, tpr = roc_points(scores, positive)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert tpr[1] == 0.5 and fpr[2] == 0.25
    kinds = np.array(["melanoma", "nevus", "melanoma", "nevus", "acne", "dermatofibroma"])
    # acne is not a benign lesion: out of the comparison; 0.9 and 0.7 vs nevus 0.8, 0.6, DF 0.4
    assert melanoma_vs_benign_auc(scores, kinds) == pytest.approx(5 / 6)


def test_merge_outputs_sums_other():
    outputs = (*[c for c in CONDITIONS if c != "other"], "nevus", "non_skin")
    p = np.array([[0.1, 0, 0, 0, 0, 0.2, 0.3, 0.4]])
    merged = merge_outputs(p, outputs, ("nevus", "non_skin"))
    assert merged.shape == (1, 7)
    assert merged[0, CONDITIONS.index("other")] == pytest.approx(0.7)
    assert merged[0, CONDITIONS.index("melanoma")] == pytest.approx(0.2)


def test_bootstrap_interval_brackets_the_mean():
    values = np.array([1] * 15 + [0] * 4, dtype=float)  # 19 images, like DF on validation
    lo, hi = bootstrap_interval(values, rounds=2000, seed=1)
    assert lo < values.mean() < hi
    assert 0.55 < lo < 0.7 and 0.9 < hi <= 1.0
    assert bootstrap_interval(np.array([])) is None
