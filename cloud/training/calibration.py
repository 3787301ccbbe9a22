"""Calibration and decision thresholds, fitted on the validation split.

Pure numpy functions: temperature scaling, expected calibration error, and the two kiosk
thresholds (urgent referral on p(melanoma) + p(basal_cell_carcinoma), abstain on top-1
confidence).

Labels are integer indices into `classes` (as `dataset.labels_array` makes them); the functions
that take `classes` also accept the class names themselves.

The kiosk decision rule these thresholds feed (and `metrics.evaluate_predictions` scores):

* abstain ("unsure, please retake / ask the health worker") when top-1 confidence < abstain_below;
* urgent when p(melanoma) + p(basal_cell_carcinoma) >= urgent_at, or when the top-1 class is an
  urgent class and the kiosk did not abstain. An abstention never hides an urgent flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from kiosk.model.classifier import softmax  # the kiosk's own: calibration must match what it runs
from kiosk.model.conditions import CONDITIONS, OTHER, URGENT_CONDITIONS

__all__ = ["softmax"]  # re-exported for the training scripts

TEMPERATURE_BOUNDS = (0.05, 20.0)


def _as_logits(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"expected (N, C>=2) scores, got shape {x.shape}")
    return x


def label_indices(labels: np.ndarray | Sequence, classes: Sequence[str] | int) -> np.ndarray:
    """Labels as int64 indices into `classes`; accepts indices, or class names when `classes`
    is the sequence of names (an int is just the number of classes)."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if isinstance(classes, int):
        if arr.dtype.kind in "UO":
            raise ValueError("class-name labels need the class names, not just their number")
        classes = [str(i) for i in range(classes)]
    if arr.dtype.kind in "UO":
        lookup = {c: i for i, c in enumerate(classes)}
        try:
            return np.array([lookup[str(v)] for v in arr], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"label {e.args[0]!r} is not one of {list(classes)}") from None
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer indices or class names, got {arr.dtype}")
    out = arr.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= len(classes)):
        raise ValueError(f"label indices must lie in [0, {len(classes)})")
    return out


def _check_pair(scores: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> None:
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {labels.shape[0]} labels")
    if n_classes is not None and scores.shape[1] != n_classes:
        raise ValueError(f"scores have {scores.shape[1]} columns but there are {n_classes} classes")


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """log softmax(logits / temperature) along the last axis, numerically stable."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the integer labels under softmax(logits / temperature)."""
    x = _as_logits(logits)
    y = label_indices(labels, x.shape[1])
    _check_pair(x, y)
    lp = log_softmax(x, temperature)
    return float(-lp[np.arange(len(y)), y].mean())


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tol: float = 1e-6,
) -> float:
    """The temperature T minimising validation NLL of softmax(logits / T).

    Golden-section search over log T within `bounds` (deterministic, no scipy). The NLL is
    convex in 1/T, hence unimodal in log T, so the search finds the global minimum on the
    interval; a result at a bound means the optimum lies outside it.
    """
    x = _as_logits(logits)
    y = label_indices(labels, x.shape[1])
    _check_pair(x, y)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero samples")
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-log_softmax(x, math.exp(log_t))[rows, y].mean())

    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = loss(d)
    best = (a + b) / 2.0
    # The ends are candidates too: the optimum may sit on a bound.
    candidates = [(loss(best), best), (loss(lo), lo), (loss(hi), hi)]
    return float(math.exp(min(candidates)[1]))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-1 expected calibration error with `bins` equal-width confidence bins.

    Bin k holds top-1 confidences in (k/bins, (k+1)/bins] (the first bin also holds 0).
    ECE = sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin|.
    """
    p = _as_logits(probs)
    y = label_indices(labels, p.shape[1])
    _check_pair(p, y)
    if bins < 1:
        raise ValueError("bins must be >= 1")
    n = len(y)
    if n == 0:
        return 0.0
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    correct_sum = np.bincount(idx, weights=correct, minlength=bins)
    return float(np.abs(correct_sum - conf_sum).sum() / n)


def urgent_indices(classes: Sequence[str]) -> list[int]:
    """Column indices of URGENT_CONDITIONS present in `classes`."""
    return [i for i, c in enumerate(classes) if c in URGENT_CONDITIONS]


def urgent_score(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """p(melanoma) + p(basal_cell_carcinoma) per image (the urgent classes present)."""
    p = _as_logits(probs)
    if p.shape[1] != len(classes):
        raise ValueError(f"probs have {p.shape[1]} columns but there are {len(classes)} classes")
    idx = urgent_indices(classes)
    if not idx:
        raise ValueError(f"none of {URGENT_CONDITIONS} is in classes {list(classes)}")
    return p[:, idx].sum(axis=1)


def abstain_mask(probs: np.ndarray, abstain_below: float) -> np.ndarray:
    """True where the top-1 confidence is below `abstain_below` (the kiosk abstains)."""
    return _as_logits(probs).max(axis=1) < abstain_below


def urgent_mask(
    probs: np.ndarray, classes: Sequence[str], urgent_at: float, abstain_below: float = 0.0
) -> np.ndarray:
    """The kiosk's urgent flag: urgent sum >= urgent_at, or top-1 urgent and not abstained."""
    p = _as_logits(probs)
    by_sum = urgent_score(p, classes) >= urgent_at
    top1_urgent = np.isin(p.argmax(axis=1), urgent_indices(classes))
    return by_sum | (top1_urgent & ~abstain_mask(p, abstain_below))


def urgent_sensitivities(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    urgent_at: float,
    abstain_below: float = 0.0,
) -> dict[str, float | None]:
    """Share of each urgent class's images flagged urgent (None where a class has no images)."""
    p = _as_logits(probs)
    y = label_indices(labels, classes)
    _check_pair(p, y, len(classes))
    flagged = urgent_mask(p, classes, urgent_at, abstain_below)
    out: dict[str, float | None] = {}
    for i in urgent_indices(classes):
        sel = y == i
        out[classes[i]] = float(flagged[sel].mean()) if sel.any() else None
    return out


def choose_urgent_threshold(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    target_sensitivity: float = 0.95,
) -> float:
    """The largest threshold t on p(melanoma) + p(basal_cell_carcinoma) such that at least
    `target_sensitivity` of the melanoma images have a sum >= t.

    The target is set on melanoma because a missed melanoma is the costliest error the kiosk
    can make: it is the lethal one (it can spread early; basal cell carcinoma grows slowly and
    rarely spreads), and it is the lesion most often mistaken for a benign mole (nevus,
    which the model lumps into "other"). BCC shares the summed score, so its sensitivity
    usually follows; it is not a constraint but must be reported alongside: call
    `urgent_sensitivities(probs, labels, classes, t)` (the metrics report does).

    The threshold looks at the summed score only. The kiosk also flags images whose top-1
    class is urgent, which can only add urgent flags, so the full rule meets the target too.
    With k = ceil(target * n_melanoma), t is the k-th largest melanoma sum.
    """
    if not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    p = _as_logits(probs)
    y = label_indices(labels, classes)
    _check_pair(p, y, len(classes))
    if "melanoma" not in classes:
        raise ValueError("classes must contain melanoma")
    mel = y == list(classes).index("melanoma")
    if not mel.any():
        raise ValueError("no melanoma images: cannot set the urgent threshold")
    scores = np.sort(urgent_score(p, classes)[mel])[::-1]
    k = max(1, math.ceil(target_sensitivity * len(scores) - 1e-9))
    return float(scores[k - 1])


def choose_abstain_threshold(
    probs: np.ndarray,
    labels: np.ndarray,
    max_abstain_rate: float = 0.1,
    classes: Sequence[str] = CONDITIONS,
    out_of_scope_weight: float = 1.0,
) -> float:
    """The top-1 confidence threshold below which the kiosk abstains, chosen on validation.

    Objective (maximised over thresholds whose abstain rate is <= `max_abstain_rate`):

        (correct and not abstained) / N
        + out_of_scope_weight * (true "other" images predicted "other" or abstained) / N_other

    The first term rewards answering when right; abstaining on a correct answer costs, on a
    wrong one is free. The second rewards not naming a disease for out-of-scope images (moles,
    healthy skin, ...): for those, abstaining is as good as saying "other". Without "other"
    images the second term is 0. Candidates are 0 (never abstain) and every distinct
    confidence (abstain on the images strictly below it); ties go to the lowest threshold, so
    the kiosk abstains no more than the objective asks. Urgent flags are unaffected (see the
    module docstring), so this threshold does not trade against urgent sensitivity.
    """
    if not 0.0 <= max_abstain_rate <= 1.0:
        raise ValueError(f"max_abstain_rate must be in [0, 1], got {max_abstain_rate}")
    p = _as_logits(probs)
    y = label_indices(labels, classes)
    _check_pair(p, y, len(classes))
    n = len(y)
    if n == 0:
        return 0.0
    conf = p.max(axis=1)
    pred = p.argmax(axis=1)
    order = np.argsort(conf, kind="stable")
    conf_s = conf[order]
    correct_s = (pred == y)[order].astype(np.int64)
    other_idx = list(classes).index(OTHER) if OTHER in classes else -1
    is_other = (y == other_idx)[order]
    # Out-of-scope images that the kiosk gets wrong unless it abstains: true other, named other.
    other_missed_s = (is_other & (pred[order] != other_idx)).astype(np.int64)
    n_other = int(is_other.sum())

    candidates = np.concatenate([[0.0], np.unique(conf_s)])
    n_abstained = np.searchsorted(conf_s, candidates, side="left")  # conf < t
    cum_correct = np.concatenate([[0], np.cumsum(correct_s)])
    cum_other_missed = np.concatenate([[0], np.cumsum(other_missed_s)])
    answered_correct = cum_correct[-1] - cum_correct[n_abstained]
    objective = answered_correct / n
    if n_other:
        other_ok = n_other - (cum_other_missed[-1] - cum_other_missed[n_abstained])
        objective = objective + out_of_scope_weight * other_ok / n_other
    allowed = n_abstained <= max_abstain_rate * n + 1e-9
    objective = np.where(allowed, objective, -np.inf)
    return float(candidates[int(np.argmax(objective))])  # argmax: first (lowest) of ties
