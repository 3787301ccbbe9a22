"""Starting texts for the dermatologist's recommendation, one per condition. The reviewer picks
one (the console preselects the one for the cloud's or kiosk's label) and adds free text; the
health worker reads the result on the kiosk."""

from __future__ import annotations

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
