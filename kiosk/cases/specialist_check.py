"""Does a review or a dermatologist's message pulled from Firestore really come from the review
console? The kiosk rebuilds the signed content (kiosk.cases.specialist_signature) from the
document's own fields plus what the kiosk knows itself: the case id is the document's (not a
field the writer chose), the kiosk id is this kiosk's. So a valid signature copied into another
case, another kiosk's case or another message does not verify.

Field names read here (as the console writes them, cloud/console/store.py): a review map
{label, recommendation, reviewer (the display name), reviewer_username, reviewed_at, signed_at,
signature}; a message {case_id, kiosk_id, author, author_name, reviewer_username, body,
created_at, signed_at, signature}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiosk.cases.cloud_schema import AUTHOR_DERMATOLOGIST
from kiosk.cases.specialist_signature import KIND_MESSAGE, KIND_REVIEW, SignedContent, verifies

# The staff username beside the display name (which is `reviewer` in a review and
# `author_name` in a message).
REVIEWER_ID = "reviewer_username"


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key, "")
    return value if isinstance(value, str) else ""


def review_verifies(
    review: Mapping[str, Any], case_id: str, kiosk_id: str, public_key_b64: str
) -> bool:
    """True only when the review map carries the console's signature over exactly these
    fields, for this case of this kiosk."""
    content = SignedContent(
        kind=KIND_REVIEW,
        case_id=case_id,
        kiosk_id=kiosk_id,
        message_id="",
        author=AUTHOR_DERMATOLOGIST,
        author_name=_text(review, "reviewer"),
        reviewer=_text(review, REVIEWER_ID),
        label=_text(review, "label"),
        text=_text(review, "recommendation"),
        signed_at=_text(review, "signed_at"),
    )
    return verifies(content, review.get("signature"), public_key_b64)


def message_verifies(
    message: Mapping[str, Any], message_id: str, case_id: str, kiosk_id: str, public_key_b64: str
) -> bool:
    """True only for a dermatologist's message signed by the console for this message id in
    this case of this kiosk (`case_id`: the thread the document sits in)."""
    if message.get("author") != AUTHOR_DERMATOLOGIST or message.get("case_id") != case_id:
        return False
    content = SignedContent(
        kind=KIND_MESSAGE,
        case_id=case_id,
        kiosk_id=kiosk_id,
        message_id=message_id,
        author=AUTHOR_DERMATOLOGIST,
        author_name=_text(message, "author_name"),
        reviewer=_text(message, REVIEWER_ID),
        label="",
        text=_text(message, "body"),
        signed_at=_text(message, "signed_at"),
    )
    return verifies(content, message.get("signature"), public_key_b64)
