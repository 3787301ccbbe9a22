"""The console's signature on specialist content (kiosk.cases.specialist_signature).

Every review and every dermatologist message is signed with the console's Ed25519 key, kept
0600 in its state directory and made on first use (or by `skinscan-cloud review-key`, which
prints the public key for the kiosks' `review_public_key` setting). Kiosks show such content as
the specialist's only when it verifies, so a stolen kiosk credential cannot forge a review.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.private_files import require_private, write_private
from kiosk.cases import cloud_schema as schema
from kiosk.cases.releases import load_private_key_pem, private_key_pem, public_key_b64
from kiosk.cases.specialist_signature import KIND_MESSAGE, KIND_REVIEW, SignedContent, sign

_create_lock = threading.Lock()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at `path`; a new one (0600) when there is none yet. A key file that
    others can read is refused (PrivateFileError), never silently used or replaced."""
    with _create_lock:
        if not path.exists():
            write_private(path, private_key_pem(Ed25519PrivateKey.generate()))
    return load_private_key_pem(require_private(path, "review signing key"))


@dataclass(frozen=True)
class Signature:
    signed_at: str  # ISO 8601 UTC
    signature: str  # base64


class ReviewSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @property
    def public_key(self) -> str:
        return public_key_b64(self._key)

    def _sign(self, **fields: str) -> Signature:
        signed_at = datetime.now(UTC).isoformat(timespec="seconds")
        content = SignedContent(author=schema.AUTHOR_DERMATOLOGIST, signed_at=signed_at, **fields)
        return Signature(signed_at, sign(content, self._key))

    def review(
        self,
        *,
        case_id: str,
        kiosk_id: str,
        reviewer: str,
        reviewer_name: str,
        label: str,
        recommendation: str,
    ) -> Signature:
        return self._sign(
            kind=KIND_REVIEW,
            case_id=case_id,
            kiosk_id=kiosk_id,
            message_id="",
            author_name=reviewer_name,
            reviewer=reviewer,
            label=label,
            text=recommendation,
        )

    def message(
        self,
        *,
        case_id: str,
        kiosk_id: str,
        message_id: str,
        reviewer: str,
        reviewer_name: str,
        body: str,
    ) -> Signature:
        return self._sign(
            kind=KIND_MESSAGE,
            case_id=case_id,
            kiosk_id=kiosk_id,
            message_id=message_id,
            author_name=reviewer_name,
            reviewer=reviewer,
            label="",
            text=body,
        )
