"""Sync against the real Firestore emulator and gcp-storage-emulator."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import CredentialsError, FirebaseClients, OfflineError, connect
from kiosk.cases.store import CaseStatus, CaseStore, OnDeviceResult
from kiosk.cases.sync import SyncService, backoff_delay
from kiosk.cases.sync_status import SyncProblem
from kiosk.config import KioskConfig
from tests.firebase_fixtures import FirebaseEnv
from tests.servers import TcpProxy, free_port, wait_for
from tests.sync_faults import kiosk_blobs, kiosk_docs


def on_device(label: str = "melanoma", urgency: str = "urgent") -> OnDeviceResult:
    return OnDeviceResult(
        label=label,
        confidence=0.81,
        probabilities={label: 0.81, "other": 0.19},
        abstained=False,
        urgency=urgency,
        model_version="test",
    )


def picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)


def save_cases(store: CaseStore, n: int) -> list[str]:
    return [store.save_case(picture(i), on_device(), body_site="arm").case_id for i in range(n)]


def assert_exactly_once(store: CaseStore, clients: FirebaseClients, case_ids: list[str]) -> None:
    """One document and one object per case, the bytes identical to the kiosk's."""
    docs = kiosk_docs(clients, store.kiosk_id)
    blobs = kiosk_blobs(clients, store.kiosk_id)
    assert sorted(docs) == sorted(case_ids)
    assert sorted(blobs) == sorted(schema.case_image_path(store.kiosk_id, c) for c in case_ids)
    for case_id in case_ids:
        case = store.get(case_id)
        assert case.status == CaseStatus.UPLOADED
        data = blobs[schema.case_image_path(store.kiosk_id, case_id)]
        assert hashlib.sha256(data).hexdigest() == case.image_sha256
        assert docs[case_id]["image"]["sha256"] == case.image_sha256
        assert docs[case_id]["status"] == schema.STATUS_UPLOADED


@pytest.fixture
def store(kiosk_config: KioskConfig) -> CaseStore:
    s = CaseStore.open(kiosk_config)
    yield s
    s.close()


def test_cases_saved_offline_upload_exactly_once_when_online(
    kiosk_config: KioskConfig, store: CaseStore, cloud: FirebaseClients, tmp_path: Path
) -> None:
    case_ids = save_cases(store, 12)
    dead_port = free_port()
    offline_config = KioskConfig(
        **{
            **kiosk_config.__dict__,
            "firestore_emulator_host": f"127.0.0.1:{dead_port}",
            "storage_emulator_host": f"http://127.0.0.1:{dead_port}",
        }
    )
    offline = SyncService(offline_config, store)
    started = time.monotonic()
    with pytest.raises(OfflineError, match="cannot reach"):
        offline.sync_once()
    assert time.monotonic() - started < 10, "an offline kiosk must find out quickly"
    assert offline.status().online is False
    assert offline.status().problem is SyncProblem.NO_CONNECTION  # what the screen will say
    assert offline.status().pending == 12
    assert all(store.get(c).status == CaseStatus.SAVED for c in case_ids)

    online = SyncService(kiosk_config, store)
    report = online.sync_once()
    assert sorted(report.uploaded) == sorted(case_ids)
    assert online.status().online is True
    assert online.status().pending == 0
    assert online.status().last_sync is not None
    assert_exactly_once(store, cloud, case_ids)

    # A second pass changes nothing.
    again = online.sync_once()
    assert again.uploaded == []
    assert_exactly_once(store, cloud, case_ids)
    heartbeat = cloud.db.collection(schema.KIOSKS).document(store.kiosk_id).get().to_dict()
    assert heartbeat["queue_depth"] == 0
    assert heartbeat["model_version"]
    online.close()


def test_server_lost_mid_upload_then_back_no_duplicates(
    firebase_env: FirebaseEnv, tmp_path: Path, cloud: FirebaseClients
) -> None:
    storage_proxy = TcpProxy(firebase_env.storage.port)
    firestore_proxy = TcpProxy(firebase_env.firestore.port)
    storage_proxy.start()
    firestore_proxy.start()
    config = firebase_env.kiosk_config(
        tmp_path / "kiosk",
        storage_emulator_host=f"http://127.0.0.1:{storage_proxy.port}",
        firestore_emulator_host=f"127.0.0.1:{firestore_proxy.port}",
    )
    store = CaseStore.open(config)
    case_ids = save_cases(store, 40)
    service = SyncService(config, store)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.sync_once()
        except OfflineError as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while store.counts()["uploaded"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    storage_proxy.stop()
    firestore_proxy.stop()
    thread.join(timeout=120)
    assert not thread.is_alive()
    uploaded_before_restart = store.counts()["uploaded"]
    assert 3 <= uploaded_before_restart < 40, "the kill must land mid-queue"
    assert errors, "the pass must report the lost server"
    lost = service.status()
    assert not lost.online
    assert lost.problem in (SyncProblem.NO_CONNECTION, SyncProblem.SERVER_ERROR)

    storage_proxy.start()
    firestore_proxy.start()
    # As the kiosk's own loop would: try again until a pass gets through (a connection the
    # client library kept from before the loss can fail the first one).
    for _attempt in range(5):
        try:
            service.sync_once()
            break
        except OfflineError:
            time.sleep(1)
    assert_exactly_once(store, cloud, case_ids)
    assert service.status().online and service.status().problem is None
    service.close()
    store.close()
    storage_proxy.stop()
    firestore_proxy.stop()


def test_review_and_messages_reach_the_kiosk_inbox(
    kiosk_config: KioskConfig, store: CaseStore, cloud: FirebaseClients
) -> None:
    from google.cloud.firestore import SERVER_TIMESTAMP

    from kiosk.cases.releases import public_key_b64
    from tests.cases.signing import CONSOLE_KEY, signed_message, signed_review

    case_id = save_cases(store, 1)[0]
    kiosk_config = KioskConfig(
        **{**kiosk_config.__dict__, "review_public_key": public_key_b64(CONSOLE_KEY)}
    )
    service = SyncService(kiosk_config, store)
    service.sync_once()
    question = store.add_message(case_id, "Lesion grew in two weeks, is it urgent?")
    assert store.queue_depth() == 1
    service.sync_once()
    assert store.queue_depth() == 0
    thread = cloud.db.collection(schema.CASES).document(case_id).collection(schema.MESSAGES)
    sent = thread.document(question.message_id).get().to_dict()
    assert sent["body"] == question.body
    assert sent["author"] == schema.AUTHOR_HEALTH_WORKER
    assert sent["kiosk_id"] == store.kiosk_id, "the health worker's note says which kiosk"

    # A dermatologist reviews and answers (what the console writes, signed).
    cloud.db.collection(schema.CASES).document(case_id).update(
        {
            "status": schema.STATUS_REVIEWED,
            "review": signed_review(case_id, store.kiosk_id),
            "updated_at": SERVER_TIMESTAMP,
        }
    )
    thread.document("reply-1").create(
        signed_message(case_id, store.kiosk_id, "reply-1", "Yes: please refer this week.")
    )
    service.sync_once()
    case = store.get(case_id)
    assert case.status == CaseStatus.REVIEWED
    assert case.review is not None and case.review.recommendation.startswith("Refer")
    inbox = store.inbox()
    assert {item.kind for item in inbox} == {"review", "message"}
    assert store.unread_count() == 2
    store.mark_read(case_id)
    assert store.unread_count() == 0
    bodies = [m.body for m in store.messages(case_id)]
    assert bodies == [question.body, "Yes: please refer this week."]
    # Repeating the catch-up adds nothing twice.
    service.sync_once()
    assert len(store.messages(case_id)) == 2
    assert store.unread_count() == 0
    service.close()


def listener_brings_a_cloud_result(service: SyncService, store: CaseStore, db, case_id: str):
    """Start `service` with a 10-minute pass interval, wait for the case to go up, then write
    a cloud result: only the running listener can bring it back in time. Shared with the
    same check under security rules (test_sync_under_rules.py)."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    service.config = KioskConfig(**{**service.config.__dict__, "sync_interval_s": 600.0})
    service.start()
    try:
        wait_for(lambda: store.get(case_id).status == CaseStatus.UPLOADED, 30, "the case to go up")
        time.sleep(0.5)  # the listener attaches after the pass
        db.collection(schema.CASES).document(case_id).update(
            {
                "status": schema.STATUS_CLASSIFIED,
                "cloud": {"label": "melanoma", "confidence": 0.9},
                "updated_at": SERVER_TIMESTAMP,
            }
        )
        wait_for(
            lambda: store.get(case_id).status == CaseStatus.CLASSIFIED,
            20,
            "the listener to bring the cloud result",
        )
        assert store.get(case_id).cloud["label"] == "melanoma"
    finally:
        service.close()


def test_listener_delivers_a_review_while_running(
    kiosk_config: KioskConfig, store: CaseStore, cloud: FirebaseClients
) -> None:
    case_id = save_cases(store, 1)[0]
    listener_brings_a_cloud_result(SyncService(kiosk_config, store), store, cloud.db, case_id)


def test_corrupt_image_is_quarantined_and_the_rest_upload(
    kiosk_config: KioskConfig, store: CaseStore, cloud: FirebaseClients
) -> None:
    case_ids = save_cases(store, 3)
    broken = store.get(case_ids[1])
    assert broken.image_path is not None
    broken.image_path.write_bytes(b"\xff\xd8 not the saved bytes")
    missing = store.get(case_ids[2])
    assert missing.image_path is not None
    missing.image_path.unlink()
    service = SyncService(kiosk_config, store)
    report = service.sync_once()
    assert report.uploaded == [case_ids[0]]
    assert sorted(report.quarantined) == sorted(case_ids[1:])
    assert "checksum" in (store.get(case_ids[1]).quarantine_error or "")
    assert "missing" in (store.get(case_ids[2]).quarantine_error or "")
    assert store.queue_depth() == 0
    assert sorted(kiosk_docs(cloud, store.kiosk_id)) == [case_ids[0]]
    service.close()


def test_world_readable_credentials_are_refused(tmp_path: Path) -> None:
    key = tmp_path / "service-account.json"
    key.write_text('{"type": "service_account"}')
    key.chmod(0o644)
    config = KioskConfig(data_dir=tmp_path / "k", kiosk_id="k1", credentials=key)
    with pytest.raises(CredentialsError, match="readable by group or others"):
        connect(config)
    missing = KioskConfig(data_dir=tmp_path / "k", kiosk_id="k1", credentials=tmp_path / "nope")
    with pytest.raises(CredentialsError, match="not found"):
        connect(missing)
    # The sync service refuses before the network and tells the screen an admin is needed.
    store = CaseStore.open(config)
    service = SyncService(config, store)
    with pytest.raises(CredentialsError):
        service.sync_once()
    assert service.status().problem is SyncProblem.CREDENTIALS
    service.close()
    store.close()


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    first = [backoff_delay(0, rng) for _ in range(50)]
    late = [backoff_delay(20, rng) for _ in range(50)]
    assert max(first) <= 2.0
    assert max(late) <= 300.0
    assert len({round(d, 3) for d in late}) > 40, "delays must be jittered"
    assert np.mean(late) > 10 * np.mean(first)
