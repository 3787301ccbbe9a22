"""Why a result is as urgent as it is, in the words the screens use.

`decide()` escalates on the summed cancer probability whatever the top label is: a picture that
looks most like actinic keratosis can still be urgent. Shown as "Actinic keratosis 56%" next to
"Urgent: possible skin cancer", the screen contradicts itself; it must say that skin cancer
cannot be ruled out. The reason is read from the decision's `reason` when the model layer gives
one, and otherwise worked out from the label and the urgency, so both versions of
kiosk.model.decision read the same on screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.model.conditions import URGENCY_BY_CONDITION, URGENT_CONDITIONS, Urgency

if TYPE_CHECKING:
    from kiosk.model.decision import Decision

CANCER_NOT_RULED_OUT = "cancer_not_ruled_out"
_SEVERITY = {Urgency.NONE: 0, Urgency.ROUTINE: 1, Urgency.SOON: 2, Urgency.URGENT: 3}


def names_a_cancer(decision: Decision) -> bool:
    """The result shown is itself a possible cancer (a melanoma or basal cell carcinoma)."""
    return not decision.abstained and decision.label in URGENT_CONDITIONS


def cancer_not_ruled_out(decision: Decision) -> bool:
    """The urgency comes from the cancer probability, not from the label that is shown."""
    if names_a_cancer(decision):
        return False  # the title already says "possible melanoma"
    urgency = Urgency(decision.urgency)
    if getattr(decision, "reason", None) == CANCER_NOT_RULED_OUT:
        return urgency in (Urgency.URGENT, Urgency.SOON)
    # Without a reason field, the only escalation above the label's own urgency that decide()
    # makes is the cancer rule (an abstained result is "soon" of its own).
    own = Urgency.SOON if decision.abstained else URGENCY_BY_CONDITION[decision.label]
    return _SEVERITY[urgency] > _SEVERITY[own]


def is_none_found(decision: Decision) -> bool:
    """ "None of the six conditions found": never shown as an all-clear (no tick, no number)."""
    return not decision.abstained and URGENCY_BY_CONDITION.get(decision.label) is Urgency.NONE
