"""The referral rule: thresholds on p(melanoma) + p(BCC) chosen from a ROC, to a stated policy.

v1 inherited one threshold from "flag >= 95% of melanoma" and so referred half of all benign
lesions. v2 states a policy and reads both tiers off the validation ROC:

- urgent_at: the largest threshold at which at least `melanoma_sensitivity` of the melanomas and
  `bcc_sensitivity` of the BCCs score >= it. Benign referrals only fall as the threshold rises,
  so the largest admissible threshold is the one with the fewest benign lesions referred.
- soon_at (<= urgent_at): the largest threshold reaching `soon_sensitivity` of the melanomas
  and `bcc_soon_sensitivity` of the BCCs (BCC grows slowly and rarely spreads: "soon" is the
  right answer for most of them, and asking 99% of them would put nearly every benign lesion in
  the soon tier with today's model). Between the two the kiosk says "see a doctor in the coming
  weeks; skin cancer cannot be ruled out", not "urgent": no cancer the soon tier catches is sent
  home as all-clear.

Benign lesions are the dermoscopic pictures of nevus, benign keratosis, dermatofibroma and
vascular lesion: the pictures a clip-on dermoscope will mostly show, and the ones whose false
urgent referrals make a kiosk ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kiosk.model.conditions import CONDITIONS, OTHER

BENIGN_LESIONS = ("nevus", "benign_keratosis", "dermatofibroma", "vascular_lesion")
CANCERS = ("melanoma", "basal_cell_carcinoma")

# Published operating points (sensitivity, specificity) for melanoma, for the ROC plot.
ANCHORS = {
    "DERM (Skin Analytics 2020)": (0.95, 0.64),
    "dermatologists (meta-analysis)": (0.875, 0.814),
    "SkinVision": (0.80, 0.78),
}


@dataclass(frozen=True)
class ReferralPolicy:
    melanoma_sensitivity: float = 0.95
    bcc_sensitivity: float = 0.92
    soon_sensitivity: float = 0.99
    bcc_soon_sensitivity: float = 0.95

    def describe(self) -> str:
        return (
            f"urgent: the lowest benign-lesion referral rate with >= "
            f"{self.melanoma_sensitivity:.0%} of melanomas and >= {self.bcc_sensitivity:.0%} of "
            f"BCCs flagged on validation; soon (cancer cannot be ruled out): >= "
            f"{self.soon_sensitivity:.0%} of melanomas and >= {self.bcc_soon_sensitivity:.0%} of "
            "BCCs reach soon or urgent"
        )


@dataclass(frozen=True)
class ReferralRule:
    urgent_at: float
    soon_at: float
    policy: ReferralPolicy

    def as_dict(self) -> dict:
        return {
            "urgent_at": self.urgent_at,
            "soon_at": self.soon_at,
            "policy": asdict(self.policy),
            "chosen_for": self.policy.describe(),
        }


def merge_outputs(
    fine_probs: np.ndarray, outputs: Sequence[str], other_outputs: Sequence[str]
) -> np.ndarray:
    """(N, len(outputs)) probabilities → (N, 7) in CONDITIONS order, `other` summed."""
    p = np.asarray(fine_probs, dtype=np.float64)
    cols = []
    for c in CONDITIONS:
        names = other_outputs if c == OTHER else [c]
        cols.append(p[:, [list(outputs).index(n) for n in names]].sum(axis=1))
    return np.stack(cols, axis=1)


def merged_logits(
    fine_logits: np.ndarray, outputs: Sequence[str], other_outputs: Sequence[str]
) -> np.ndarray:
    """7-class logits whose softmax is the summed fine softmax: `other` = logsumexp."""
    z = np.asarray(fine_logits, dtype=np.float64)
    cols = []
    for c in CONDITIONS:
        names = other_outputs if c == OTHER else [c]
        sub = z[:, [list(outputs).index(n) for n in names]]
        m = sub.max(axis=1, keepdims=True)
        cols.append((m + np.log(np.exp(sub - m).sum(axis=1, keepdims=True)))[:, 0])
    return np.stack(cols, axis=1)


def cancer_score(probs7: np.ndarray) -> np.ndarray:
    p = np.asarray(probs7, dtype=np.float64)
    return sum(p[:, CONDITIONS.index(c)] for c in CANCERS)


def _threshold_for(scores: np.ndarray, sensitivity: float) -> float:
    """Largest t with share(scores >= t) >= sensitivity (the k-th largest, k = ceil(s * n))."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if s.size == 0:
        return math.inf
    k = max(1, math.ceil(sensitivity * len(s) - 1e-9))
    return float(s[k - 1])


def choose_rule(
    scores: np.ndarray, kinds: Sequence[str], policy: ReferralPolicy = ReferralPolicy()
) -> ReferralRule:
    """Thresholds for `policy` from cancer scores and each image's kind (folder class)."""
    kinds_a = np.asarray(kinds)
    mel, bcc = scores[kinds_a == "melanoma"], scores[kinds_a == "basal_cell_carcinoma"]
    if mel.size == 0:
        raise ValueError("no melanoma images: cannot choose a referral rule")
    urgent = min(
        _threshold_for(mel, policy.melanoma_sensitivity),
        _threshold_for(bcc, policy.bcc_sensitivity),
    )
    soon = min(
        _threshold_for(mel, policy.soon_sensitivity),
        _threshold_for(bcc, policy.bcc_soon_sensitivity),
        urgent,
    )
    return ReferralRule(urgent_at=float(urgent), soon_at=float(soon), policy=policy)


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every threshold, from (0,0) to (1,1)."""
    order = np.argsort(-scores, kind="stable")
    pos = positive[order].astype(np.float64)
    tpr = np.concatenate([[0.0], np.cumsum(pos) / max(pos.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - pos) / max((1 - pos).sum(), 1)])
    return fpr, tpr


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC (Mann-Whitney, ties count half); None without both kinds."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def melanoma_vs_benign_auc(scores: np.ndarray, kinds: Sequence[str]) -> float | None:
    kinds_a = np.asarray(kinds)
    sel = (kinds_a == "melanoma") | np.isin(kinds_a, BENIGN_LESIONS)
    return auc(scores[sel], kinds_a[sel] == "melanoma")


def operating_table(
    scores: np.ndarray, kinds: Sequence[str], thresholds: Mapping[str, float]
) -> list[dict]:
    """Per threshold: melanoma / BCC flagged and benign lesions referred."""
    kinds_a = np.asarray(kinds)
    rows = []
    for name, t in thresholds.items():
        flagged = scores >= t
        row = {"threshold": name, "value": float(t)}
        for k in CANCERS:
            sel = kinds_a == k
            row[k] = float(flagged[sel].mean()) if sel.any() else None
        benign = np.isin(kinds_a, BENIGN_LESIONS)
        row["benign_referred"] = float(flagged[benign].mean()) if benign.any() else None
        rows.append(row)
    return rows


def bootstrap_interval(
    values: np.ndarray, rounds: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of 0/1 (or real) values; None when empty."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (rounds, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def plot_roc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]],
    path_png: str | Path,
    marks: Mapping[str, tuple[float, float]] | None = None,
) -> Path:
    """Melanoma-vs-benign ROC curves (label → (fpr, tpr, auc)) with the published anchors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    for label, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} (AUC {area:.3f})" if area is not None else label)
    for name, (sens, spec) in ANCHORS.items():
        ax.plot(1 - spec, sens, "o", label=f"{name}: {sens:.1%} / {spec:.1%}")
    for name, (fpr, tpr) in (marks or {}).items():
        ax.plot(fpr, tpr, "x", markersize=10, mew=2, label=name)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("benign lesions referred (1 - specificity)")
    ax.set_ylabel("melanoma flagged (sensitivity)")
    ax.set_title("Melanoma vs benign lesions, score p(melanoma) + p(BCC)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path_png)
    fig.savefig(out)
    plt.close(fig)
    return out
