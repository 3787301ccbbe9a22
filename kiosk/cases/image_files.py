"""The case store's image folder: one JPEG and one JSON sidecar per case, and the rules that
keep them safe from the store itself.

Layout of `images/`:
- `<case_id>.jpg`  the case picture (committed: written to a temp file, fsynced, renamed);
- `<case_id>.json` its sidecar: what the case row holds except the patient reference, so that a
  lost or corrupt database loses no result (`kiosk cases recover` rebuilds rows from them);
- `.<name>.<random>.tmp` a write in progress (kiosk.files.atomic_write_bytes);

The folder's lock file (flock) is `images.lock` beside the folder, so the folder holds only
case files.

What may be deleted, and nothing else: a temp file older than TEMP_MAX_AGE_S (a crashed write:
no writer takes that long, so it cannot be another process's half-written file), and files the
store itself retired (retention, or a save whose row never committed, removed by that save).
A committed picture without a row is NOT garbage — it may be the only copy of a case whose
database was lost — so it is kept and counted until `kiosk cases recover` adopts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.files import atomic_write_bytes

TEMP_MAX_AGE_S = 3600.0
SIDECAR_FORMAT = 1
_CASE_FILE = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jpg$")
# atomic_write_bytes names its temp files ".<target name>.<random>.tmp"
_TEMP_FILE = re.compile(r"^\.[0-9a-f-]{36}\.(jpg|json)\.[A-Za-z0-9_]+\.tmp$")


def image_name(case_id: str) -> str:
    return f"{case_id}.jpg"


def sidecar_name(case_id: str) -> str:
    return f"{case_id}.json"


@dataclass(frozen=True)
class Listing:
    case_ids: tuple[str, ...]  # committed pictures, sorted
    temp_files: tuple[str, ...]  # names of writes in progress or crashed (any age)


@dataclass(frozen=True)
class ImageFolder:
    path: Path

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def listing(self) -> Listing:
        """One pass over the folder (on an SD card with thousands of cases, each pass costs)."""
        case_ids, temp_files = [], []
        with os.scandir(self.path) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if m := _CASE_FILE.match(entry.name):
                    case_ids.append(m.group(1))
                elif _TEMP_FILE.match(entry.name):
                    temp_files.append(entry.name)
        return Listing(tuple(sorted(case_ids)), tuple(temp_files))

    def committed_case_ids(self) -> list[str]:
        """Case ids of every committed picture in the folder, sorted."""
        return list(self.listing().case_ids)

    def write_sidecar(self, case_id: str, record: dict[str, Any]) -> None:
        body = {"format": SIDECAR_FORMAT, **record}
        data = (json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        atomic_write_bytes(self.path / sidecar_name(case_id), data, mode=0o600)

    def read_sidecar(self, case_id: str) -> dict[str, Any] | None:
        """The sidecar's record, or None when it is missing or unreadable."""
        try:
            body = json.loads((self.path / sidecar_name(case_id)).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("case_id") != case_id:
            return None
        return body

    def remove_case_files(self, case_id: str) -> None:
        for name in (image_name(case_id), sidecar_name(case_id)):
            (self.path / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def shared_lock(self) -> Iterator[None]:
        """Held by a save from its first file write to its row commit: cleanup cannot run
        while any process is between the two."""
        with self._locked(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def exclusive_lock(self) -> Iterator[None]:
        """Held by cleanup and by the store's consistency check on open (and by recovery):
        no save in any process is between its first file and its row commit meanwhile."""
        with self._locked(fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, operation)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def remove_stale_temp_files(self, names: Iterable[str]) -> int:
        """Delete crashed writes among `names` (Listing.temp_files): those older than
        TEMP_MAX_AGE_S. The caller holds exclusive_lock() and listed them under it."""
        now = time.time()
        removed = 0
        for name in names:
            path = self.path / name
            with contextlib.suppress(FileNotFoundError):
                if now - path.lstat().st_mtime > TEMP_MAX_AGE_S:
                    path.unlink()
                    removed += 1
        return removed


def in_use_lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".inuse")


def hold_in_use(db_path: Path) -> int:
    """A shared flock on the database's in-use file, held until the returned fd is closed."""
    fd = os.open(in_use_lock_path(db_path), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def try_hold_alone(db_path: Path) -> int | None:
    """The in-use file's exclusive lock, or None when any open store holds it shared."""
    fd = os.open(in_use_lock_path(db_path), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
