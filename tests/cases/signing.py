"""Signing reviews and messages as the review console does (its key and field names), for
the kiosk's trust tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.cases import cloud_schema as schema
from kiosk.cases.specialist_signature import KIND_MESSAGE, KIND_REVIEW, SignedContent, sign

CONSOLE_KEY = Ed25519PrivateKey.generate()


def signed_review(
    case_id: str,
    kiosk_id: str,
    label: str = "melanoma",
    text: str = "Refer to the district hospital this week.",
    key: Ed25519PrivateKey = CONSOLE_KEY,
) -> dict[str, Any]:
    """The review map as the console writes it."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    signed_at = datetime.now(UTC).isoformat(timespec="seconds")
    content = SignedContent(
        kind=KIND_REVIEW,
        case_id=case_id,
        kiosk_id=kiosk_id,
        message_id="",
        author=schema.AUTHOR_DERMATOLOGIST,
        author_name="Dr. A",
        reviewer="dr.a",
        label=label,
        text=text,
        signed_at=signed_at,
    )
    return {
        "label": label,
        "recommendation": text,
        "reviewer": "Dr. A",
        "reviewer_username": "dr.a",
        "author": schema.AUTHOR_DERMATOLOGIST,
        "reviewed_at": SERVER_TIMESTAMP,
        "signed_at": signed_at,
        "signature": sign(content, key),
    }


def signed_message(
    case_id: str,
    kiosk_id: str,
    message_id: str,
    body: str = "Please refer this week.",
    key: Ed25519PrivateKey = CONSOLE_KEY,
) -> dict[str, Any]:
    from google.cloud.firestore import SERVER_TIMESTAMP

    signed_at = datetime.now(UTC).isoformat(timespec="seconds")
    content = SignedContent(
        kind=KIND_MESSAGE,
        case_id=case_id,
        kiosk_id=kiosk_id,
        message_id=message_id,
        author=schema.AUTHOR_DERMATOLOGIST,
        author_name="Dr. A",
        reviewer="dr.a",
        label="",
        text=body,
        signed_at=signed_at,
    )
    return {
        "case_id": case_id,
        "kiosk_id": kiosk_id,
        "author": schema.AUTHOR_DERMATOLOGIST,
        "author_name": "Dr. A",
        "reviewer_username": "dr.a",
        "body": body,
        "created_at": SERVER_TIMESTAMP,
        "signed_at": signed_at,
        "signature": sign(content, key),
    }
