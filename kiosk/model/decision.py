"""Turning calibrated class probabilities into what the kiosk tells the person.

Pure and model-free: `kiosk classify` uses it for one still image, and live-scan triage reuses it
on (for example) probabilities averaged over several frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from kiosk.model.conditions import CONDITIONS, URGENCY_BY_CONDITION, URGENT_CONDITIONS, Urgency

# Decision.reason: why the urgency is what it is.
CANCER_NOT_RULED_OUT = "cancer_not_ruled_out"  # from p(melanoma) + p(BCC), not from the label
UNSURE = "unsure"  # abstained: not an all-clear, so "soon"
CONDITION = "condition"  # the shown condition's own urgency


@dataclass(frozen=True)
class Thresholds:
    """The decision thresholds, shipped in the model metadata (`thresholds`)."""

    abstain_below: float  # abstain when the top calibrated probability is below this
    urgent_at: float  # urgent when p(melanoma) + p(basal_cell_carcinoma) reaches this
    # Optional middle tier: a cancer probability in [soon_at, urgent_at) is "soon: skin cancer
    # cannot be ruled out". None (older metadata) keeps the two-threshold behaviour.
    soon_at: float | None = None

    def __post_init__(self) -> None:
        for name in ("abstain_below", "urgent_at", "soon_at"):
            value = getattr(self, name)
            if value is None and name == "soon_at":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"threshold {name} must be a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"threshold {name} must be between 0 and 1, got {value!r}")
        if self.urgent_at <= 0.0:
            # 0 would make every result urgent, which is a configuration error, not a policy.
            raise ValueError(f"threshold urgent_at must be above 0, got {self.urgent_at!r}")
        if self.soon_at is not None and not 0.0 < self.soon_at <= self.urgent_at:
            raise ValueError(
                f"threshold soon_at must be above 0 and at most urgent_at ({self.urgent_at!r}), "
                f"got {self.soon_at!r}"
            )


@dataclass(frozen=True)
class Decision:
    label: str  # the top-1 class, always one of CONDITIONS (including "other")
    confidence: float  # its calibrated probability
    probabilities: Mapping[str, float]  # read-only; every class in CONDITIONS order -> probability
    abstained: bool  # confidence < abstain_below: the kiosk does not name a condition
    urgency: Urgency
    reason: str = CONDITION  # CANCER_NOT_RULED_OUT, UNSURE or CONDITION (see above)


def decide(
    probabilities: Mapping[str, float] | Sequence[float] | np.ndarray,
    thresholds: Thresholds,
) -> Decision:
    """Decide label, abstention and urgency from calibrated probabilities.

    `probabilities` is either a mapping with exactly the CONDITIONS as keys, or a sequence/array
    of len(CONDITIONS) values in CONDITIONS order. Raises ValueError on anything else.
    """
    probs = _as_dict(probabilities)
    # Ties go to the earlier class in CONDITIONS order (max keeps the first maximum).
    label = max(CONDITIONS, key=lambda c: probs[c])
    confidence = probs[label]
    abstained = confidence < thresholds.abstain_below
    urgent_mass = sum(probs[c] for c in URGENT_CONDITIONS)
    own = URGENCY_BY_CONDITION[label]
    soon_at = thresholds.soon_at
    if not abstained and own is Urgency.URGENT:
        # The shown label is itself a possible cancer: that is the reason, even when the
        # summed cancer probability would have escalated it too.
        urgency, reason = own, CONDITION
    elif urgent_mass >= thresholds.urgent_at:
        # Missing a cancer is the worst failure: the summed cancer probability escalates to
        # urgent whatever the top label is and whether or not the kiosk abstains.
        urgency, reason = Urgency.URGENT, CANCER_NOT_RULED_OUT
    elif soon_at is not None and urgent_mass >= soon_at:
        # The middle tier: too much cancer probability to reassure, too little to send the
        # person on a long trip today. "See a doctor in the coming weeks."
        urgency, reason = Urgency.SOON, CANCER_NOT_RULED_OUT
    elif abstained:
        # An unsure result is not an all-clear: the model could not tell what it sees, so the
        # person is asked to show it to a health worker ("soon") rather than being reassured
        # by the mapping of a label the kiosk did not trust enough to display.
        urgency, reason = Urgency.SOON, UNSURE
    else:
        urgency, reason = own, CONDITION
    return Decision(
        label=label,
        confidence=confidence,
        probabilities=MappingProxyType(probs),
        abstained=abstained,
        urgency=urgency,
        reason=reason,
    )


def _as_dict(probabilities: Mapping[str, float] | Sequence[float] | np.ndarray) -> dict[str, float]:
    if isinstance(probabilities, Mapping):
        keys = set(probabilities)
        if keys != set(CONDITIONS):
            missing = sorted(set(CONDITIONS) - keys)
            extra = sorted(keys - set(CONDITIONS))
            raise ValueError(
                f"probabilities keys do not match CONDITIONS: missing {missing}, extra {extra}"
            )
        values = [probabilities[c] for c in CONDITIONS]
    else:
        values = list(np.asarray(probabilities, dtype=np.float64).reshape(-1))
        if len(values) != len(CONDITIONS):
            raise ValueError(f"expected {len(CONDITIONS)} probabilities, got {len(values)}")
    out: dict[str, float] = {}
    for c, v in zip(CONDITIONS, values, strict=True):
        f = float(v)
        if not math.isfinite(f) or f < 0.0 or f > 1.0 + 1e-6:
            raise ValueError(f"probability of {c} is {f!r}, not within [0, 1]")
        out[c] = f
    total = sum(out.values())
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"probabilities sum to {total:.6f}, not 1: pass calibrated softmax output")
    return out
