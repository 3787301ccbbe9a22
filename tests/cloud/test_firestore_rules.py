"""cloud/firestore.rules on the real Firestore emulator (issue 16): what a kiosk may and may not do.

The emulator enforces security rules for requests that carry a Firebase ID token; it accepts
unsigned tokens (alg "none"), so each test speaks as kiosk-a, kiosk-b, a signed-in user who is
not a kiosk, or no one, through the REST API. `Bearer owner` (what the Admin SDK sends to the
emulator, i.e. the worker and the console) bypasses rules and sets up the documents. A project
of its own keeps the rules away from the other tests' project.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.rules_helpers import kiosk_token, load_rules, unsigned_id_token
from tests.servers import FirestoreEmulator

PROJECT = "demo-skinscan-rules"
OWNER = "owner"


KIOSK_A = kiosk_token(PROJECT, "kiosk-a")
KIOSK_B = kiosk_token(PROJECT, "kiosk-b")
NOT_A_KIOSK = unsigned_id_token(PROJECT, "someone", kiosk_id="kiosk-a")  # no kiosk role


def value(v: Any) -> dict:
    if v is None:
        return {"nullValue": None}
    if isinstance(v, bool):
        return {"booleanValue": v}
    if isinstance(v, int):
        return {"integerValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, datetime):
        return {"timestampValue": v.isoformat().replace("+00:00", "Z")}
    if isinstance(v, dict):
        return {"mapValue": {"fields": {k: value(x) for k, x in v.items()}}}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    return {"stringValue": str(v)}


class Rest:
    def __init__(self, emulator: FirestoreEmulator) -> None:
        self.base = f"http://{emulator.host}/v1/projects/{PROJECT}/databases/(default)/documents"

    def call(self, method: str, url: str, token: str | None, body: dict | None = None) -> int:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def create(self, token: str | None, path: str, doc_id: str, fields: dict) -> int:
        body = {"fields": {k: value(v) for k, v in fields.items()}}
        return self.call("POST", f"{self.base}/{path}?documentId={doc_id}", token, body)

    def get(self, token: str | None, path: str) -> int:
        return self.call("GET", f"{self.base}/{path}", token)

    def update(self, token: str | None, path: str, fields: dict) -> int:
        mask = "&".join(f"updateMask.fieldPaths={k}" for k in fields)
        body = {"fields": {k: value(v) for k, v in fields.items()}}
        url = f"{self.base}/{path}?{mask}&currentDocument.exists=true"
        return self.call("PATCH", url, token, body)

    def set(self, token: str | None, path: str, fields: dict) -> int:
        body = {"fields": {k: value(v) for k, v in fields.items()}}
        return self.call("PATCH", f"{self.base}/{path}", token, body)

    def delete(self, token: str | None, path: str) -> int:
        return self.call("DELETE", f"{self.base}/{path}", token)

    def query(self, token: str | None, collection: str, kiosk_id: str, group: bool = False) -> int:
        where = {
            "fieldFilter": {
                "field": {"fieldPath": "kiosk_id"},
                "op": "EQUAL",
                "value": {"stringValue": kiosk_id},
            }
        }
        source = {"collectionId": collection, "allDescendants": group}
        body = {"structuredQuery": {"from": [source], "where": where}}
        return self.call("POST", f"{self.base}:runQuery", token, body)


def case_fields(kiosk_id: str, case_id: str, **extra: Any) -> dict:
    return {
        "kiosk_id": kiosk_id,
        "created_at": datetime.now(UTC),
        "patient_ref": "",
        "status": "uploaded",
        "image": {"path": f"cases/{kiosk_id}/{case_id}.jpg", "sha256": "0" * 64},
        "on_device": {"label": "melanoma", "urgency": "urgent"},
        **extra,
    }


def message_fields(kiosk_id: str, case_id: str, author: str = "health_worker", **extra) -> dict:
    return {
        "case_id": case_id,
        "kiosk_id": kiosk_id,
        "author": author,
        "author_name": "",
        "body": "Bleeds sometimes",
        "created_at": datetime.now(UTC),
        **extra,
    }


@pytest.fixture
def rest(firestore_emulator: FirestoreEmulator) -> Rest:
    load_rules(firestore_emulator, PROJECT)
    api = Rest(firestore_emulator)
    # What the cloud already holds: one case of each kiosk, a release, an audit entry.
    assert api.create(OWNER, "cases", "case-a", case_fields("kiosk-a", "case-a")) == 200
    assert api.create(OWNER, "cases", "case-b", case_fields("kiosk-b", "case-b")) == 200
    assert api.create(OWNER, "model_releases", "v2", {"version": "v2"}) == 200
    assert api.create(OWNER, "audit", "e1", {"action": "review"}) == 200
    return api


def test_a_kiosk_creates_and_reads_only_its_own_cases(rest: Rest) -> None:
    assert rest.create(KIOSK_A, "cases", "new-a", case_fields("kiosk-a", "new-a")) == 200
    assert rest.get(KIOSK_A, "cases/new-a") == 200
    assert rest.get(KIOSK_A, "cases/case-a") == 200
    assert rest.query(KIOSK_A, "cases", "kiosk-a") == 200
    # Someone else's patients:
    assert rest.get(KIOSK_A, "cases/case-b") == 403
    assert rest.query(KIOSK_A, "cases", "kiosk-b") == 403
    assert rest.create(KIOSK_A, "cases", "fake-b", case_fields("kiosk-b", "fake-b")) == 403


def test_a_kiosk_cannot_write_results_reviews_or_other_paths(rest: Rest) -> None:
    forged = {"label": "other", "recommendation": "Benign. No referral needed."}
    assert rest.create(KIOSK_A, "cases", "r1", case_fields("kiosk-a", "r1", review=forged)) == 403
    cloud = {"label": "other", "confidence": 0.99}
    assert rest.create(KIOSK_A, "cases", "r2", case_fields("kiosk-a", "r2", cloud=cloud)) == 403
    wrong_image = case_fields("kiosk-a", "r3")
    wrong_image["image"] = {"path": "cases/kiosk-b/case-b.jpg"}
    assert rest.create(KIOSK_A, "cases", "r3", wrong_image) == 403
    reviewed = case_fields("kiosk-a", "r4", status="reviewed")
    assert rest.create(KIOSK_A, "cases", "r4", reviewed) == 403
    assert rest.update(KIOSK_A, "cases/case-a", {"review": forged}) == 403
    assert rest.update(KIOSK_A, "cases/case-a", {"status": "reviewed"}) == 403
    assert rest.update(KIOSK_A, "cases/case-b", {"awaiting_reply": True}) == 403
    assert rest.delete(KIOSK_A, "cases/case-a") == 403


def test_a_kiosk_may_only_mark_its_own_full_picture_stored(rest: Rest) -> None:
    """The one change besides a question: full_image_stored true, at the server's time (the
    kiosk's sync sends a server timestamp; tests/cases/test_sync_under_rules.py shows it
    accepted). A client's own time, a false, or any other field with it is refused."""
    stored = {"full_image_stored": True, "full_image_stored_at": datetime.now(UTC)}
    assert rest.update(KIOSK_A, "cases/case-a", stored) == 403  # not the server's time
    assert rest.update(KIOSK_A, "cases/case-a", {"full_image_stored": False}) == 403
    assert rest.update(KIOSK_A, "cases/case-b", {"full_image_stored": True}) == 403
    with_status = {"full_image_stored": True, "status": "reviewed"}
    assert rest.update(KIOSK_A, "cases/case-a", with_status) == 403
    elsewhere = case_fields(
        "kiosk-a", "c1", compact_image={"path": "cases/kiosk-b/case-b.compact.jpg"}
    )
    assert rest.create(KIOSK_A, "cases", "c1", elsewhere) == 403
    own = case_fields("kiosk-a", "c2", compact_image={"path": "cases/kiosk-a/c2.compact.jpg"})
    assert rest.create(KIOSK_A, "cases", "c2", own) == 200


def test_a_health_worker_question_flags_only_the_kiosks_own_case(rest: Rest) -> None:
    flag = {"awaiting_reply": True, "updated_at": datetime.now(UTC)}
    assert rest.update(KIOSK_A, "cases/case-a", flag) == 200
    assert rest.update(KIOSK_A, "cases/case-a", {"awaiting_reply": False}) == 403


def test_messages_health_worker_yes_specialist_no_other_kiosks_never(rest: Rest) -> None:
    thread = "cases/case-a/messages"
    assert rest.create(KIOSK_A, thread, "m1", message_fields("kiosk-a", "case-a")) == 200
    assert rest.get(KIOSK_A, f"{thread}/m1") == 200
    assert rest.query(KIOSK_A, "messages", "kiosk-a", group=True) == 200
    # Forged specialist content and rewrites:
    derm = message_fields("kiosk-a", "case-a", author="dermatologist")
    assert rest.create(KIOSK_A, thread, "m2", derm) == 403
    signed = message_fields("kiosk-a", "case-a", signature="AAAA", signed_at="2026-12-01")
    assert rest.create(KIOSK_A, thread, "m3", signed) == 403
    assert rest.update(KIOSK_A, f"{thread}/m1", {"body": "OVERWRITTEN"}) == 403
    assert rest.delete(KIOSK_A, f"{thread}/m1") == 403
    # Another kiosk's thread:
    other = "cases/case-b/messages"
    assert rest.create(KIOSK_A, other, "m4", message_fields("kiosk-a", "case-b")) == 403
    assert rest.create(KIOSK_A, other, "m5", message_fields("kiosk-b", "case-b")) == 403
    assert rest.create(OWNER, other, "m6", message_fields("kiosk-b", "case-b")) == 200
    assert rest.get(KIOSK_A, f"{other}/m6") == 403
    assert rest.query(KIOSK_A, "messages", "kiosk-b", group=True) == 403


def test_heartbeat_releases_and_audit(rest: Rest) -> None:
    beat = {"kiosk_id": "kiosk-a", "queue_depth": 3, "last_seen": datetime.now(UTC)}
    assert rest.set(KIOSK_A, "kiosks/kiosk-a", beat) == 200
    assert rest.get(KIOSK_A, "kiosks/kiosk-a") == 200
    assert rest.set(KIOSK_A, "kiosks/kiosk-b", {**beat, "kiosk_id": "kiosk-b"}) == 403
    assert rest.get(KIOSK_B, "kiosks/kiosk-a") == 403
    assert rest.get(KIOSK_A, "model_releases/v2") == 200
    assert rest.create(KIOSK_A, "model_releases", "v2099", {"version": "v2099"}) == 403
    assert rest.get(KIOSK_A, "audit/e1") == 403
    assert rest.create(KIOSK_A, "audit", "e2", {"action": "review"}) == 403


@pytest.mark.parametrize("token", [None, NOT_A_KIOSK], ids=["no one", "signed in, not a kiosk"])
def test_no_one_else_gets_anything(rest: Rest, token: str | None) -> None:
    assert rest.get(token, "cases/case-a") == 403
    assert rest.query(token, "cases", "kiosk-a") == 403
    assert rest.create(token, "cases", "x", case_fields("kiosk-a", "x")) == 403
    assert rest.get(token, "model_releases/v2") == 403
    assert rest.set(token, "kiosks/kiosk-a", {"kiosk_id": "kiosk-a"}) == 403


def test_the_console_and_worker_identity_is_not_limited(rest: Rest) -> None:
    review = {"label": "melanoma", "recommendation": "Refer urgently."}
    assert rest.update(OWNER, "cases/case-a", {"review": review, "status": "reviewed"}) == 200
    assert rest.get(KIOSK_A, "cases/case-a") == 200, "the kiosk reads its reviewed case"


def test_a_retried_create_still_answers_already_exists_under_the_rules(rest: Rest) -> None:
    """The kiosk's outbox repeats a create whose answer was lost: under the rules that must stay
    'already exists' (409, treated as done), not 'denied', even after the console reviewed it."""
    assert rest.create(KIOSK_A, "cases", "n1", case_fields("kiosk-a", "n1")) == 200
    assert rest.create(KIOSK_A, "cases", "n1", case_fields("kiosk-a", "n1")) == 409
    assert rest.update(OWNER, "cases/n1", {"status": "reviewed", "review": {"label": "x"}}) == 200
    assert rest.create(KIOSK_A, "cases", "n1", case_fields("kiosk-a", "n1")) == 409
    thread = "cases/n1/messages"
    assert rest.create(KIOSK_A, thread, "m1", message_fields("kiosk-a", "n1")) == 200
    assert rest.create(KIOSK_A, thread, "m1", message_fields("kiosk-a", "n1")) == 409
