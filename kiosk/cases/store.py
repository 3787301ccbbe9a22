"""The kiosk's case store and outbox: SQLite (WAL) plus one JPEG file per case.

A saved case must survive power cuts and weeks offline, so:
- the image and its JSON sidecar (the row's data without the patient reference) are written
  atomically (temp file, fsync, rename, fsync the directory) *before* the row commits; a crash
  in between leaves a picture without a row, never a row without its picture;
- nothing is deleted that cannot be proven garbage (kiosk.cases.image_files): a picture without
  a row is kept and counted, and a missing, empty or damaged database with pictures present is
  refused (StoreNeedsRecoveryError) instead of being replaced by an empty one —
  `kiosk cases recover` (kiosk.cases.recovery) rebuilds the rows;
- SQLite runs in WAL mode with synchronous=FULL: a commit that returned is on disk;
- case ids are UUIDs made here, so every upload can be repeated without creating duplicates.

States move forward only: saved → uploaded → classified → reviewed. A case whose image turns
out unreadable is quarantined with its error and leaves the upload queue; the others carry on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from kiosk.cases.cloud_schema import AUTHOR_DERMATOLOGIST, AUTHOR_HEALTH_WORKER
from kiosk.cases.image_files import ImageFolder, Listing, hold_in_use, image_name
from kiosk.cases.provenance import Provenance
from kiosk.errors import SkinscanError
from kiosk.files import atomic_write_bytes
from kiosk.model.conditions import URGENT_CONDITIONS

if TYPE_CHECKING:
    from kiosk.config import KioskConfig
    from kiosk.model.decision import Decision

log = logging.getLogger(__name__)

# 2: cases.provenance; 3: cases.review_unverified, messages.verified; 4: cases.full_upload,
# upload_sessions
SCHEMA_VERSION = 4
JPEG_QUALITY = 92
MAX_PATIENT_REF = 32
MAX_MESSAGE_CHARS = 1000
_PATIENT_REF_PATTERN = re.compile(r"^[\w -]*$")
_MB = 1024 * 1024

BODY_SITES: tuple[str, ...] = (
    "face",
    "scalp",
    "neck",
    "chest",
    "abdomen",
    "back",
    "arm",
    "hand",
    "leg",
    "foot",
    "other",
    # With a side (the touchscreen's Left/Right); the plain limb names above stay valid.
    "arm_left",
    "arm_right",
    "hand_left",
    "hand_right",
    "leg_left",
    "leg_right",
    "foot_left",
    "foot_right",
)


class CaseStatus(StrEnum):
    SAVED = "saved"
    UPLOADED = "uploaded"
    CLASSIFIED = "classified"
    REVIEWED = "reviewed"

    @property
    def rank(self) -> int:
        return _STATUS_ORDER.index(self)


_STATUS_ORDER = (CaseStatus.SAVED, CaseStatus.UPLOADED, CaseStatus.CLASSIFIED, CaseStatus.REVIEWED)


class FullUpload(StrEnum):
    """Where the full-resolution picture of a sent case stands (kiosk.cases.sync): a case
    counts as sent once its compact copy and document are stored; the full picture follows."""

    WAITING = "waiting"  # only the compact copy is in the cloud: the full picture is queued
    DONE = "done"  # Storage holds the full picture (or it went whole with the document)


@dataclass(frozen=True)
class UploadSession:
    """A GCS resumable upload under way (kiosk.cases.resumable). The URI lets whoever holds
    it write that one object: it lives only here (the store is 0600) and is never logged."""

    object_path: str
    case_id: str
    uri: str
    stored: int  # bytes the server held when last asked
    total: int


class CaseStoreError(SkinscanError):
    """The case store cannot do what was asked; the message says why."""


class StoreNeedsRecoveryError(CaseStoreError):
    """The database is missing, empty or damaged while case pictures are present: the store
    refuses to start over (that would hide every saved case) and nothing is deleted."""


class DiskFullError(CaseStoreError):
    """Too little free space to save a case safely; the message is fit to show the user."""


class CaseNotFoundError(CaseStoreError):
    pass


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class OnDeviceResult:
    label: str
    confidence: float
    probabilities: dict[str, float]
    abstained: bool
    urgency: str
    model_version: str

    @classmethod
    def from_decision(cls, decision: Decision, model_version: str) -> OnDeviceResult:
        return cls(
            label=decision.label,
            confidence=round(float(decision.confidence), 4),
            probabilities={k: round(float(v), 4) for k, v in decision.probabilities.items()},
            abstained=bool(decision.abstained),
            urgency=str(decision.urgency),
            model_version=model_version,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OnDeviceResult:
        return cls(
            label=str(d["label"]),
            confidence=float(d["confidence"]),
            probabilities={str(k): float(v) for k, v in dict(d["probabilities"]).items()},
            abstained=bool(d["abstained"]),
            urgency=str(d["urgency"]),
            model_version=str(d.get("model_version", "")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
            "abstained": self.abstained,
            "urgency": self.urgency,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class Review:
    label: str
    recommendation: str
    reviewer: str
    reviewed_at: datetime | None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Review:
        return cls(
            label=str(d.get("label", "")),
            recommendation=str(d.get("recommendation", "")),
            reviewer=str(d.get("reviewer", "")),
            reviewed_at=_parse_time(d.get("reviewed_at")),
        )

    @property
    def urgent(self) -> bool:
        """The dermatologist names a possible cancer: the patient must be called back,
        whatever the kiosk said at the time."""
        return self.label in URGENT_CONDITIONS

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "recommendation": self.recommendation,
            "reviewer": self.reviewer,
            "reviewed_at": _format_time(self.reviewed_at),
        }


@dataclass(frozen=True)
class Case:
    case_id: str
    kiosk_id: str
    created_at: datetime
    patient_ref: str
    body_site: str
    consent: bool
    image_path: Path | None  # None once the retention rule removed the local copy
    image_sha256: str
    image_bytes: int
    on_device: OnDeviceResult
    status: CaseStatus
    uploaded_at: datetime | None = None
    cloud: dict[str, Any] | None = None
    review: Review | None = None
    review_read: bool = False
    quarantine_error: str | None = None
    upload_attempts: int = 0
    last_error: str | None = None
    provenance: Provenance | None = None  # how the picture was taken (None: saved before v2)
    # The last review that did not verify (forged, tampered, replayed, or unsigned): kept for
    # the record, never shown as the specialist's. `review` only ever holds a verified one.
    unverified_review: Review | None = None
    full_upload: FullUpload = FullUpload.DONE  # the full picture, once the case is sent

    @property
    def quarantined(self) -> bool:
        return self.quarantine_error is not None


@dataclass(frozen=True)
class Message:
    message_id: str
    case_id: str
    author: str  # AUTHOR_HEALTH_WORKER (from this kiosk) or AUTHOR_DERMATOLOGIST
    author_name: str
    body: str
    created_at: datetime
    sent_at: datetime | None = None  # outgoing: when Firestore confirmed it
    read_at: datetime | None = None  # incoming: when the health worker opened it
    # False: it came from the cloud without a valid specialist signature (or claims to be
    # from this kiosk but is not one of its own); kept aside, never shown in the thread.
    verified: bool = True

    @property
    def outgoing(self) -> bool:
        return self.author == AUTHOR_HEALTH_WORKER


@dataclass(frozen=True)
class InboxItem:
    case_id: str
    kind: str  # "review" or "message"
    body: str
    author_name: str
    at: datetime
    read: bool
    case: Case = field(repr=False)
    verified: bool = True  # False: kept aside, not from the specialist (`kiosk inbox` only)
    label: str = ""  # a review's diagnosis

    @property
    def urgent(self) -> bool:
        review = self.case.review
        return self.kind == "review" and self.verified and review is not None and review.urgent


# --------------------------------------------------------------------------- time helpers


def utc_now() -> datetime:
    return datetime.now(UTC)


def _format_time(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value))


# --------------------------------------------------------------------------- the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id          TEXT PRIMARY KEY,
    kiosk_id         TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    patient_ref      TEXT NOT NULL DEFAULT '',
    body_site        TEXT NOT NULL DEFAULT '',
    consent          INTEGER NOT NULL,
    image_file       TEXT,
    image_sha256     TEXT NOT NULL,
    image_bytes      INTEGER NOT NULL,
    on_device        TEXT NOT NULL,
    status           TEXT NOT NULL,
    uploaded_at      TEXT,
    cloud            TEXT,
    review           TEXT,
    review_read_at   TEXT,
    image_deleted_at TEXT,
    quarantine_error TEXT,
    upload_attempts  INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    provenance       TEXT,
    review_unverified TEXT,
    full_upload      TEXT NOT NULL DEFAULT 'done'
);
CREATE INDEX IF NOT EXISTS cases_queue ON cases (status, created_at);
CREATE TABLE IF NOT EXISTS messages (
    message_id  TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (case_id),
    author      TEXT NOT NULL,
    author_name TEXT NOT NULL DEFAULT '',
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    read_at     TEXT,
    verified    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS messages_case ON messages (case_id, created_at);
CREATE TABLE IF NOT EXISTS upload_sessions (
    object_path TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    uri         TEXT NOT NULL,
    stored      INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class CaseStore:
    """All access to cases.sqlite3 and the image files. Thread-safe; several processes (the UI
    and `kiosk sync`) may open the same store: WAL lets one writer and many readers share it."""

    def __init__(
        self,
        db_path: str | Path,
        images_dir: str | Path,
        kiosk_id: str,
        min_free_mb: int = 200,
        *,
        new_database_ok: bool = False,
    ) -> None:
        """`new_database_ok`: only for recovery, which holds the folder's exclusive lock, moved
        the broken database aside itself and is about to adopt the pictures."""
        self.db_path = Path(db_path)
        self.images_dir = Path(images_dir)
        self.kiosk_id = kiosk_id
        self.min_free_mb = min_free_mb
        self.folder = ImageFolder(self.images_dir)
        self._lock = threading.RLock()
        self._prepare_folders()
        # Held (shared) while this store is open, so `kiosk cases recover` can tell that the
        # kiosk or `kiosk sync` still has the database open and refuse to swap it under them.
        self._in_use = hold_in_use(self.db_path)
        try:
            if new_database_ok:
                self._connect()
                self._check_files(self.folder.listing(), new_database_ok=True)
                return
            # An existing database is opened (and quick_check'ed: it reads every page, seconds
            # on a big one) before the exclusive lock, which would hold up every save in the
            # other processes meanwhile; in WAL mode reading blocks no writer.
            existing = bool(self._database_size())
            if existing:
                self._connect()
            # Saves hold the shared lock from their first file to their commit: under the
            # exclusive lock, pictures and rows are consistent, so a picture of a save in
            # flight in another process is never taken for a lost case (nor for garbage).
            with self.folder.exclusive_lock():
                listing = self.folder.listing()
                if not existing:
                    # Whether a database may be made depends on the pictures: decided with
                    # both seen under the lock (its quick_check is instant).
                    self._refuse_new_database_over_pictures(listing.case_ids)
                    self._connect()
                self._check_files(listing, new_database_ok=False)
        except BaseException:
            # A store that did not open holds nothing (closing twice is harmless).
            if hasattr(self, "_db"):
                self._db.close()
            os.close(self._in_use)
            raise

    def _check_files(self, listing: Listing, new_database_ok: bool) -> None:
        """Pictures against rows, then cleanup, from one listing of the folder taken under
        its exclusive lock (recovery, the one caller with `new_database_ok`, holds it)."""
        known = {r["case_id"] for r in self._query("SELECT case_id FROM cases")}
        pictures = listing.case_ids
        if not new_database_ok and pictures and not known:
            raise StoreNeedsRecoveryError(
                f"the case database {self.db_path} holds no cases but {len(pictures)} case "
                f"pictures are in {self.images_dir}: nothing was deleted. Run `kiosk cases "
                "recover` to rebuild the records from the pictures."
            )
        # Pictures without a row: a save that crashed before its commit, or rows lost. Kept
        # (they may be the only copy of a case) and counted; `kiosk cases recover` adopts them.
        self.unrecorded_pictures: tuple[str, ...] = tuple(c for c in pictures if c not in known)
        if self.unrecorded_pictures:
            log.warning(
                "%d case picture(s) have no record in the database; run `kiosk cases recover`",
                len(self.unrecorded_pictures),
            )
        self._remove_retired_files(listing)

    def _prepare_folders(self) -> None:
        """The data and image folders, private (health data: only the kiosk's own user may
        read any of it); every way this can fail is one line naming the folder."""
        data_dir = self.db_path.parent
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.images_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.images_dir.chmod(0o700)
        except (FileExistsError, NotADirectoryError):
            raise CaseStoreError(
                f"the data directory {data_dir} (or its images folder) is a file, not a folder"
            ) from None
        except OSError as e:
            raise CaseStoreError(
                f"cannot use the data directory {data_dir}: {e.strerror or e}"
            ) from None
        for folder in (data_dir, self.images_dir):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise CaseStoreError(
                    f"the data directory {folder} is read-only for this user: cases can be "
                    "neither saved nor read safely (check its owner and permissions)"
                )

    def _database_size(self) -> int | None:
        """The database file's size in bytes; None when there is none."""
        try:
            return self.db_path.stat().st_size
        except FileNotFoundError:
            return None

    def _refuse_new_database_over_pictures(self, pictures: tuple[str, ...]) -> None:
        size = self._database_size()
        if size or not pictures:
            return
        state = "missing" if size is None else "empty"
        raise StoreNeedsRecoveryError(
            f"the case database {self.db_path} is {state} but {len(pictures)} case pictures "
            f"are in {self.images_dir}: nothing was deleted and no new database was made. "
            "Run `kiosk cases recover` to rebuild the records from the pictures."
        )

    def _connect(self) -> sqlite3.Connection:
        # The database file is made private before SQLite opens it; its WAL files inherit that.
        try:
            os.close(os.open(self.db_path, os.O_CREAT | os.O_WRONLY, 0o600))
            self.db_path.chmod(0o600)
        except IsADirectoryError:
            raise CaseStoreError(f"the case database {self.db_path} is a folder") from None
        except OSError as e:
            raise CaseStoreError(
                f"cannot open the case database {self.db_path}: {e.strerror or e}"
            ) from None
        db = sqlite3.connect(
            self.db_path, timeout=10.0, check_same_thread=False, isolation_level=None
        )
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            problems = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems[:3]))
            self._db = db
            with self._transaction():
                self._create_schema()
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" in str(e) or "busy" in str(e):
                raise CaseStoreError(f"the case database {self.db_path} is busy: {e}") from None
            raise CaseStoreError(f"cannot use the case database {self.db_path}: {e}") from None
        except sqlite3.DatabaseError as e:
            db.close()
            raise StoreNeedsRecoveryError(
                f"the case database {self.db_path} is damaged ({e}): nothing was deleted. Run "
                "`kiosk cases recover` to rebuild the records from the pictures."
            ) from None
        return db

    @classmethod
    def open(cls, config: KioskConfig) -> CaseStore:
        if not config.kiosk_id:
            raise CaseStoreError("the kiosk id is not resolved (config.resolve_kiosk_id)")
        return cls(config.cases_db, config.images_dir, config.kiosk_id, config.min_free_mb)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            os.close(self._in_use)

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create_schema(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(cases)")}
        if "provenance" not in columns:  # a version-1 database: cases saved before provenance
            self._db.execute("ALTER TABLE cases ADD COLUMN provenance TEXT")
        if "review_unverified" not in columns:  # before version 3: nothing was signed
            self._migrate_unsigned_specialist_content()
        if "full_upload" not in columns:
            # Before version 4 every case went whole: a sent case's full picture is stored.
            self._db.execute(
                "ALTER TABLE cases ADD COLUMN full_upload TEXT NOT NULL DEFAULT 'done'"
            )
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _migrate_unsigned_specialist_content(self) -> None:
        """Reviews and specialist messages received before signatures existed cannot be
        told from forgeries: they are kept aside as unverified, never shown as the
        specialist's (a genuine one comes back signed when the console sends it again)."""
        self._db.execute("ALTER TABLE cases ADD COLUMN review_unverified TEXT")
        self._db.execute(
            "UPDATE cases SET review_unverified = review, review = NULL, review_read_at = NULL "
            "WHERE review IS NOT NULL"
        )
        self._db.execute("ALTER TABLE messages ADD COLUMN verified INTEGER NOT NULL DEFAULT 1")
        self._db.execute(
            "UPDATE messages SET verified = 0 WHERE author != ?", (AUTHOR_HEALTH_WORKER,)
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _remove_retired_files(self, listing: Listing) -> None:
        """Delete only what is provably garbage: crashed temp writes past their age, and the
        files of cases whose row says retention removed them (a crash between the row update
        and the unlink leaves them behind). The caller holds the folder's lock."""
        self.folder.remove_stale_temp_files(listing.temp_files)
        retired = self._query(
            "SELECT case_id FROM cases WHERE image_file IS NULL AND image_deleted_at IS NOT NULL"
        )
        for row in retired:
            self.folder.remove_case_files(row["case_id"])

    # ---- saving -------------------------------------------------------------------------

    def save_case(
        self,
        rgb: np.ndarray,
        on_device: OnDeviceResult,
        patient_ref: str = "",
        body_site: str = "",
        consent: bool = True,
        provenance: Provenance | None = None,
        case_id: str | None = None,
    ) -> Case:
        """Encode the picture as JPEG (which also drops any metadata such as GPS), write it
        durably, then commit the row. Returns the saved case."""
        if not consent:
            raise ValueError("the patient's consent is required to save a case")
        patient_ref = check_patient_ref(patient_ref)
        if body_site and body_site not in BODY_SITES:
            raise ValueError(f"unknown body site {body_site!r}; choose one of {BODY_SITES}")
        if case_id is None:
            case_id = new_case_id()
        else:
            # The UI makes the id at capture, so the report can show the case code before
            # saving; a second save of the same capture (a double tap) is the same case.
            case_id = check_case_id(case_id)
            existing = self._query("SELECT case_id FROM cases WHERE case_id = ?", (case_id,))
            if existing:
                return self.get(case_id)
        jpeg = encode_jpeg(rgb)
        self.check_free_space(len(jpeg))
        file_name = image_name(case_id)
        created = utc_now()
        sha256 = hashlib.sha256(jpeg).hexdigest()
        row = (
            case_id,
            self.kiosk_id,
            _format_time(created),
            patient_ref,
            body_site,
            1,
            file_name,
            sha256,
            len(jpeg),
            json.dumps(on_device.as_dict()),
            CaseStatus.SAVED.value,
            json.dumps(provenance.as_dict()) if provenance is not None else None,
        )
        # The sidecar: everything the row says except the patient reference (kept out of
        # files nobody would think to protect), so a lost database loses no result.
        sidecar = {
            "case_id": case_id,
            "kiosk_id": self.kiosk_id,
            "created_at": _format_time(created),
            "body_site": body_site,
            "consent": True,
            "image_sha256": sha256,
            "image_bytes": len(jpeg),
            "on_device": on_device.as_dict(),
            "provenance": provenance.as_dict() if provenance is not None else None,
        }
        # From the first file written to the row's commit, cleanup in any process waits.
        with self.folder.shared_lock():
            try:
                self.folder.write_sidecar(case_id, sidecar)
                atomic_write_bytes(self.images_dir / file_name, jpeg, mode=0o600)
            except OSError as e:
                self.folder.remove_case_files(case_id)
                raise DiskFullError(f"could not write the case image: {e.strerror or e}") from None
            try:
                with self._transaction() as db:
                    db.execute(
                        "INSERT INTO cases (case_id, kiosk_id, created_at, patient_ref, "
                        "body_site, consent, image_file, image_sha256, image_bytes, on_device, "
                        "status, provenance) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        row,
                    )
            except sqlite3.OperationalError as e:
                self.folder.remove_case_files(case_id)  # ours, never committed
                if "full" in str(e).lower():
                    raise DiskFullError("the disk is full: the case was not saved") from None
                raise CaseStoreError(f"the case was not saved: {e}") from None
        return self.get(case_id)

    def check_free_space(self, needed_bytes: int = 0) -> None:
        free = shutil.disk_usage(self.db_path.parent).free
        if free - needed_bytes < self.min_free_mb * _MB:
            raise DiskFullError(
                f"Storage is almost full ({free // _MB} MB free, {self.min_free_mb} MB kept "
                "in reserve): new cases cannot be saved. Connect to the internet so waiting "
                "cases upload and old images can be cleared, or call the administrator."
            )

    # ---- reading ------------------------------------------------------------------------

    def get(self, case_id: str) -> Case:
        rows = self._query("SELECT * FROM cases WHERE case_id = ?", (case_id,))
        if not rows:
            raise CaseNotFoundError(f"no case {case_id}")
        return self._case(rows[0])

    def list_cases(self, limit: int | None = 100) -> list[Case]:
        sql = "SELECT * FROM cases ORDER BY created_at DESC"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [self._case(r) for r in self._query(sql, params)]

    def pending_uploads(self, limit: int | None = None) -> list[Case]:
        """Saved, not quarantined cases, oldest first."""
        sql = (
            "SELECT * FROM cases WHERE status = 'saved' AND quarantine_error IS NULL "
            "ORDER BY created_at"
        )
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [self._case(r) for r in self._query(sql, params)]

    def pending_messages(self) -> list[Message]:
        """Outgoing messages not yet confirmed, whose case is already in Firestore."""
        rows = self._query(
            "SELECT m.* FROM messages m JOIN cases c USING (case_id) "
            "WHERE m.author = ? AND m.sent_at IS NULL AND c.status != 'saved' "
            "ORDER BY m.created_at",
            (AUTHOR_HEALTH_WORKER,),
        )
        return [self._message(r) for r in rows]

    def queue_depth(self) -> int:
        """Cases and messages waiting to go up (quarantined cases excluded: they never will)."""
        row = self._query(
            "SELECT (SELECT count(*) FROM cases WHERE status = 'saved' "
            "AND quarantine_error IS NULL) + (SELECT count(*) FROM messages "
            "WHERE author = ? AND sent_at IS NULL) AS n",
            (AUTHOR_HEALTH_WORKER,),
        )[0]
        return int(row["n"])

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT status, count(*) AS n FROM cases GROUP BY status")
        out = {s.value: 0 for s in CaseStatus}
        out.update({r["status"]: int(r["n"]) for r in rows})
        out["quarantined"] = int(
            self._query("SELECT count(*) AS n FROM cases WHERE quarantine_error IS NOT NULL")[0][
                "n"
            ]
        )
        return out

    def image_path(self, case: Case) -> Path:
        if case.image_path is None:
            raise CaseStoreError(f"case {case.case_id}: the local image was already removed")
        return case.image_path

    # ---- sync bookkeeping ---------------------------------------------------------------

    def mark_uploaded(self, case_id: str, at: datetime | None = None) -> None:
        self.mark_uploaded_many([case_id], at)

    def mark_uploaded_many(
        self,
        case_ids: list[str],
        at: datetime | None = None,
        full_waiting: Iterable[str] = (),
    ) -> None:
        """One commit for many confirmed uploads: sync marks them in batches, since a mark
        lost to a crash only means the case is sent again, and that is harmless.
        `full_waiting`: those of them sent as a compact copy, whose full picture is queued."""
        when = _format_time(at or utc_now())
        waiting = set(full_waiting)
        with self._transaction() as db:
            db.executemany(
                # By uploaded_at, not status: a cloud result can reach the row (listener,
                # 'classified') before this batch mark; its full picture must still follow.
                "UPDATE cases SET status = CASE status WHEN 'saved' THEN 'uploaded' "
                "ELSE status END, uploaded_at = ?, last_error = NULL, full_upload = ? "
                "WHERE case_id = ? AND uploaded_at IS NULL",
                [
                    (when, (FullUpload.WAITING if c in waiting else FullUpload.DONE).value, c)
                    for c in case_ids
                ],
            )
            # Sessions kept for the picture that went whole are of no more use; a case sent as
            # its compact copy keeps the one of its full picture.
            db.executemany(
                "DELETE FROM upload_sessions WHERE case_id = ? AND (NOT ? OR total != "
                "(SELECT image_bytes FROM cases WHERE case_id = ?))",
                [(c, c in waiting, c) for c in case_ids],
            )

    def pending_full_uploads(self, limit: int | None = None) -> list[Case]:
        """Sent cases whose full picture is still to go, oldest first (only those whose
        local picture is still there and usable)."""
        sql = (
            "SELECT * FROM cases WHERE status != 'saved' AND full_upload = 'waiting' "
            "AND quarantine_error IS NULL AND image_file IS NOT NULL ORDER BY created_at"
        )
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [self._case(r) for r in self._query(sql, params)]

    def full_upload_backlog(self) -> tuple[int, int]:
        """(pictures, bytes) of full pictures still to send (for the screens and status)."""
        row = self._query(
            "SELECT count(*) AS n, "
            "coalesce(sum(c.image_bytes - coalesce(u.stored, 0)), 0) AS b FROM cases c "
            "LEFT JOIN upload_sessions u ON u.case_id = c.case_id AND u.total = c.image_bytes "
            "WHERE c.status != 'saved' AND c.full_upload = 'waiting' "
            "AND c.quarantine_error IS NULL AND c.image_file IS NOT NULL"
        )[0]
        return int(row["n"]), int(row["b"])

    def upload_session(self, object_path: str) -> UploadSession | None:
        """The resumable-upload session kept for this Storage object, if one was opened."""
        rows = self._query("SELECT * FROM upload_sessions WHERE object_path = ?", (object_path,))
        if not rows:
            return None
        r = rows[0]
        return UploadSession(r["object_path"], r["case_id"], r["uri"], r["stored"], r["total"])

    def keep_upload_session(self, session: UploadSession) -> None:
        """Kept before any byte is sent under it, and again with the server's offset."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO upload_sessions (object_path, case_id, uri, stored, total) "
                "VALUES (?,?,?,?,?) ON CONFLICT (object_path) DO UPDATE SET "
                "uri = excluded.uri, stored = excluded.stored, total = excluded.total",
                (session.object_path, session.case_id, session.uri, session.stored, session.total),
            )

    def forget_upload_session(self, object_path: str) -> None:
        """The next attempt opens a new session from byte 0."""
        with self._transaction() as db:
            db.execute("DELETE FROM upload_sessions WHERE object_path = ?", (object_path,))

    def mark_full_uploaded(self, case_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE cases SET full_upload = 'done' WHERE case_id = ?", (case_id,))
            db.execute("DELETE FROM upload_sessions WHERE case_id = ?", (case_id,))

    def record_upload_failure(self, case_id: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE cases SET upload_attempts = upload_attempts + 1, last_error = ? "
                "WHERE case_id = ?",
                (error[:300], case_id),
            )

    def quarantine(self, case_id: str, error: str) -> None:
        """Take a case out of the upload queue with the reason; it stays listed."""
        with self._transaction() as db:
            db.execute(
                "UPDATE cases SET quarantine_error = ? WHERE case_id = ?",
                (error[:300], case_id),
            )

    def read_verified_image(self, case: Case) -> bytes:
        """The case's image bytes after checking they are the bytes that were saved (read
        once: they are what gets uploaded); quarantines the case and raises CaseStoreError
        when they are not."""
        path = case.image_path
        try:
            if path is None:
                raise CaseStoreError("the local image was removed before it was uploaded")
            if not path.is_file():
                raise CaseStoreError("the image file is missing")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != case.image_sha256:
                raise CaseStoreError("the image file is corrupt (checksum mismatch)")
        except (CaseStoreError, OSError) as e:
            message = str(e) if isinstance(e, CaseStoreError) else f"unreadable image: {e}"
            self.quarantine(case.case_id, message)
            raise CaseStoreError(f"case {case.case_id} quarantined: {message}") from None
        return data

    def apply_remote(
        self,
        case_id: str,
        status: str | None,
        cloud: Mapping[str, Any] | None,
        review: Mapping[str, Any] | None,
        review_verified: bool = True,
    ) -> bool:
        """Merge what the cloud says about one of our cases. Status only moves forward; a new
        or changed review becomes unread. Returns True when something changed.

        `review_verified`: sync passes whether the review's signature verified (local callers
        such as the demo are trusted). An unverified review is kept aside in
        `unverified_review` and never replaces the verified one; nor does it make the case
        "reviewed"."""
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM cases WHERE case_id = ?", (case_id,)).fetchall()
            if not rows:
                return False
            current = rows[0]
            changes: dict[str, Any] = {}
            try:
                remote_status = CaseStatus(status) if status else None
            except ValueError:
                remote_status = None
            has_verified_review = current["review"] is not None or (
                review is not None and review_verified
            )
            if remote_status is CaseStatus.REVIEWED and not has_verified_review:
                has_cloud = cloud is not None or current["cloud"] is not None
                remote_status = CaseStatus.CLASSIFIED if has_cloud else None
            if (
                remote_status is not None
                and remote_status.rank > CaseStatus(current["status"]).rank
            ):
                changes["status"] = remote_status.value
            if cloud is not None:
                cloud_json = json.dumps(_jsonable(cloud), sort_keys=True)
                if cloud_json != current["cloud"]:
                    changes["cloud"] = cloud_json
            if review is not None:
                review_json = json.dumps(Review.from_dict(review).as_dict(), sort_keys=True)
                if not review_verified:
                    if review_json != current["review_unverified"]:
                        changes["review_unverified"] = review_json
                elif review_json != current["review"]:
                    changes["review"] = review_json
                    changes["review_read_at"] = None
            if not changes:
                return False
            assignments = ", ".join(f"{k} = ?" for k in changes)
            db.execute(
                f"UPDATE cases SET {assignments} WHERE case_id = ?",
                (*changes.values(), case_id),
            )
            return True

    def apply_retention(self, days: int, now: datetime | None = None) -> int:
        """Delete local images `days` after their upload (the full picture too) was confirmed;
        keep the records.
        Returns how many images were removed."""
        cutoff = _format_time((now or utc_now()) - timedelta(days=days))
        rows = self._query(
            "SELECT case_id, image_file FROM cases WHERE status != 'saved' "
            "AND full_upload = 'done' "  # the only copy of a full picture still to send
            "AND image_file IS NOT NULL AND uploaded_at IS NOT NULL AND uploaded_at < ?",
            (cutoff,),
        )
        for row in rows:
            with self._transaction() as db:
                db.execute(
                    "UPDATE cases SET image_file = NULL, image_deleted_at = ? WHERE case_id = ?",
                    (_format_time(utc_now()), row["case_id"]),
                )
            # The row no longer points at the file before it goes: a crash in between leaves
            # a retired file that the next open removes (the row says it is garbage).
            self.folder.remove_case_files(row["case_id"])
        return len(rows)

    # ---- messages and inbox -------------------------------------------------------------

    def add_message(self, case_id: str, body: str) -> Message:
        """A note or question from the health worker, queued for upload."""
        body = body.strip()
        if not body:
            raise ValueError("the message is empty")
        if len(body) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        self.get(case_id)
        message = Message(
            message_id=str(uuid.uuid4()),
            case_id=case_id,
            author=AUTHOR_HEALTH_WORKER,
            author_name="",
            body=body,
            created_at=utc_now(),
        )
        with self._transaction() as db:
            db.execute(
                "INSERT INTO messages (message_id, case_id, author, author_name, body, "
                "created_at) VALUES (?,?,?,?,?,?)",
                (
                    message.message_id,
                    case_id,
                    message.author,
                    "",
                    body,
                    _format_time(message.created_at),
                ),
            )
        return message

    def mark_message_sent(self, message_id: str, at: datetime | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET sent_at = ? WHERE message_id = ? AND sent_at IS NULL",
                (_format_time(at or utc_now()), message_id),
            )

    def add_remote_message(
        self,
        message_id: str,
        case_id: str,
        author: str,
        author_name: str,
        body: str,
        created_at: datetime | None,
        verified: bool = True,
    ) -> bool:
        """A message that arrived from Firestore; returns True if it was new. Our own messages
        echoed back by the listener are recognised by id and marked sent. `verified`: sync
        passes whether a specialist's signature verified (local callers are trusted); an
        unverified message is stored but kept out of the thread and the inbox."""
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchall():
                return False
            existing = db.execute(
                "SELECT sent_at FROM messages WHERE message_id = ?", (message_id,)
            ).fetchall()
            if existing:
                if existing[0]["sent_at"] is None and author == AUTHOR_HEALTH_WORKER:
                    db.execute(
                        "UPDATE messages SET sent_at = ? WHERE message_id = ?",
                        (_format_time(utc_now()), message_id),
                    )
                return False
            db.execute(
                "INSERT INTO messages (message_id, case_id, author, author_name, body, "
                "created_at, sent_at, verified) VALUES (?,?,?,?,?,?,?,?)",
                (
                    message_id,
                    case_id,
                    author,
                    author_name,
                    body,
                    _format_time(created_at or utc_now()),
                    _format_time(utc_now()),
                    int(verified),
                ),
            )
            return True

    def messages(self, case_id: str) -> list[Message]:
        """The case's thread: this kiosk's messages and verified specialists' ones."""
        rows = self._query(
            "SELECT * FROM messages WHERE case_id = ? AND verified = 1 ORDER BY created_at",
            (case_id,),
        )
        return [self._message(r) for r in rows]

    def inbox(self, limit: int = 200, include_unverified: bool = False) -> list[InboxItem]:
        """Reviews of our cases and messages from dermatologists: unread urgent reviews
        first, then newest first. `include_unverified` (for `kiosk inbox`) adds what was kept
        aside, marked `verified=False` and never urgent or unread."""
        items: list[InboxItem] = []
        cases: dict[str, Case] = {}
        for row in self._query(
            "SELECT * FROM cases WHERE review IS NOT NULL ORDER BY created_at DESC LIMIT ?",
            (limit,),
        ):
            case = self._case(row)
            cases[case.case_id] = case
            assert case.review is not None
            items.append(_review_item(case, case.review, read=case.review_read))
        if include_unverified:
            items.extend(self._unverified_items(limit, cases))
        for row in self._query(
            "SELECT * FROM messages WHERE author = ? AND verified = 1 "
            "ORDER BY created_at DESC LIMIT ?",
            (AUTHOR_DERMATOLOGIST, limit),
        ):
            message = self._message(row)
            case = cases.get(message.case_id) or self.get(message.case_id)
            cases[case.case_id] = case
            items.append(_message_item(case, message, read=message.read_at is not None))
        # Unread urgent reviews first (they must not scroll away under newer chatter), then
        # newest first.
        items.sort(key=lambda item: (not (item.urgent and not item.read), -item.at.timestamp()))
        return items[:limit]

    def _unverified_items(self, limit: int, cases: dict[str, Case]) -> list[InboxItem]:
        items: list[InboxItem] = []
        for row in self._query(
            "SELECT * FROM cases WHERE review_unverified IS NOT NULL "
            "ORDER BY created_at DESC LIMIT ?",
            (limit,),
        ):
            case = cases.get(row["case_id"]) or self._case(row)
            cases[case.case_id] = case
            assert case.unverified_review is not None
            # read: nothing asks the health worker to read what is kept aside
            items.append(_review_item(case, case.unverified_review, read=True, verified=False))
        for row in self._query(
            "SELECT * FROM messages WHERE verified = 0 ORDER BY created_at DESC LIMIT ?",
            (limit,),
        ):
            message = self._message(row)
            case = cases.get(message.case_id) or self.get(message.case_id)
            cases[case.case_id] = case
            items.append(_message_item(case, message, read=True, verified=False))
        return items

    def unverified_count(self) -> int:
        """Reviews and messages kept aside because they did not verify (`kiosk status`, the
        fleet state): a count above zero means someone wrote specialist content without the
        console's key, or the key is not configured."""
        row = self._query(
            "SELECT (SELECT count(*) FROM cases WHERE review_unverified IS NOT NULL) "
            "+ (SELECT count(*) FROM messages WHERE verified = 0) AS n"
        )[0]
        return int(row["n"])

    def unread_count(self) -> int:
        row = self._query(
            "SELECT (SELECT count(*) FROM cases WHERE review IS NOT NULL "
            "AND review_read_at IS NULL) + (SELECT count(*) FROM messages WHERE author = ? "
            "AND verified = 1 AND read_at IS NULL) AS n",
            (AUTHOR_DERMATOLOGIST,),
        )[0]
        return int(row["n"])

    def unread_urgent_count(self) -> int:
        """Unread reviews that name a possible cancer (Review.urgent)."""
        rows = self._query(
            "SELECT review FROM cases WHERE review IS NOT NULL AND review_read_at IS NULL"
        )
        return sum(Review.from_dict(json.loads(row["review"])).urgent for row in rows)

    def mark_read(self, case_id: str) -> None:
        now = _format_time(utc_now())
        with self._transaction() as db:
            db.execute(
                "UPDATE cases SET review_read_at = ? WHERE case_id = ? AND review IS NOT NULL "
                "AND review_read_at IS NULL",
                (now, case_id),
            )
            db.execute(
                "UPDATE messages SET read_at = ? WHERE case_id = ? AND author = ? "
                "AND verified = 1 AND read_at IS NULL",
                (now, case_id, AUTHOR_DERMATOLOGIST),
            )

    # ---- small persistent settings (sync watermarks, last sync) --------------------------

    def get_value(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM kv WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_value(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ---- row mapping --------------------------------------------------------------------

    def _case(self, row: sqlite3.Row) -> Case:
        image_file = row["image_file"]
        return Case(
            case_id=row["case_id"],
            kiosk_id=row["kiosk_id"],
            created_at=_parse_time(row["created_at"]) or utc_now(),
            patient_ref=row["patient_ref"],
            body_site=row["body_site"],
            consent=bool(row["consent"]),
            image_path=(self.images_dir / image_file) if image_file else None,
            image_sha256=row["image_sha256"],
            image_bytes=int(row["image_bytes"]),
            on_device=OnDeviceResult.from_dict(json.loads(row["on_device"])),
            status=CaseStatus(row["status"]),
            uploaded_at=_parse_time(row["uploaded_at"]),
            cloud=json.loads(row["cloud"]) if row["cloud"] else None,
            review=Review.from_dict(json.loads(row["review"])) if row["review"] else None,
            review_read=row["review_read_at"] is not None,
            quarantine_error=row["quarantine_error"],
            upload_attempts=int(row["upload_attempts"]),
            last_error=row["last_error"],
            provenance=(
                Provenance.from_dict(json.loads(row["provenance"])) if row["provenance"] else None
            ),
            unverified_review=(
                Review.from_dict(json.loads(row["review_unverified"]))
                if row["review_unverified"]
                else None
            ),
            full_upload=FullUpload(row["full_upload"]),
        )

    @staticmethod
    def _message(row: sqlite3.Row) -> Message:
        return Message(
            message_id=row["message_id"],
            case_id=row["case_id"],
            author=row["author"],
            author_name=row["author_name"],
            body=row["body"],
            created_at=_parse_time(row["created_at"]) or utc_now(),
            sent_at=_parse_time(row["sent_at"]),
            read_at=_parse_time(row["read_at"]),
            verified=bool(row["verified"]),
        )


# --------------------------------------------------------------------------- helpers


def _review_item(case: Case, review: Review, *, read: bool, verified: bool = True) -> InboxItem:
    return InboxItem(
        case_id=case.case_id,
        kind="review",
        body=review.recommendation,
        author_name=review.reviewer,
        at=review.reviewed_at or case.created_at,
        read=read,
        case=case,
        verified=verified,
        label=review.label,
    )


def _message_item(case: Case, message: Message, *, read: bool, verified: bool = True) -> InboxItem:
    return InboxItem(
        case_id=message.case_id,
        kind="message",
        body=message.body,
        author_name=message.author_name,
        at=message.created_at,
        read=read,
        case=case,
        verified=verified,
    )


def new_case_id() -> str:
    """A case id: a UUID made on the kiosk, so every upload of it is idempotent."""
    return str(uuid.uuid4())


def check_case_id(case_id: str) -> str:
    try:
        parsed = uuid.UUID(case_id)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"not a case id (a UUID): {case_id!r}") from None
    if str(parsed) != case_id:
        raise ValueError(f"a case id is a lower-case UUID with dashes, got {case_id!r}")
    return case_id


def check_patient_ref(patient_ref: str) -> str:
    """A pseudonymous reference (clinic card number, initials + year…): short, no punctuation
    that could smuggle structure into logs or documents."""
    ref = " ".join(patient_ref.split())
    if len(ref) > MAX_PATIENT_REF:
        raise ValueError(f"the patient reference must be at most {MAX_PATIENT_REF} characters")
    if not _PATIENT_REF_PATTERN.match(ref):
        raise ValueError("the patient reference may hold only letters, digits, spaces and '-'")
    return ref


def encode_jpeg(rgb: np.ndarray) -> bytes:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError("the case picture must be an HxWx3 uint8 RGB array")
    if rgb.shape[2] != 3 or min(rgb.shape[:2]) < 16:
        raise ValueError(f"the case picture has an unusable shape {rgb.shape}")
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("the case picture could not be encoded as JPEG")
    return buffer.tobytes()


def _jsonable(value: Any) -> Any:
    """Firestore values (timestamps) as JSON-friendly data."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _format_time(value)
    return value
