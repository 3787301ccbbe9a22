"""Signed specialist content: what makes a review or a dermatologist's message trustworthy.

The review console signs every review and every dermatologist message with its Ed25519 key
(kept 0600 in the console's state directory); a kiosk shows such content as the specialist's
only when the signature verifies against `review_public_key` in its config. Any other
Firestore credential (a stolen kiosk's, say) can write a document that *looks* like a review,
but it cannot sign one, so nothing it writes is shown as the specialist's word.

The signature covers the case id and kiosk id (so it cannot be replayed into another case or
another kiosk's case), the kind, the author and reviewer, the label, the text and the time it
was signed (`signed_at`, an ISO 8601 UTC string stored beside the signature: server timestamps
are not known when signing). Serialisation is canonical JSON (sorted keys, no spaces, UTF-8).

Firestore fields (see cloud_schema): a review map and a message document each carry
`signed_at` and `signature` (base64) next to the fields they cover.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.cases.releases import ReleaseError, load_public_key

KIND_REVIEW = "review"
KIND_MESSAGE = "message"


@dataclass(frozen=True)
class SignedContent:
    """The fields a signature covers. For a review: author "dermatologist", author_name the
    reviewer's display name, reviewer the staff username, label the diagnosis, text the
    recommendation, message_id "". For a message: label "", text the body, message_id set."""

    kind: str  # KIND_REVIEW or KIND_MESSAGE
    case_id: str
    kiosk_id: str
    message_id: str
    author: str
    author_name: str
    reviewer: str
    label: str
    text: str
    signed_at: str  # ISO 8601 UTC, made by the signer

    def payload(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign(content: SignedContent, private_key: Ed25519PrivateKey) -> str:
    """The base64 Ed25519 signature of `content`."""
    return base64.b64encode(private_key.sign(content.payload())).decode("ascii")


def verifies(content: SignedContent, signature_b64: object, public_key_b64: str) -> bool:
    """True only when `signature_b64` is a valid signature of exactly `content` by the key.
    No key configured, a malformed key or signature, or any changed field: False."""
    if not public_key_b64 or not isinstance(signature_b64, str) or not signature_b64:
        return False
    try:
        key = load_public_key(public_key_b64)
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, content.payload())
    except (ReleaseError, binascii.Error, ValueError, InvalidSignature):
        return False
    return True
