"""Why a result is as urgent as it is, in the words the screens use.

`decide()` escalates on the summed cancer probability whatever the top label is: a picture that
looks most like actinic keratosis can still be urgent. Shown as "Actinic keratosis 56%" next to
"Urgent: possible skin cancer", the screen contradicts itself; it must say that skin cancer
cannot be ruled out. The model layer says which case it is (`Decision.reason`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.model.conditions import URGENCY_BY_CONDITION, URGENT_CONDITIONS, Urgency
from kiosk.model.decision import CANCER_NOT_RULED_OUT

if TYPE_CHECKING:
    from kiosk.model.decision import Decision


def names_a_cancer(decision: Decision) -> bool:
    """The result shown is itself a possible cancer (a melanoma or basal cell carcinoma)."""
    return not decision.abstained and decision.label in URGENT_CONDITIONS


def cancer_not_ruled_out(decision: Decision) -> bool:
    """The urgency comes from the cancer probability, not from the label that is shown."""
    return decision.reason == CANCER_NOT_RULED_OUT


def is_none_found(decision: Decision) -> bool:
    """ "None of the six conditions found": never shown as an all-clear (no tick, no number)."""
    return not decision.abstained and URGENCY_BY_CONDITION.get(decision.label) is Urgency.NONE
