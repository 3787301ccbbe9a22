"""Only the review console can speak as the specialist: reviews and dermatologists' messages
reach the kiosk's inbox only with a valid signature by the console's key (review_public_key).
Against the real Firestore and Storage emulators; `kiosk inbox`, `cases` and `status` run as
real processes."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.releases import public_key_b64
from kiosk.cases.store import CaseStatus, CaseStore
from kiosk.cases.sync import SyncService
from kiosk.config import KioskConfig
from tests.cases.signing import CONSOLE_KEY, signed_message, signed_review
from tests.cases.test_sync import save_cases
from tests.kiosk_cli import run_kiosk
from tests.sync_faults import sync_environment


@pytest.fixture
def config(kiosk_config: KioskConfig) -> KioskConfig:
    return replace(kiosk_config, review_public_key=public_key_b64(CONSOLE_KEY))


@pytest.fixture
def kiosk(config: KioskConfig):
    store = CaseStore.open(config)
    service = SyncService(config, store)
    yield store, service
    service.close()
    store.close()


def write_review(cloud: FirebaseClients, case_id: str, review: dict[str, Any]) -> None:
    from google.cloud.firestore import SERVER_TIMESTAMP

    cloud.db.collection(schema.CASES).document(case_id).update(
        {"status": schema.STATUS_REVIEWED, "review": review, "updated_at": SERVER_TIMESTAMP}
    )


def write_message(
    cloud: FirebaseClients, case_id: str, message_id: str, doc: dict[str, Any]
) -> None:
    from google.cloud.firestore import SERVER_TIMESTAMP

    case = cloud.db.collection(schema.CASES).document(case_id)
    case.collection(schema.MESSAGES).document(message_id).create(doc)
    case.update({"updated_at": SERVER_TIMESTAMP})


def kiosk_cli(config: KioskConfig, *args: str) -> subprocess.CompletedProcess[str]:
    env = sync_environment(config)
    env["SKINSCAN_REVIEW_PUBLIC_KEY"] = config.review_public_key
    return run_kiosk(*args, env=env)


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


FORGED = "Benign. No referral needed."


def test_reviews_and_messages_forged_with_a_kiosk_credential_are_not_shown(
    config: KioskConfig, kiosk, cloud: FirebaseClients, caplog: pytest.LogCaptureFixture
) -> None:
    store, service = kiosk
    case_id = save_cases(store, 1)[0]
    service.sync_once()
    # What a stolen kiosk's credential can write: an unsigned "review" and "dermatologist"
    # message, and one signed with a key of its own.
    write_review(cloud, case_id, {"label": "other", "recommendation": FORGED, "reviewer": "Dr X"})
    forged = {
        "case_id": case_id,
        "kiosk_id": store.kiosk_id,
        "author": schema.AUTHOR_DERMATOLOGIST,
        "author_name": "Dr X",
        "body": FORGED,
        "created_at": datetime.now(UTC),
    }
    write_message(cloud, case_id, "forged-1", forged)
    impostor = Ed25519PrivateKey.generate()
    write_message(
        cloud,
        case_id,
        "forged-2",
        signed_message(case_id, store.kiosk_id, "forged-2", FORGED, key=impostor),
    )
    # And a "health worker" note this kiosk never wrote.
    write_message(cloud, case_id, "not-ours", {**forged, "author": schema.AUTHOR_HEALTH_WORKER})
    with caplog.at_level(logging.WARNING):
        service.sync_once()

    case = store.get(case_id)
    assert case.review is None, "a forged review is never the specialist's"
    assert case.unverified_review is not None and case.unverified_review.label == "other"
    assert case.status != CaseStatus.REVIEWED
    assert store.messages(case_id) == [], "nothing forged appears in the thread"
    assert store.unread_count() == 0 and store.unread_urgent_count() == 0  # no red Inbox tab
    assert store.inbox() == []
    assert store.unverified_count() == 4
    assert service.status().unverified_items == 4
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert case_id in logged and "kept aside" in logged
    assert "Benign" not in logged and "Dr X" not in logged, "no content in the log"

    rows = json_lines(kiosk_cli(config, "inbox", "--json"))
    assert len(rows) == 4
    assert all(r["verified"] is False and r["unread"] is False for r in rows)
    assert all(r["urgent"] is False for r in rows)
    text = kiosk_cli(config, "inbox")
    assert text.returncode == 0
    assert text.stdout.count("UNVERIFIED, not from the specialist") == 4
    [listed] = json_lines(kiosk_cli(config, "cases", "--json"))
    assert listed["reviewed_label"] is None and listed["unread_review"] is False
    assert listed["status"] != "reviewed"
    assert listed["unverified_review"] is True
    status = json.loads(kiosk_cli(config, "status", "--json").stdout)
    assert status["unverified_items"] == 4
    assert status["cases"]["reviewed"] == 0


def test_a_signed_review_and_message_are_shown(
    config: KioskConfig, kiosk, cloud: FirebaseClients
) -> None:
    store, service = kiosk
    case_id = save_cases(store, 1)[0]
    service.sync_once()
    write_review(cloud, case_id, signed_review(case_id, store.kiosk_id))
    write_message(cloud, case_id, "reply-1", signed_message(case_id, store.kiosk_id, "reply-1"))
    service.sync_once()

    case = store.get(case_id)
    assert case.status == CaseStatus.REVIEWED
    assert case.review is not None and case.review.label == "melanoma"
    assert case.unverified_review is None
    assert [m.body for m in store.messages(case_id)] == ["Please refer this week."]
    assert store.unread_count() == 2 and store.unread_urgent_count() == 1
    assert store.unverified_count() == 0

    rows = json_lines(kiosk_cli(config, "inbox", "--json"))
    assert [r["kind"] for r in rows] == ["message", "review"], "newest first"
    assert all(r["verified"] and r["unread"] for r in rows)
    review = rows[1]
    assert review["label"] == "melanoma" and review["urgent"] is True
    assert review["author_name"] == "Dr. A"
    assert review["body"] == "Refer to the district hospital this week."
    [listed] = json_lines(kiosk_cli(config, "cases", "--json"))
    assert listed["reviewed_label"] == "melanoma" and listed["unread_review"] is True
    assert listed["status"] == "reviewed"
    store.mark_read(case_id)
    rows = json_lines(kiosk_cli(config, "inbox", "--json"))
    assert [r["unread"] for r in rows] == [False, False]


def test_a_tampered_signature_keeps_the_specialists_review(
    config: KioskConfig, kiosk, cloud: FirebaseClients
) -> None:
    store, service = kiosk
    case_id = save_cases(store, 1)[0]
    service.sync_once()
    genuine = signed_review(case_id, store.kiosk_id)
    write_review(cloud, case_id, genuine)
    service.sync_once()
    assert store.get(case_id).review is not None
    store.mark_read(case_id)

    # The signature kept, the diagnosis and advice changed: the melanoma review stays.
    write_review(cloud, case_id, {**genuine, "label": "other", "recommendation": FORGED})
    # A message with a signature whose bytes were altered.
    reply = signed_message(case_id, store.kiosk_id, "reply-2")
    sig = reply["signature"]
    broken = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    write_message(cloud, case_id, "reply-2", {**reply, "signature": broken})
    service.sync_once()

    case = store.get(case_id)
    assert case.review is not None and case.review.label == "melanoma"
    assert case.review.recommendation == genuine["recommendation"]
    assert case.unverified_review is not None and case.unverified_review.label == "other"
    assert store.unread_count() == 0, "a forged overwrite is not news"
    assert store.messages(case_id) == []
    assert store.unverified_count() == 2
    [listed] = json_lines(kiosk_cli(config, "cases", "--json"))
    assert listed["reviewed_label"] == "melanoma"


def test_a_valid_signature_replayed_into_another_case_does_not_verify(
    config: KioskConfig, kiosk, cloud: FirebaseClients
) -> None:
    store, service = kiosk
    first, second = save_cases(store, 2)
    service.sync_once()
    review = signed_review(first, store.kiosk_id, label="eczema", text="Emollients.")
    write_review(cloud, first, review)
    write_message(cloud, first, "reply-3", signed_message(first, store.kiosk_id, "reply-3"))
    service.sync_once()
    # Copied word for word into the other case (review) and its thread (message, same id and
    # a new one).
    write_review(cloud, second, review)
    copied = signed_message(first, store.kiosk_id, "reply-3")
    write_message(cloud, second, "reply-3", copied)
    write_message(cloud, second, "reply-4", {**copied, "case_id": second})
    service.sync_once()

    assert store.get(first).review is not None
    assert store.get(second).review is None
    assert store.get(second).unverified_review is not None
    assert store.get(second).status != CaseStatus.REVIEWED
    assert [m.message_id for m in store.messages(first)] == ["reply-3"]
    assert store.messages(second) == []
    rows = json_lines(kiosk_cli(config, "inbox", "--json"))
    assert {(r["case_id"], r["kind"]) for r in rows if r["verified"]} == {
        (first, "review"),
        (first, "message"),
    }
    assert {r["case_id"] for r in rows if not r["verified"]} == {second}


def test_without_the_console_key_nothing_is_shown_as_the_specialists(
    kiosk_config: KioskConfig, cloud: FirebaseClients
) -> None:
    assert kiosk_config.review_public_key == ""
    store = CaseStore.open(kiosk_config)
    service = SyncService(kiosk_config, store)
    try:
        case_id = save_cases(store, 1)[0]
        service.sync_once()
        write_review(cloud, case_id, signed_review(case_id, store.kiosk_id))
        service.sync_once()
        assert store.get(case_id).review is None
        assert store.unverified_count() == 1
    finally:
        service.close()
        store.close()


def test_the_listener_verifies_too(config: KioskConfig, kiosk, cloud: FirebaseClients) -> None:
    store, service = kiosk
    case_id = save_cases(store, 1)[0]
    service.config = replace(config, sync_interval_s=600.0)  # only the listener can be in time
    service.start()
    deadline = time.monotonic() + 60
    while store.get(case_id).status != CaseStatus.UPLOADED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(case_id).status == CaseStatus.UPLOADED
    deadline = time.monotonic() + 30
    while not service._listeners and time.monotonic() < deadline:
        time.sleep(0.05)
    write_review(cloud, case_id, {"label": "other", "recommendation": FORGED, "reviewer": "X"})
    deadline = time.monotonic() + 30
    while store.get(case_id).unverified_review is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(case_id).unverified_review is not None
    assert store.get(case_id).review is None
    write_review(cloud, case_id, signed_review(case_id, store.kiosk_id))
    deadline = time.monotonic() + 30
    while store.get(case_id).review is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(case_id).review is not None
    assert store.get(case_id).review.label == "melanoma"


def test_unsigned_content_from_before_signatures_is_kept_aside(config: KioskConfig) -> None:
    """A version-2 database: its reviews and specialist messages were never verified."""
    store = CaseStore.open(config)
    case_id = save_cases(store, 1)[0]
    store.apply_remote(case_id, "reviewed", None, {"label": "other", "recommendation": FORGED})
    store.add_remote_message("old-1", case_id, schema.AUTHOR_DERMATOLOGIST, "Dr", "Hi", None)
    note = store.add_message(case_id, "A note from this kiosk")
    store.close()
    db = sqlite3.connect(config.cases_db)
    db.execute("ALTER TABLE cases DROP COLUMN review_unverified")
    db.execute("ALTER TABLE messages DROP COLUMN verified")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()

    store = CaseStore.open(config)
    try:
        case = store.get(case_id)
        assert case.review is None
        assert case.unverified_review is not None and case.unverified_review.label == "other"
        assert [m.message_id for m in store.messages(case_id)] == [note.message_id]
        assert store.unverified_count() == 2
        assert store.unread_count() == 0
    finally:
        store.close()


def test_malformed_forgeries_do_not_stop_the_sync(
    config: KioskConfig, kiosk, cloud: FirebaseClients
) -> None:
    """Wrong types where a forger chooses them (a list for a label, text for a timestamp) are
    kept aside like any unverified content; the pass goes on and later reviews still arrive."""
    store, service = kiosk
    first, second = save_cases(store, 2)
    service.sync_once()
    write_review(cloud, first, {"label": ["other"], "reviewed_at": "yesterday", "signature": 7})
    write_message(
        cloud,
        first,
        "odd-1",
        {
            "case_id": first,
            "kiosk_id": store.kiosk_id,
            "author": schema.AUTHOR_DERMATOLOGIST,
            "body": {"text": FORGED},
            "created_at": "yesterday",
        },
    )
    write_review(cloud, second, signed_review(second, store.kiosk_id))
    report = service.sync_once()
    assert report.remote_updates >= 3
    assert store.get(first).review is None and store.get(first).unverified_review is not None
    assert store.get(second).review is not None, "the signed review after it still arrives"
    assert store.unverified_count() == 2
