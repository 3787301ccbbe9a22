"""The case store on a real SQLite database and real files."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.cases.cloud_schema import AUTHOR_DERMATOLOGIST
from kiosk.cases.store import (
    BODY_SITES,
    CaseNotFoundError,
    CaseStatus,
    CaseStore,
    CaseStoreError,
    DiskFullError,
    OnDeviceResult,
    utc_now,
)


def result(label: str = "eczema") -> OnDeviceResult:
    return OnDeviceResult(label, 0.7, {label: 0.7, "other": 0.3}, False, "routine", "v1")


def rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (80, 100, 3), dtype=np.uint8)


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        check=False,
    )


@pytest.fixture
def store(tmp_path: Path) -> CaseStore:
    s = CaseStore(tmp_path / "data" / "cases.sqlite3", tmp_path / "data" / "images", "k1", 0)
    yield s
    s.close()


def test_saved_case_round_trips_with_a_private_durable_image(store: CaseStore) -> None:
    picture = rgb()
    case = store.save_case(picture, result(), patient_ref="  AB   12 ", body_site="arm")
    assert case.status == CaseStatus.SAVED
    assert case.patient_ref == "AB 12"
    assert len(case.case_id) == 36
    assert case.image_path is not None and case.image_path.is_file()
    assert stat.S_IMODE(case.image_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.db_path.stat().st_mode) == 0o600
    decoded = cv2.cvtColor(cv2.imread(str(case.image_path)), cv2.COLOR_BGR2RGB)
    assert decoded.shape == picture.shape
    assert store.get(case.case_id) == case
    assert store.queue_depth() == 1
    mode = store._query("PRAGMA journal_mode")[0][0]
    assert mode == "wal"


def test_jpeg_carries_no_metadata(store: CaseStore) -> None:
    case = store.save_case(rgb(), result())
    assert case.image_path is not None
    data = case.image_path.read_bytes()
    assert data[:2] == b"\xff\xd8"
    assert b"Exif" not in data and b"GPS" not in data


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"consent": False}, "consent"),
        ({"patient_ref": "x" * 33}, "at most 32"),
        ({"patient_ref": "name@example.org"}, "only letters"),
        ({"body_site": "elbowpit"}, "unknown body site"),
    ],
)
def test_bad_case_input_is_refused_and_nothing_is_written(
    store: CaseStore, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.save_case(rgb(), result(), **kwargs)
    assert store.list_cases() == []
    assert list(store.images_dir.iterdir()) == []


def test_bad_picture_is_refused(store: CaseStore) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        store.save_case(np.zeros((10, 10), np.float32), result())


def test_full_disk_is_reported_not_crashed_on(tmp_path: Path) -> None:
    huge = 10**9  # MB: more than any test machine has free
    s = CaseStore(tmp_path / "c.sqlite3", tmp_path / "img", "k1", min_free_mb=huge)
    with pytest.raises(DiskFullError, match="Storage is almost full"):
        s.save_case(rgb(), result())
    assert s.list_cases() == []
    assert list(s.images_dir.iterdir()) == []
    s.close()


def test_states_only_move_forward_and_reviews_arrive_unread(store: CaseStore) -> None:
    case = store.save_case(rgb(), result())
    store.mark_uploaded(case.case_id)
    assert store.get(case.case_id).status == CaseStatus.UPLOADED
    review = {"label": "eczema", "recommendation": "Emollients", "reviewer": "Dr B"}
    assert store.apply_remote(case.case_id, "reviewed", None, review)
    assert store.get(case.case_id).status == CaseStatus.REVIEWED
    assert store.unread_count() == 1
    # A late "classified" from a slow worker does not undo the review.
    assert not store.apply_remote(case.case_id, "classified", None, review)
    assert store.get(case.case_id).status == CaseStatus.REVIEWED
    store.mark_read(case.case_id)
    assert store.unread_count() == 0
    changed = {**review, "recommendation": "Emollients twice a day"}
    assert store.apply_remote(case.case_id, "reviewed", None, changed)
    assert store.unread_count() == 1, "a changed review is news again"
    assert not store.apply_remote("no-such-case", "reviewed", None, review)


def test_messages_and_inbox_newest_first(store: CaseStore) -> None:
    first = store.save_case(rgb(1), result())
    second = store.save_case(rgb(2), result("melanoma"))
    note = store.add_message(first.case_id, "  Itches at night  ")
    assert note.body == "Itches at night"
    assert [m.message_id for m in store.pending_messages()] == [], "case not uploaded yet"
    store.mark_uploaded(first.case_id)
    assert [m.message_id for m in store.pending_messages()] == [note.message_id]
    store.mark_message_sent(note.message_id)
    assert store.pending_messages() == []
    assert store.add_remote_message("r1", first.case_id, AUTHOR_DERMATOLOGIST, "Dr B", "Ok", None)
    assert not store.add_remote_message(
        "r1", first.case_id, AUTHOR_DERMATOLOGIST, "Dr B", "Ok", None
    )
    store.apply_remote(
        second.case_id,
        "reviewed",
        None,
        {
            "label": "melanoma",
            "recommendation": "Refer",
            "reviewer": "Dr B",
            "reviewed_at": utc_now(),
        },
    )
    inbox = store.inbox()
    assert [item.kind for item in inbox] == ["review", "message"]
    assert all(not item.read for item in inbox)
    store.mark_read(first.case_id)
    assert [item.read for item in store.inbox()] == [False, True]
    with pytest.raises(ValueError, match="empty"):
        store.add_message(first.case_id, "   ")
    with pytest.raises(CaseNotFoundError):
        store.add_message("missing", "hello")


def test_retention_removes_old_uploaded_images_and_keeps_records(store: CaseStore) -> None:
    old = store.save_case(rgb(1), result())
    fresh = store.save_case(rgb(2), result())
    waiting = store.save_case(rgb(3), result())
    store.mark_uploaded(old.case_id, at=utc_now() - timedelta(days=31))
    store.mark_uploaded(fresh.case_id)
    assert store.apply_retention(days=30) == 1
    assert store.get(old.case_id).image_path is None
    assert old.image_path is not None and not old.image_path.exists()
    assert store.get(fresh.case_id).image_path is not None
    assert store.get(waiting.case_id).image_path is not None, "never before a confirmed upload"
    assert len(store.list_cases()) == 3


def test_quarantine_keeps_the_rest_going(store: CaseStore) -> None:
    good = store.save_case(rgb(1), result())
    bad = store.save_case(rgb(2), result())
    assert bad.image_path is not None
    bad.image_path.write_bytes(b"garbage")
    assert store.read_verified_image(good) == good.image_path.read_bytes()
    with pytest.raises(CaseStoreError, match="quarantined"):
        store.read_verified_image(bad)
    assert [c.case_id for c in store.pending_uploads()] == [good.case_id]
    assert store.counts()["quarantined"] == 1
    assert store.queue_depth() == 1


def test_a_picture_without_a_row_is_kept_and_counted_never_deleted(tmp_path: Path) -> None:
    """A committed picture whose row is missing may be the only copy of a case: opening the
    store keeps it (and files that are not the store's own), and counts it for recovery."""
    s = CaseStore(tmp_path / "c.sqlite3", tmp_path / "img", "k1", 0)
    kept = s.save_case(rgb(), result())
    s.close()
    unrecorded = tmp_path / "img" / "0b7e5c2a-1111-4222-8333-944445555666.jpg"
    unrecorded.write_bytes(b"\xff\xd8a picture from a save that crashed before its commit")
    foreign = tmp_path / "img" / "3f0c.jpg"
    foreign.write_bytes(b"not ours")
    s = CaseStore(tmp_path / "c.sqlite3", tmp_path / "img", "k1", 0)
    assert unrecorded.exists() and foreign.exists()
    assert s.unrecorded_pictures == ("0b7e5c2a-1111-4222-8333-944445555666",)
    assert s.get(kept.case_id).image_path.is_file()
    s.close()


def test_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CaseStoreError, match="damaged"):
        CaseStore(db, tmp_path / "img", "k1", 0)


def test_a_committed_case_survives_a_killed_process(tmp_path: Path) -> None:
    """Save in a child process that is SIGKILLed right after save_case returns: the case and
    its image must be there when the store is opened again."""
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from kiosk.cases.store import CaseStore, OnDeviceResult
        s = CaseStore({str(tmp_path / "c.sqlite3")!r}, {str(tmp_path / "img")!r}, "k1", 0)
        r = OnDeviceResult("acne", 0.9, {{"acne": 0.9}}, False, "routine", "v1")
        case = s.save_case(np.full((64, 64, 3), 120, np.uint8), r)
        print(case.case_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = run_python(script)
    assert child.returncode == -9
    case_id = child.stdout.strip()
    s = CaseStore(tmp_path / "c.sqlite3", tmp_path / "img", "k1", 0)
    case = s.get(case_id)
    assert case.image_path is not None and case.image_path.is_file()
    s.close()
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_body_sites_are_plain_words() -> None:
    assert all(part.isalpha() for site in BODY_SITES for part in site.split("_"))


def test_a_write_that_fails_midway_loses_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    """The disk refuses the image half-way (a file-size limit makes the kernel fail the write,
    as a full disk would): a clear error, no row, no partial file, and the store still works."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, numpy as np
        from kiosk.cases.store import CaseStore, DiskFullError, OnDeviceResult
        s = CaseStore({str(tmp_path / "c.sqlite3")!r}, {str(tmp_path / "img")!r}, "k1", 0)
        r = OnDeviceResult("acne", 0.9, {{"acne": 0.9}}, False, "routine", "v1")
        small = s.save_case(np.full((64, 64, 3), 120, np.uint8), r)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
        try:
            s.save_case(noise, r)
        except DiskFullError as e:
            print("refused:", e)
        print(len(s.list_cases()), small.case_id)
        """
    )
    child = run_python(script)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[0].startswith("refused: could not write the case image")
    count, kept = lines[1].split()
    assert count == "1"
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == [f"{kept}.jpg", f"{kept}.json"]


def test_a_case_id_made_at_capture_is_kept_and_a_second_save_is_the_same_case(
    store: CaseStore,
) -> None:
    from kiosk.cases.store import new_case_id

    case_id = new_case_id()
    first = store.save_case(rgb(), result(), case_id=case_id)
    again = store.save_case(rgb(), result(), case_id=case_id)  # a double tap on Save
    assert first.case_id == again.case_id == case_id
    assert [c.case_id for c in store.list_cases()] == [case_id]
    for bad in ("not-a-uuid", case_id.upper(), "../../etc/passwd"):
        with pytest.raises(ValueError, match="case id"):
            store.save_case(rgb(), result(), case_id=bad)
    assert len(store.list_cases()) == 1
