"""Starting texts for the dermatologist's recommendation, one per condition. The reviewer picks
one (nothing is preselected: accepting the machine's answer must take a decision) and adds free
text; the health worker reads the result on the kiosk.

A template carries the urgency of its condition ("Refer urgently" for melanoma). A review whose
template is more urgent than its label would tell the health worker to hurry while the kiosk's
urgent flag (which goes by the label) stays off, so that combination is refused; a cancer label
with a calmer template needs the reviewer's explicit confirmation.
"""

from __future__ import annotations

from kiosk.cases.cloud_schema import URGENCY_RANK
from kiosk.model.conditions import URGENCY_BY_CONDITION, URGENT_CONDITIONS

TEMPLATES: dict[str, str] = {
    "melanoma": (
        "Possible melanoma. Refer urgently (within 2 weeks) to a dermatologist or hospital for "
        "excision biopsy. Do not treat locally."
    ),
    "basal_cell_carcinoma": (
        "Possible basal cell carcinoma. Refer to a dermatologist or surgeon within 4 weeks for "
        "biopsy and removal. Protect the area from the sun."
    ),
    "actinic_keratosis": (
        "Likely actinic keratosis (sun damage, can become cancer). Refer to a doctor within a few "
        "weeks for treatment; advise sun protection and a hat."
    ),
    "dermatofibroma": (
        "Likely dermatofibroma (harmless). No treatment needed. Come back if it grows fast, "
        "bleeds or changes colour."
    ),
    "eczema": (
        "Likely eczema. Use a fragrance-free moisturiser twice a day and mild soap; avoid "
        "scratching. See a doctor if it spreads, weeps or does not improve in 2 weeks."
    ),
    "acne": (
        "Likely acne. Wash twice a day with mild soap, do not squeeze. See a doctor if there are "
        "painful nodules or scarring."
    ),
    "other": (
        "None of the screened conditions seen. Come back if the spot changes in size, shape or "
        "colour, bleeds or itches."
    ),
}


def compose(template: str, free_text: str) -> str:
    """The recommendation sent to the kiosk: the chosen template, then the reviewer's text."""
    parts = [TEMPLATES.get(template, ""), free_text.strip()]
    return "\n\n".join(p for p in parts if p)


def template_too_urgent(label: str, template: str) -> bool:
    """The template asks for more urgency than the diagnosis warrants (e.g. "other" with the
    melanoma template's "Refer urgently")."""
    if template not in TEMPLATES or label not in URGENCY_BY_CONDITION:
        return False
    return URGENCY_RANK[URGENCY_BY_CONDITION[template]] < URGENCY_RANK[URGENCY_BY_CONDITION[label]]


def needs_urgent_confirmation(label: str, template: str) -> bool:
    """A possible cancer with a recommendation that is not an urgent one: allowed (the
    dermatologist may know better), but only when confirmed."""
    return label in URGENT_CONDITIONS and template not in URGENT_CONDITIONS
