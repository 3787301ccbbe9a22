"""`kiosk cases recover`: rebuild the case database from what is on disk, losing nothing.

Used when the store refuses to open (StoreNeedsRecoveryError: the database is missing, empty
or damaged while pictures are present) and to adopt pictures whose row never committed.

0. It refuses while any other process has the store open (the kiosk, `kiosk sync`): their
   connections would go on writing to the old file.
1. Every row still readable from the old database is kept as it was (patient reference,
   status, review, messages): a damaged file often still reads, table by table.
2. The new database is built beside it (`cases.sqlite3.recovering`) and only when complete is
   the old one (and its -wal/-shm files) moved aside, never deleted
   (`cases.sqlite3.broken-<UTC time>`), and the new one renamed into place. A recovery that
   fails half-way leaves everything as it was, so it can be run again.
3. Every picture that still has no row gets one from its sidecar (kiosk.cases.image_files): the
   on-device result, time, body site and provenance, status "saved" so it is sent again (the
   upload is idempotent: the cloud keeps its own copy and review). The patient reference is not
   in sidecars, so such a case comes back without it.
4. A picture without a usable sidecar, or whose bytes no longer match the sidecar's sha256, is
   quarantined: kept, listed, never uploaded, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.cases.cloud_schema import AUTHOR_HEALTH_WORKER
from kiosk.cases.image_files import ImageFolder, image_name, try_hold_alone
from kiosk.cases.store import CaseStatus, CaseStore, CaseStoreError
from kiosk.files import fsync_directory

# A quarantined picture with no record: nothing is known of what the kiosk said about it.
_UNKNOWN_RESULT = {
    "label": "other",
    "confidence": 0.0,
    "probabilities": {},
    "abstained": True,
    "urgency": "soon",
    "model_version": "unknown",
}


@dataclass
class RecoveryReport:
    moved_aside: list[str] = field(default_factory=list)  # the old database files, renamed
    rows_kept: int = 0  # cases read back from the old database
    messages_kept: int = 0
    from_sidecars: int = 0  # cases rebuilt from a picture and its sidecar
    quarantined: list[str] = field(default_factory=list)  # case ids kept but not uploadable
    old_database_error: str | None = None  # why the old database could not be read (if so)

    def as_dict(self) -> dict[str, Any]:
        return {
            "moved_aside": self.moved_aside,
            "rows_kept": self.rows_kept,
            "messages_kept": self.messages_kept,
            "from_sidecars": self.from_sidecars,
            "quarantined": self.quarantined,
            "old_database_error": self.old_database_error,
        }


def recover(
    db_path: str | Path, images_dir: str | Path, kiosk_id: str, min_free_mb: int = 0
) -> RecoveryReport:
    db_path, folder = Path(db_path), ImageFolder(Path(images_dir))
    report = RecoveryReport()
    alone = try_hold_alone(db_path)
    if alone is None:
        raise CaseStoreError(
            "the case store is open in another process (the kiosk or `kiosk sync`): stop them "
            "first (`sudo systemctl stop skinscan-kiosk`), then recover; nothing was changed"
        )
    try:
        # No save or cleanup in any process while the database is being replaced.
        with folder.exclusive_lock():
            old_rows, old_messages, report.old_database_error = _read_old_database(db_path)
            old_rows, old_messages = _as_current_schema(old_rows, old_messages)
            # The new database is built beside the old one and swapped in only when complete:
            # a recovery that fails half-way leaves the old files where they were.
            building = db_path.with_name(db_path.name + ".recovering")
            _remove_database(building)
            try:
                _build(building, folder, kiosk_id, min_free_mb, old_rows, old_messages, report)
                report.moved_aside = _move_aside(db_path)
                building.replace(db_path)
                fsync_directory(db_path.parent)
            finally:
                _remove_database(building)
    finally:
        os.close(alone)
    return report


def _build(
    path: Path,
    folder: ImageFolder,
    kiosk_id: str,
    min_free_mb: int,
    old_rows: list[dict],
    old_messages: list[dict],
    report: RecoveryReport,
) -> None:
    store = CaseStore(path, folder.path, kiosk_id, min_free_mb, new_database_ok=True)
    try:
        with store._transaction() as db:
            columns = {r["name"] for r in db.execute("PRAGMA table_info(cases)")}
            for row in old_rows:
                report.rows_kept += _insert(db, "cases", row, columns)
            message_columns = {r["name"] for r in db.execute("PRAGMA table_info(messages)")}
            for row in old_messages:
                report.messages_kept += _insert(db, "messages", row, message_columns)
            known = {r["case_id"] for r in db.execute("SELECT case_id FROM cases")}
            for case_id in folder.committed_case_ids():
                if case_id in known:
                    continue
                problem = _adopt(db, folder, case_id, kiosk_id)
                if problem is None:
                    report.from_sidecars += 1
                else:
                    report.quarantined.append(case_id)
        # One self-contained file to rename into place (no -wal beside it); the store turns
        # WAL on again when it next opens.
        store._db.execute("PRAGMA journal_mode=DELETE")
    finally:
        store.close()


def _move_aside(db_path: Path) -> list[str]:
    """Rename the old database files to `<name>.broken-<UTC time>[-n]`; never delete them."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    n = 0
    while True:
        tag = f"broken-{stamp}" + (f"-{n}" if n else "")
        if not any(Path(f"{db_path}.{tag}{s}").exists() for s in ("", "-wal", "-shm")):
            break
        n += 1
    moved = []
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{db_path}{suffix}")
        if old.exists():
            aside = Path(f"{db_path}.{tag}{suffix}")
            old.rename(aside)
            moved.append(aside.name)
    return moved


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".inuse"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _read_old_database(db_path: Path) -> tuple[list[dict], list[dict], str | None]:
    """Whatever rows the old file still gives, table by table; never raises."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return [], [], None
    rows: list[dict] = []
    messages: list[dict] = []
    error = None
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        return [], [], str(e)
    db.row_factory = sqlite3.Row
    try:
        for table, out in (("cases", rows), ("messages", messages)):
            try:
                out.extend(dict(r) for r in db.execute(f"SELECT * FROM {table}"))
            except sqlite3.Error as e:
                error = f"{table}: {e}"
    finally:
        db.close()
    return rows, messages, error


def _as_current_schema(rows: list[dict], messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """Rows of an older database as the store's migration would leave them: before schema 3
    nothing was signed, so its reviews and specialist messages are kept aside as unverified
    (CaseStore._migrate_unsigned_specialist_content), never restored as the specialist's."""
    if rows and "review_unverified" not in rows[0]:
        rows = [
            {**r, "review_unverified": r.get("review"), "review": None, "review_read_at": None}
            for r in rows
        ]
    if messages and "verified" not in messages[0]:
        messages = [
            {**m, "verified": int(m.get("author") == AUTHOR_HEALTH_WORKER)} for m in messages
        ]
    return rows, messages


def _insert(db: sqlite3.Connection, table: str, row: dict, columns: set[str]) -> int:
    kept = {k: v for k, v in row.items() if k in columns}
    names = ", ".join(kept)
    marks = ", ".join("?" for _ in kept)
    try:
        cursor = db.execute(
            f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",
            tuple(kept.values()),
        )
    except sqlite3.Error:
        return 0  # a row the damage made inconsistent (e.g. a message of a lost case)
    return cursor.rowcount


def _adopt(db: sqlite3.Connection, folder: ImageFolder, case_id: str, kiosk_id: str) -> str | None:
    """A row for a picture that has none; returns why it is quarantined, or None."""
    picture = folder.path / image_name(case_id)
    data = picture.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    sidecar = folder.read_sidecar(case_id)
    problem = None
    if sidecar is None:
        problem = "recovered without its record: the on-device result is unknown"
    elif sidecar.get("image_sha256") != sha256:
        problem = "recovered picture does not match its record (sha256 differs)"
    record = sidecar or {}
    created = record.get("created_at") or datetime.fromtimestamp(
        picture.stat().st_mtime, UTC
    ).isoformat(timespec="microseconds")
    db.execute(
        "INSERT INTO cases (case_id, kiosk_id, created_at, patient_ref, body_site, consent, "
        "image_file, image_sha256, image_bytes, on_device, status, provenance, "
        "quarantine_error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            case_id,
            str(record.get("kiosk_id") or kiosk_id),
            created,
            "",
            str(record.get("body_site") or ""),
            1,
            picture.name,
            sha256,
            len(data),
            json.dumps(record.get("on_device") if problem is None else _UNKNOWN_RESULT),
            CaseStatus.SAVED.value,
            json.dumps(record["provenance"]) if record.get("provenance") else None,
            problem,
        ),
    )
    return problem
