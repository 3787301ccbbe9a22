"""Opening the case store costs other processes as little as it can: the image folder is
listed once, and the database's quick_check runs while saves elsewhere go on.

Real store, real files: the listing is counted by wrapping os.scandir, and the save that must
not wait is a real save by a second store, made while the opening store's quick_check runs.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk.cases.image_files import TEMP_MAX_AGE_S
from kiosk.cases.store import CaseStore, OnDeviceResult

KIOSK = "k1"


def result() -> OnDeviceResult:
    return OnDeviceResult("nevus", 0.8, {"nevus": 0.8, "other": 0.2}, False, "routine", "v1")


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 200, (64, 64, 3), dtype=np.uint8)


def open_store(tmp_path: Path) -> CaseStore:
    return CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", KIOSK, 0)


def count_listings(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[int]:
    """A counter of os.scandir calls on `folder` (the calls still list it)."""
    calls = [0]
    real_scandir = os.scandir

    def scandir(path=".", *args, **kwargs):
        if Path(path) == folder:
            calls[0] += 1
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    return calls


def test_opening_the_store_lists_the_image_folder_once_and_still_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path) as store:
        case_ids = [store.save_case(picture(i), result()).case_id for i in range(3)]
    images = tmp_path / "images"
    stale = images / f".{case_ids[0]}.jpg.abc123_x.tmp"  # a write that crashed long ago
    fresh = images / f".{case_ids[1]}.json.zz9_q.tmp"  # a write maybe still under way
    for temp in (stale, fresh):
        temp.write_bytes(b"partial")
    old = time.time() - TEMP_MAX_AGE_S - 60
    os.utime(stale, (old, old))
    unrecorded = "0b7e5c2a-1111-4222-8333-944445555666"
    (images / f"{unrecorded}.jpg").write_bytes(b"\xff\xd8 a picture without its row")

    listings = count_listings(monkeypatch, images)
    with open_store(tmp_path) as store:
        assert listings[0] == 1
        assert store.unrecorded_pictures == (unrecorded,)
    assert not stale.exists() and fresh.exists()


def test_opening_with_no_database_yet_lists_the_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "images").mkdir()
    listings = count_listings(monkeypatch, tmp_path / "images")
    with open_store(tmp_path) as store:
        assert listings[0] == 1
        assert store.list_cases() == []


def test_a_save_in_another_store_goes_on_while_the_opening_store_runs_quick_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quick_check reads every page (seconds on a big database on an SD card): the
    touchscreen's saves must not wait for it behind the folder's exclusive lock."""
    touchscreen = open_store(tmp_path)
    touchscreen.save_case(picture(0), result())
    saved: list[str] = []
    during_check: list[bool] = []  # whether the save finished while quick_check ran

    def save() -> None:
        saved.append(touchscreen.save_case(picture(1), result()).case_id)

    def on_statement(sql: str) -> None:
        if sql.strip().lower() == "pragma quick_check" and not during_check:
            saver = threading.Thread(target=save)
            saver.start()
            saver.join(timeout=10)  # blocked for good if the exclusive lock is held
            during_check.append(not saver.is_alive())
            threads.append(saver)

    real_connect = sqlite3.connect
    threads: list[threading.Thread] = []

    def connect(*args, **kwargs):
        db = real_connect(*args, **kwargs)
        db.set_trace_callback(on_statement)
        return db

    monkeypatch.setattr(sqlite3, "connect", connect)
    try:
        with open_store(tmp_path) as sync:
            assert during_check == [True], "the save waited for the opening store"
            assert sync.get(saved[0]).case_id == saved[0]
            assert sync.unrecorded_pictures == ()
    finally:
        for thread in threads:
            thread.join(timeout=30)
        touchscreen.close()
