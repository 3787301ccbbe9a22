"""The case store never deletes what it cannot account for (issue 12, items 1 and 2).

Real store, real files, real processes: the database deleted, emptied or corrupted with
pictures present; several processes saving and opening at once; recovery from sidecars.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk.cases.image_files import TEMP_MAX_AGE_S
from kiosk.cases.provenance import Provenance
from kiosk.cases.recovery import recover
from kiosk.cases.store import CaseStore, OnDeviceResult, StoreNeedsRecoveryError
from tests.kiosk_cli import run_kiosk

KIOSK = "k1"


def result(label: str = "melanoma") -> OnDeviceResult:
    return OnDeviceResult(label, 0.8, {label: 0.8, "other": 0.2}, False, "urgent", "v1")


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 200, (64, 64, 3), dtype=np.uint8)


def fill(tmp_path: Path, n: int) -> list[str]:
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)
    ids = [
        store.save_case(
            picture(i),
            result(),
            patient_ref=f"REF {i}",
            body_site="arm",
            provenance=Provenance(source="replay", lens="dermoscopic", frames_averaged=8),
        ).case_id
        for i in range(n)
    ]
    store.close()
    return ids


def pictures(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "images").glob("*.jpg"))


def kiosk_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SKINSCAN_DATA_DIR=str(tmp_path), SKINSCAN_KIOSK_ID=KIOSK)
    return run_kiosk(*args, env=env, timeout=120)


def corrupt(db: Path) -> None:
    """Overwrite the middle of the file (its b-tree pages), keeping the header."""
    size = db.stat().st_size
    assert size > 3 * 4096, "the database must span several pages for this test"
    with db.open("r+b") as f:
        f.seek(4096 + 16)
        f.write(os.urandom(size - 2 * 4096))


@pytest.mark.parametrize("damage", ["deleted", "emptied", "corrupted"])
def test_a_lost_or_damaged_database_refuses_to_start_over_and_deletes_nothing(
    tmp_path: Path, damage: str
) -> None:
    fill(tmp_path, 40)
    before = pictures(tmp_path)
    db = tmp_path / "cases.sqlite3"
    if damage == "deleted":
        db.unlink()
    elif damage == "emptied":
        db.write_bytes(b"")
    else:
        corrupt(db)
    with pytest.raises(StoreNeedsRecoveryError, match="kiosk cases recover"):
        CaseStore(db, tmp_path / "images", KIOSK, 0)
    listed = kiosk_cli(tmp_path, "cases")
    assert listed.returncode == 2
    assert "Traceback" not in listed.stderr
    assert len(listed.stderr.strip().splitlines()) == 1, listed.stderr
    assert "kiosk cases recover" in listed.stderr
    assert pictures(tmp_path) == before, "no picture may disappear"
    if damage != "corrupted":
        assert not db.exists() or db.stat().st_size == 0, "no fresh database was made over them"


def test_recover_rebuilds_every_case_from_its_picture_and_sidecar(tmp_path: Path) -> None:
    ids = fill(tmp_path, 25)
    (tmp_path / "cases.sqlite3").unlink()
    done = kiosk_cli(tmp_path, "cases", "recover", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["from_sidecars"] == 25 and report["quarantined"] == []
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)
    cases = {c.case_id: c for c in store.list_cases(limit=None)}
    assert sorted(cases) == sorted(ids)
    for case in cases.values():
        assert case.on_device == result(), "the on-device result is not lost"
        assert case.body_site == "arm"
        assert case.provenance is not None and case.provenance.frames_averaged == 8
        assert case.patient_ref == "", "sidecars never hold the patient reference"
        data = store.read_verified_image(case)
        assert hashlib.sha256(data).hexdigest() == case.image_sha256
    assert len(store.pending_uploads()) == 25, "recovered cases are sent again (idempotent)"
    store.close()


def test_recover_keeps_the_readable_rows_of_a_damaged_database_and_moves_it_aside(
    tmp_path: Path,
) -> None:
    fill(tmp_path, 40)
    db = tmp_path / "cases.sqlite3"
    corrupt(db)
    report = recover(db, tmp_path / "images", KIOSK)
    assert report.moved_aside and (tmp_path / report.moved_aside[0]).exists(), "kept, not deleted"
    assert report.rows_kept + report.from_sidecars == 40
    assert report.quarantined == []
    store = CaseStore(db, tmp_path / "images", KIOSK, 0)
    assert len(store.list_cases(limit=None)) == 40
    store.close()


def test_a_picture_without_a_usable_record_is_quarantined_not_lost(tmp_path: Path) -> None:
    ids = fill(tmp_path, 3)
    (tmp_path / "images" / f"{ids[0]}.json").unlink()
    (tmp_path / "images" / f"{ids[1]}.jpg").write_bytes(b"\xff\xd8 changed bytes")
    (tmp_path / "cases.sqlite3").unlink()
    report = recover(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK)
    assert sorted(report.quarantined) == sorted(ids[:2])
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)
    by_id = {c.case_id: c for c in store.list_cases(limit=None)}
    assert "unknown" in by_id[ids[0]].quarantine_error
    assert "sha256" in by_id[ids[1]].quarantine_error
    assert by_id[ids[2]].quarantine_error is None
    assert [c.case_id for c in store.pending_uploads()] == [ids[2]]
    store.close()


def test_only_stale_temp_files_of_the_stores_own_pattern_are_removed(tmp_path: Path) -> None:
    [case_id] = fill(tmp_path, 1)
    images = tmp_path / "images"
    stale = images / f".{case_id}.jpg.abc123_x.tmp"
    fresh = images / ".0b7e5c2a-1111-4222-8333-944445555666.jpg.zz9_q.tmp"
    foreign = images / "notes.tmp"
    for f in (stale, fresh, foreign):
        f.write_bytes(b"partial")
    old = time.time() - TEMP_MAX_AGE_S - 60
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    CaseStore(tmp_path / "cases.sqlite3", images, KIOSK, 0).close()
    assert not stale.exists()
    assert fresh.exists(), "a write in progress in another process is never touched"
    assert foreign.exists(), "files that are not the store's own are never touched"


def test_saves_and_opens_in_several_processes_lose_nothing(tmp_path: Path) -> None:
    """Two processes save 150 cases each while a third opens the store in a loop (as the UI,
    `kiosk sync` and `kiosk cases` do): every committed case has its picture."""
    CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0).close()
    common = f"""
        import numpy as np
        from kiosk.cases.store import CaseStore, OnDeviceResult
        def open_store():
            return CaseStore({str(tmp_path / "cases.sqlite3")!r}, {str(tmp_path / "images")!r},
                             "k1", 0)
        r = OnDeviceResult("acne", 0.9, {{"acne": 0.9}}, False, "routine", "v1")
    """
    saver = textwrap.dedent(
        common
        + """
        s = open_store()
        rng = np.random.default_rng()
        for i in range(150):
            s.save_case(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), r)
        print("saved", flush=True)
        """
    )
    opener = textwrap.dedent(
        common
        + """
        for i in range(150):
            open_store().close()
        print("opened", flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for code in (saver, saver, opener)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)
    cases = store.list_cases(limit=None)
    assert len(cases) == 300
    for case in cases:
        assert hashlib.sha256(store.read_verified_image(case)).hexdigest() == case.image_sha256
    assert store.unrecorded_pictures == ()
    store.close()


def test_recovering_an_old_database_keeps_its_unsigned_reviews_aside(tmp_path: Path) -> None:
    """A pre-signing (schema 2) database: recovery treats its review and specialist message as
    the store's migration does — kept aside as unverified, never restored as the specialist's."""
    import sqlite3

    [case_id] = fill(tmp_path, 1)
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)
    store.apply_remote(case_id, "reviewed", None, {"label": "other", "recommendation": "Fine."})
    store.add_remote_message("m1", case_id, "dermatologist", "Dr. X", "No need to refer.", None)
    store.close()
    with sqlite3.connect(tmp_path / "cases.sqlite3") as db:
        db.execute("ALTER TABLE cases DROP COLUMN review_unverified")
        db.execute("ALTER TABLE messages DROP COLUMN verified")
        db.execute("PRAGMA user_version=2")
    recover(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK)
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)
    case = store.get(case_id)
    assert case.review is None and case.unverified_review is not None
    assert store.messages(case_id) == [] and store.unread_count() == 0
    store.close()


def test_recover_refuses_while_the_store_is_open_elsewhere(tmp_path: Path) -> None:
    fill(tmp_path, 2)
    running = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)  # the kiosk
    refused = kiosk_cli(tmp_path, "cases", "recover")
    assert refused.returncode == 2 and "open in another process" in refused.stderr
    assert not list(tmp_path.glob("cases.sqlite3.broken-*")), "nothing was changed"
    running.close()
    assert kiosk_cli(tmp_path, "cases", "recover").returncode == 0


def test_a_recovery_that_fails_half_way_leaves_the_old_database_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (a picture that cannot be read on a failing SD card): the old database
    and its rows are where they were, and a second recovery gets them all."""
    import kiosk.cases.recovery as recovery

    ids = fill(tmp_path, 4)
    db = tmp_path / "cases.sqlite3"
    for case_id in ids[:2]:  # two rows lost, so recovery must adopt their pictures
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM cases WHERE case_id = ?", (case_id,))
    adopt = recovery._adopt
    calls = []

    def failing_adopt(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return adopt(*args)

    monkeypatch.setattr(recovery, "_adopt", failing_adopt)
    with pytest.raises(OSError):
        recover(db, tmp_path / "images", KIOSK)
    assert not list(tmp_path.glob("cases.sqlite3.*recovering*"))
    assert not list(tmp_path.glob("cases.sqlite3.broken-*")), "the old one stays in place"
    monkeypatch.setattr(recovery, "_adopt", adopt)
    report = recover(db, tmp_path / "images", KIOSK)
    assert (report.rows_kept, report.from_sidecars) == (2, 2)
    store = CaseStore(db, tmp_path / "images", KIOSK, 0)
    assert {c.case_id for c in store.list_cases(limit=None)} == set(ids)
    assert {c.patient_ref for c in store.list_cases(limit=None) if c.case_id in ids[2:]} == {
        "REF 2",
        "REF 3",
    }, "the rows the old database still had come back whole"
    store.close()
