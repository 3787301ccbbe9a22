"""The kiosk's sync as its own Firebase identity, with cloud/firestore.rules loaded (issue 16).

Real Firestore emulator enforcing the rules (a project of its own), real Storage emulator, the
real SyncService and case store. The kiosk speaks with an unsigned ID token carrying the custom
claims {role: kiosk, kiosk_id} (kiosk.cases.identity; the emulator accepts unsigned tokens);
the "console" writes with the Admin identity, which rules do not limit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from kiosk.cases import cloud_schema as schema
from kiosk.cases.case_code import case_code
from kiosk.cases.firebase import CredentialsError, FirebaseClients, connect
from kiosk.cases.identity import KioskIdentity
from kiosk.cases.releases import public_key_b64
from kiosk.cases.store import CaseStatus, CaseStore, OnDeviceResult
from kiosk.cases.sync import SyncService
from kiosk.config import KioskConfig
from tests.cases.signing import CONSOLE_KEY, signed_message, signed_review
from tests.cases.test_sync import listener_brings_a_cloud_result
from tests.firebase_fixtures import FirebaseEnv
from tests.rules_helpers import kiosk_token, load_rules

PROJECT = "demo-skinscan-rules-sync"


def identity_file(path: Path, kiosk_id: str) -> Path:
    path.write_text(json.dumps({"kiosk_id": kiosk_id, "id_token": kiosk_token(PROJECT, kiosk_id)}))
    path.chmod(0o600)
    return path


@pytest.fixture
def rules_env(firebase_env: FirebaseEnv) -> FirebaseEnv:
    load_rules(firebase_env.firestore, PROJECT)
    return dataclasses.replace(firebase_env, project=PROJECT)


def kiosk(rules_env: FirebaseEnv, tmp_path: Path, kiosk_id: str) -> KioskConfig:
    config = rules_env.kiosk_config(
        tmp_path / kiosk_id,
        kiosk_id=kiosk_id,
        review_public_key=public_key_b64(CONSOLE_KEY),
        identity=identity_file(tmp_path / f"{kiosk_id}.identity.json", kiosk_id),
    )
    return config


@pytest.fixture
def admin(rules_env: FirebaseEnv, tmp_path: Path) -> FirebaseClients:
    clients = connect(rules_env.kiosk_config(tmp_path / "admin"))
    yield clients
    clients.close()


def save(store: CaseStore, n: int) -> list[str]:
    result = OnDeviceResult("melanoma", 0.8, {"melanoma": 0.8, "other": 0.2}, False, "urgent", "v")
    rng = np.random.default_rng(0)
    return [
        store.save_case(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), result).case_id
        for _ in range(n)
    ]


def test_sync_as_the_kiosk_uploads_and_brings_back_reviews_under_the_rules(
    rules_env: FirebaseEnv, tmp_path: Path, admin: FirebaseClients
) -> None:
    from google.cloud.firestore import SERVER_TIMESTAMP

    config = kiosk(rules_env, tmp_path, "kiosk-a")
    store = CaseStore.open(config)
    ids = save(store, 3)
    service = SyncService(config, store)
    report = service.sync_once()
    assert sorted(report.uploaded) == sorted(ids) and not report.failed
    # A repeat (a lost mark) stays idempotent under the rules.
    case = store.get(ids[0])
    service.send_case(service._connect(), case)
    docs = {d.id: d.to_dict() for d in admin.db.collection(schema.CASES).stream()}
    assert sorted(docs) == sorted(ids)
    assert all(docs[i]["case_code"] == case_code(i) for i in ids), "the console finds it by code"
    assert admin.db.collection(schema.KIOSKS).document("kiosk-a").get().exists

    question = store.add_message(ids[0], "Is it urgent?")
    service.sync_once()
    thread = admin.db.collection(schema.CASES).document(ids[0]).collection(schema.MESSAGES)
    assert thread.document(question.message_id).get().to_dict()["author"] == "health_worker"

    admin.db.collection(schema.CASES).document(ids[0]).update(
        {
            "status": schema.STATUS_REVIEWED,
            "review": signed_review(ids[0], "kiosk-a"),
            "updated_at": SERVER_TIMESTAMP,
        }
    )
    thread.document("reply-1").create(signed_message(ids[0], "kiosk-a", "reply-1"))
    service.sync_once()
    reviewed = store.get(ids[0])
    assert reviewed.status == CaseStatus.REVIEWED and reviewed.review is not None
    assert [m.message_id for m in store.messages(ids[0])][-1] == "reply-1"
    service.close()
    store.close()


def test_another_kiosks_identity_reads_and_writes_nothing_of_this_kiosk(
    rules_env: FirebaseEnv, tmp_path: Path, admin: FirebaseClients
) -> None:
    from google.api_core.exceptions import PermissionDenied
    from google.cloud.firestore_v1.base_query import FieldFilter

    config_a = kiosk(rules_env, tmp_path, "kiosk-a")
    store_a = CaseStore.open(config_a)
    [case_id] = save(store_a, 1)
    SyncService(config_a, store_a).sync_once()

    stolen = connect(kiosk(rules_env, tmp_path, "kiosk-b"))
    try:
        with pytest.raises(PermissionDenied):
            stolen.db.collection(schema.CASES).document(case_id).get()
        query = stolen.db.collection(schema.CASES).where(
            filter=FieldFilter("kiosk_id", "==", "kiosk-a")
        )
        with pytest.raises(PermissionDenied):
            list(query.stream())
        forged = {"label": "other", "recommendation": "Benign. No referral needed."}
        with pytest.raises(PermissionDenied):
            stolen.db.collection(schema.CASES).document(case_id).update({"review": forged})
        # Not even on its own case can a kiosk write a review.
        own = CaseStore.open(kiosk(rules_env, tmp_path, "kiosk-b"))
        [own_id] = save(own, 1)
        SyncService(kiosk(rules_env, tmp_path, "kiosk-b"), own).sync_once()
        with pytest.raises(PermissionDenied):
            stolen.db.collection(schema.CASES).document(own_id).update({"review": forged})
        own.close()
    finally:
        stolen.close()
    assert "review" not in admin.db.collection(schema.CASES).document(case_id).get().to_dict()
    store_a.close()


def test_a_private_identity_file_for_this_kiosk_is_required(
    rules_env: FirebaseEnv, tmp_path: Path
) -> None:
    config = kiosk(rules_env, tmp_path, "kiosk-a")
    config.identity.chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        KioskIdentity.load(config.identity)
    config.identity.chmod(0o600)
    wrong = dataclasses.replace(config, kiosk_id="kiosk-z")
    with pytest.raises(CredentialsError, match="is for kiosk 'kiosk-a'"):
        connect(wrong)


def test_the_listener_delivers_a_cloud_result_under_the_rules(
    rules_env: FirebaseEnv, tmp_path: Path, admin: FirebaseClients
) -> None:
    config = kiosk(rules_env, tmp_path, "kiosk-a")
    store = CaseStore.open(config)
    [case_id] = save(store, 1)
    try:
        listener_brings_a_cloud_result(SyncService(config, store), store, admin.db, case_id)
    finally:
        store.close()


def test_a_compact_copy_then_its_full_picture_under_the_rules(
    rules_env: FirebaseEnv, tmp_path: Path, admin: FirebaseClients
) -> None:
    """The kiosk identity may create a case with its compact copy and later mark the full
    picture stored (the rules allow exactly that change), as sync does."""
    from tests.sync_faults import large_picture

    config = kiosk(rules_env, tmp_path, "kiosk-a")
    store = CaseStore.open(config)
    result = OnDeviceResult("melanoma", 0.8, {"melanoma": 0.8, "other": 0.2}, False, "urgent", "v")
    case = store.save_case(large_picture(900), result)
    service = SyncService(config, store)
    report = service.sync_once()
    service.close()
    assert report.uploaded == [case.case_id] and report.full_uploaded == [case.case_id]
    assert not report.failed
    doc = admin.db.collection(schema.CASES).document(case.case_id).get().to_dict()
    assert doc["compact_image"]["path"] == schema.compact_image_path("kiosk-a", case.case_id)
    assert doc["full_image_stored"] is True and doc["full_image_stored_at"] is not None
    store.close()
