"""Small first, detail later (issue 19): a large picture goes up as a compact copy with its
case document, and the full-resolution picture follows as a resumable upload that a cut link
or a SIGKILL resumes from the server's offset, never from byte 0.

Real Firestore and Storage emulators; the Storage traffic goes through a throttled relay
(tests/servers.TcpProxy) that meters every byte sent up and can drop the link mid-request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.cases import cloud_schema as schema
from kiosk.cases.compact import COMPACT_MAX_SIDE
from kiosk.cases.firebase import FirebaseClients, OfflineError
from kiosk.cases.store import (
    Case,
    CaseStatus,
    CaseStore,
    FullUpload,
    OnDeviceResult,
    UploadSession,
)
from kiosk.cases.sync import PassReport, SyncService
from kiosk.config import KioskConfig
from tests.firebase_fixtures import FirebaseEnv
from tests.servers import TcpProxy, wait_for
from tests.sync_faults import (
    REPO,
    KillLoopResult,
    check_exactly_once,
    kiosk_blobs,
    kiosk_docs,
    large_picture,
    sync_environment,
)

RESUMES = re.compile(r"full picture resumes at byte (\d+) of (\d+)")
COMPACT_RESUMES = re.compile(r"compact copy resumes at byte (\d+) of (\d+)")


def full_session(store: CaseStore, case: Case) -> UploadSession | None:
    """The resumable session kept for the case's full picture."""
    return store.upload_session(schema.case_image_path(case.kiosk_id, case.case_id))


def on_device() -> OnDeviceResult:
    return OnDeviceResult("melanoma", 0.9, {"melanoma": 0.9}, False, "urgent", "test")


@dataclass
class Link:
    relay: TcpProxy  # Storage only; Firestore goes direct
    config: KioskConfig
    store: CaseStore

    def cut_after(self, nbytes: int) -> threading.Thread:
        """Drop the link once `nbytes` more have gone up through it (mid-request)."""
        start = self.relay.meter.bytes_up

        def watch() -> None:
            while self.relay.meter.bytes_up - start < nbytes:
                time.sleep(0.005)
            self.relay.stop()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def pass_after_the_cut(
        self, service: SyncService, caplog: pytest.LogCaptureFixture
    ) -> tuple[PassReport, int, int]:
        """The link back, one more pass: its report, the bytes it sent up through Storage, and
        the offset it logged resuming at."""
        self.relay.start()
        before = self.relay.meter.bytes_up
        with caplog.at_level(logging.INFO, logger="kiosk.cases.sync"):
            report = service.sync_once()
        service.close()
        [(offset, _)] = [tuple(map(int, m.groups())) for m in RESUMES.finditer(caplog.text)]
        return report, self.relay.meter.bytes_up - before, offset


@pytest.fixture
def link(firebase_env: FirebaseEnv, tmp_path: Path) -> Iterator[Link]:
    relay = TcpProxy(firebase_env.storage.port, rate_bytes_per_s=60_000)
    relay.start()
    config = firebase_env.kiosk_config(
        tmp_path / "kiosk",
        storage_emulator_host=f"http://127.0.0.1:{relay.port}",
        connect_timeout_s=2.0,
        sync_concurrency=1,
    )
    store = CaseStore.open(config)
    yield Link(relay, config, store)
    relay.stop()
    store.close()


def test_a_large_picture_goes_compact_first_then_whole_a_small_one_whole(
    link: Link, cloud: FirebaseClients
) -> None:
    large = link.store.save_case(large_picture(800), on_device())
    small = link.store.save_case(large_picture(400), on_device())
    service = SyncService(link.config, link.store)
    report = service.sync_once()
    service.close()
    assert sorted(report.uploaded) == sorted([large.case_id, small.case_id])
    assert report.full_uploaded == [large.case_id]

    docs = kiosk_docs(cloud, link.store.kiosk_id)
    blobs = kiosk_blobs(cloud, link.store.kiosk_id)
    compact = blobs[schema.compact_image_path(large.kiosk_id, large.case_id)]
    described = docs[large.case_id]["compact_image"]
    assert hashlib.sha256(compact).hexdigest() == described["sha256"]
    assert len(compact) == described["bytes"] < large.image_bytes / 4
    decoded = cv2.imdecode(np.frombuffer(compact, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == COMPACT_MAX_SIDE
    assert (described["width"], described["height"]) == (decoded.shape[1], decoded.shape[0])
    full = blobs[schema.case_image_path(large.kiosk_id, large.case_id)]
    assert hashlib.sha256(full).hexdigest() == large.image_sha256
    assert docs[large.case_id]["full_image_stored"] is True
    assert schema.full_image_available(docs[large.case_id])
    # The small picture is its own first look: one object, no copy.
    assert "compact_image" not in docs[small.case_id]
    assert schema.compact_image_path(small.kiosk_id, small.case_id) not in blobs
    assert schema.first_look_image(docs[small.case_id])["sha256"] == small.image_sha256
    for case_id in (large.case_id, small.case_id):
        case = link.store.get(case_id)
        assert case.status == CaseStatus.UPLOADED and case.full_upload == FullUpload.DONE
    result = check_exactly_once_result(link.store, cloud)
    assert not result.problems, result.problems


def check_exactly_once_result(store: CaseStore, cloud: FirebaseClients) -> KillLoopResult:
    result = KillLoopResult()
    check_exactly_once(store, cloud, result)
    return result


def test_a_cut_in_the_middle_of_a_full_picture_resumes_from_its_offset(
    link: Link, cloud: FirebaseClients, caplog: pytest.LogCaptureFixture
) -> None:
    case = link.store.save_case(large_picture(1364), on_device())
    total = case.image_bytes
    service = SyncService(link.config, link.store)
    # The compact copy (~20 KB) and its request go through; the link drops ~100 KB into the
    # full picture.
    cutter = link.cut_after(120_000)
    with pytest.raises(OfflineError):
        service.sync_once()
    cutter.join(timeout=30)

    # The case counts as sent: its document and compact copy are in the cloud, its full
    # picture is queued with the session that holds its first bytes.
    sent = link.store.get(case.case_id)
    assert sent.status == CaseStatus.UPLOADED and sent.full_upload == FullUpload.WAITING
    doc = kiosk_docs(cloud, case.kiosk_id)[case.case_id]
    assert doc["full_image_stored"] is False and not schema.full_image_available(doc)
    assert schema.case_image_path(case.kiosk_id, case.case_id) not in kiosk_blobs(
        cloud, case.kiosk_id
    )
    assert full_session(link.store, case)
    assert link.store.full_upload_backlog()[0] == 1

    report, resent, offset = link.pass_after_the_cut(service, caplog)
    assert report.full_uploaded == [case.case_id]
    assert 50_000 < offset < total
    # Only the rest went again (plus a few KB of requests and headers), not the whole picture.
    assert resent < total - offset + 8_000, (resent, total, offset)
    full = kiosk_blobs(cloud, case.kiosk_id)[schema.case_image_path(case.kiosk_id, case.case_id)]
    assert hashlib.sha256(full).hexdigest() == case.image_sha256
    assert kiosk_docs(cloud, case.kiosk_id)[case.case_id]["full_image_stored"] is True
    done = link.store.get(case.case_id)
    assert done.full_upload == FullUpload.DONE and full_session(link.store, case) is None


def test_a_power_cut_during_a_full_picture_resumes_after_restart(
    link: Link, cloud: FirebaseClients
) -> None:
    case = link.store.save_case(large_picture(1600), on_device())
    total = case.image_bytes
    env = sync_environment(link.config)
    command = [sys.executable, "-m", "kiosk", "sync", "--once"]
    child = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # The plug pulled once the session is kept and ~100 KB of the full picture are on
        # their way: the process killed and the link gone with it (a SIGKILL alone leaves the
        # kernel to deliver what the process had written, which on loopback is all of it).
        wait_for(
            lambda: (
                full_session(link.store, case) is not None and link.relay.meter.bytes_up > 130_000
            ),
            timeout=60,
            what="the full picture under way",
        )
        child.send_signal(signal.SIGKILL)
        link.relay.stop()
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert link.store.get(case.case_id).full_upload == FullUpload.WAITING
    assert schema.case_image_path(case.kiosk_id, case.case_id) not in kiosk_blobs(
        cloud, case.kiosk_id
    )

    link.relay.start()
    before = link.relay.meter.bytes_up
    rerun = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    resent = link.relay.meter.bytes_up - before
    assert rerun.returncode == 0, rerun.stderr[-800:]
    [(offset, of)] = [tuple(map(int, m.groups())) for m in RESUMES.finditer(rerun.stderr)]
    assert of == total and offset > 50_000
    assert resent < total - offset + 8_000, (resent, total, offset)
    full = kiosk_blobs(cloud, case.kiosk_id)[schema.case_image_path(case.kiosk_id, case.case_id)]
    assert hashlib.sha256(full).hexdigest() == case.image_sha256
    link.store.close()
    store = CaseStore.open(link.config)
    try:
        assert store.get(case.case_id).full_upload == FullUpload.DONE
        result = check_exactly_once_result(store, cloud)
        assert not result.problems, result.problems
    finally:
        link.store = store


def test_a_case_saved_meanwhile_goes_before_the_rest_of_the_full_pictures(
    link: Link, cloud: FirebaseClients
) -> None:
    first = link.store.save_case(large_picture(1364, seed=1), on_device())
    second = link.store.save_case(large_picture(1364, seed=5), on_device())
    service = SyncService(link.config, link.store)
    later: list[str] = []

    def save_during_the_full_picture() -> None:
        wait_for(
            lambda: full_session(link.store, first) is not None,
            timeout=60,
            what="the first full picture under way",
        )
        later.append(link.store.save_case(large_picture(900, seed=2), on_device()).case_id)
        service.request_sync()  # as the save screen does

    saver = threading.Thread(target=save_during_the_full_picture, daemon=True)
    saver.start()
    report = service.sync_once()
    saver.join(timeout=60)
    # The pass finished the picture under way, then stopped for the new case (and asked for
    # the next pass at once) instead of sending the second full picture first.
    assert report.full_uploaded == [first.case_id]
    assert link.store.get(second.case_id).full_upload == FullUpload.WAITING
    assert later and link.store.get(later[0]).status == CaseStatus.SAVED
    assert service._wake.is_set()
    report = service.sync_once()
    service.close()
    assert report.uploaded == later and report.full_uploaded == [second.case_id, *later]
    assert not check_exactly_once_result(link.store, cloud).problems


def test_retention_keeps_a_picture_whose_full_resolution_is_still_to_send(
    kiosk_config: KioskConfig,
) -> None:
    from datetime import timedelta

    from kiosk.cases.store import utc_now

    store = CaseStore.open(kiosk_config)
    try:
        waiting = store.save_case(large_picture(800), on_device())
        whole = store.save_case(large_picture(800, seed=3), on_device())
        store.mark_uploaded_many([waiting.case_id, whole.case_id], full_waiting=[waiting.case_id])
        assert store.full_upload_backlog() == (1, waiting.image_bytes)
        later = utc_now() + timedelta(days=400)
        assert store.apply_retention(30, now=later) == 1  # only the one sent whole
        assert store.get(waiting.case_id).image_path is not None
        assert store.get(whole.case_id).image_path is None
        store.mark_full_uploaded(waiting.case_id)
        assert store.full_upload_backlog() == (0, 0)
        assert store.apply_retention(30, now=later) == 1
    finally:
        store.close()


def test_a_version_3_database_counts_its_sent_cases_as_whole(kiosk_config: KioskConfig) -> None:
    import sqlite3

    store = CaseStore.open(kiosk_config)
    sent = store.save_case(large_picture(800), on_device())
    queued = store.save_case(large_picture(800, seed=4), on_device())
    store.mark_uploaded(sent.case_id)
    store.close()
    db = sqlite3.connect(kiosk_config.cases_db)
    db.execute("ALTER TABLE cases DROP COLUMN full_upload")
    db.execute("DROP TABLE upload_sessions")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()

    store = CaseStore.open(kiosk_config)
    try:
        assert store.get(sent.case_id).full_upload == FullUpload.DONE
        assert store.pending_full_uploads() == []
        assert [c.case_id for c in store.pending_uploads()] == [queued.case_id]
    finally:
        store.close()


def test_on_an_unstable_link_a_small_picture_resumes_too(
    link: Link, cloud: FirebaseClients, caplog: pytest.LogCaptureFixture
) -> None:
    """A picture small enough to go whole, on a link that keeps dropping: resumable as well,
    so a cut costs what was in flight, not the picture."""
    case = link.store.save_case(large_picture(500), on_device())
    service = SyncService(link.config, link.store)
    service._link.dropped()
    service._link.dropped()  # two drops within minutes: unstable
    assert service._link.report().unstable
    cutter = link.cut_after(case.image_bytes // 2)
    with pytest.raises(OfflineError):
        service.sync_once()
    cutter.join(timeout=30)
    assert link.store.get(case.case_id).status == CaseStatus.SAVED
    assert full_session(link.store, case)

    report, resent, offset = link.pass_after_the_cut(service, caplog)
    assert report.uploaded == [case.case_id] and report.full_uploaded == []
    assert offset > case.image_bytes // 4
    assert resent < case.image_bytes - offset + 8_000, (resent, case.image_bytes, offset)
    doc = kiosk_docs(cloud, case.kiosk_id)[case.case_id]
    assert "compact_image" not in doc and doc["full_image_stored"] is True
    sent = link.store.get(case.case_id)
    assert sent.full_upload == FullUpload.DONE and full_session(link.store, case) is None
    assert not check_exactly_once_result(link.store, cloud).problems


def test_on_an_unstable_link_a_compact_copy_resumes_too(
    link: Link, cloud: FirebaseClients, caplog: pytest.LogCaptureFixture
) -> None:
    case = link.store.save_case(large_picture(1024), on_device())
    service = SyncService(link.config, link.store)
    service._link.dropped()
    service._link.dropped()
    cutter = link.cut_after(10_000)  # inside the ~20 KB compact copy
    with pytest.raises(OfflineError):
        service.sync_once()
    cutter.join(timeout=30)
    compact_path = schema.compact_image_path(case.kiosk_id, case.case_id)
    assert link.store.get(case.case_id).status == CaseStatus.SAVED
    assert link.store.upload_session(compact_path) is not None

    link.relay.start()
    with caplog.at_level(logging.INFO, logger="kiosk.cases.sync"):
        report = service.sync_once()
    service.close()
    assert report.uploaded == [case.case_id] and report.full_uploaded == [case.case_id]
    [(offset, total)] = [tuple(map(int, m.groups())) for m in COMPACT_RESUMES.finditer(caplog.text)]
    assert 0 < offset < total < case.image_bytes / 4
    assert link.store.upload_session(compact_path) is None  # forgotten once the case is sent
    assert not check_exactly_once_result(link.store, cloud).problems


def test_a_session_that_holds_nothing_yet_is_resumed_in_the_same_pass(
    link: Link, cloud: FirebaseClients
) -> None:
    """Cut before its first byte arrived (the bench found this): gcp-storage-emulator then
    reports "bytes=0-0", i.e. one byte, and refuses byte 1; the kiosk must not stall on it."""
    from kiosk.cases import resumable

    case = link.store.save_case(large_picture(500), on_device())
    path = schema.case_image_path(case.kiosk_id, case.case_id)
    service = SyncService(link.config, link.store)
    blob = service._connect().bucket.blob(path)
    uri = resumable.open_session(blob, case.image_bytes, "image/jpeg", (2, 30), None)
    link.store.keep_upload_session(UploadSession(path, case.case_id, uri, 0, case.image_bytes))
    report = service.sync_once()
    service.close()
    assert report.uploaded == [case.case_id] and not report.failed
    assert not check_exactly_once_result(link.store, cloud).problems


def test_a_case_that_keeps_failing_does_not_stop_the_full_pictures(
    kiosk_config: KioskConfig,
) -> None:
    """Found in review: a case still waiting because its upload failed in this pass looked
    like a newly saved one, so the full pictures stopped at once, every pass, and the next
    pass began at once. Only a case this pass did not try stops them."""
    store = CaseStore.open(kiosk_config)
    try:
        service = SyncService(kiosk_config, store)
        failing = store.save_case(large_picture(500), on_device())
        report = PassReport(failed={failing.case_id: "Forbidden: refused"})
        assert not service._saved_since(report)
        store.save_case(large_picture(500, seed=1), on_device())  # saved since the pass began
        assert service._saved_since(report)
        assert not service._wake.is_set()
    finally:
        store.close()


def test_a_cloud_result_before_the_mark_keeps_the_full_picture_queued(
    kiosk_config: KioskConfig,
) -> None:
    """Found in review: the listener can move a case to 'classified' before the batch mark;
    the mark then skipped it and its full picture was never sent."""
    store = CaseStore.open(kiosk_config)
    try:
        case = store.save_case(large_picture(800), on_device())
        assert store.apply_remote(case.case_id, "classified", {"label": "melanoma"}, None)
        store.mark_uploaded_many([case.case_id], full_waiting=[case.case_id])
        marked = store.get(case.case_id)
        assert marked.status == CaseStatus.CLASSIFIED  # never moved back
        assert marked.uploaded_at is not None and marked.full_upload == FullUpload.WAITING
        assert [c.case_id for c in store.pending_full_uploads()] == [case.case_id]
    finally:
        store.close()


def test_a_refused_session_request_does_not_carry_the_session_uri(
    link: Link, cloud: FirebaseClients
) -> None:
    """The URI is a write credential for the object: errors end up in logs and last_error."""
    from google.api_core.exceptions import GoogleAPICallError

    from kiosk.cases import resumable

    case = link.store.save_case(large_picture(500), on_device())
    path = schema.case_image_path(case.kiosk_id, case.case_id)
    service = SyncService(link.config, link.store)
    clients = service._connect()
    uri = resumable.open_session(clients.bucket.blob(path), 10, "image/jpeg", (2, 30), None)
    http = clients.bucket.client._http
    with pytest.raises(GoogleAPICallError) as refused:  # from byte 5 of an empty session
        resumable.send_from(http, uri, b"x" * 10, 5, (2, 30))
    link.relay.stop()
    with pytest.raises(Exception) as cut:
        resumable.query(http, uri, 10, (2, 30))
    service.close()
    upload_id = uri.split("upload_id=")[1]
    for error in (refused.value, cut.value):
        assert upload_id not in str(error) and "upload_id" not in repr(error), error
