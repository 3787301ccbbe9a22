"""The conditions the kiosk screens for, and how urgent each one is.

This is the one place that names the model's output classes. The order is the order of the
model's output vector; the shipped metadata JSON repeats it and the runtime refuses a model
whose classes differ.
"""

from __future__ import annotations

from enum import StrEnum


class Urgency(StrEnum):
    URGENT = "urgent"  # refer now: possible skin cancer
    SOON = "soon"  # see a doctor in the coming weeks
    ROUTINE = "routine"  # self-care; see a doctor if it does not improve
    NONE = "none"  # none of the six conditions found


OTHER = "other"

CONDITIONS: tuple[str, ...] = (
    "acne",
    "actinic_keratosis",
    "basal_cell_carcinoma",
    "dermatofibroma",
    "eczema",
    "melanoma",
    OTHER,
)

URGENCY_BY_CONDITION: dict[str, Urgency] = {
    "melanoma": Urgency.URGENT,
    "basal_cell_carcinoma": Urgency.URGENT,
    "actinic_keratosis": Urgency.SOON,
    "dermatofibroma": Urgency.ROUTINE,
    "eczema": Urgency.ROUTINE,
    "acne": Urgency.ROUTINE,
    OTHER: Urgency.NONE,
}

# The classes whose summed probability drives the urgent-referral threshold: missing one of
# these is the worst failure the kiosk can make, so triage may flag more than top-1 does.
URGENT_CONDITIONS: tuple[str, ...] = ("melanoma", "basal_cell_carcinoma")

# Learned from dermoscopic pictures: without the dermoscope lens the kiosk asks for it.
DERMOSCOPIC_CONDITIONS: tuple[str, ...] = (
    "melanoma",
    "basal_cell_carcinoma",
    "actinic_keratosis",
    "dermatofibroma",
)
