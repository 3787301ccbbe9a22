"""Offline-first sync between the kiosk's case store and Firebase.

One pass, in this order, each step safe to repeat after a crash at any instant:
1. each saved case, oldest first, a few at a time: its picture to Storage (a fixed name per
   case, so a repeat overwrites the same object; the server's MD5 is compared with ours): a
   large picture as a compact copy of tens of KB (kiosk.cases.compact), a small one whole;
   then the Firestore document with `create()` (an "already exists" answer means an earlier
   attempt got through), then the local row is marked uploaded (in batches: a mark lost to a
   crash only means the case is sent once more, onto the same object and document). A case
   counts as sent at this point;
2. outgoing messages, likewise with ids made on the kiosk;
3. catch-up: a query for our cases and messages changed since the last watermark (reviews,
   cloud results, dermatologists' replies); a review or a dermatologist's message counts as
   the specialist's only when the console's signature verifies (kiosk.cases.specialist_check),
   anything else is stored aside as unverified and never shown;
4. the model-release check, the heartbeat document, and the local retention rule (which keeps
   every picture whose full resolution is still to send);
5. the full pictures of cases sent as compact copies, oldest first, one at a time, each a
   resumable upload whose session is kept in the store (kiosk.cases.resumable): a cut link or
   a killed process resumes from the server's offset. Then `full_image_stored` on the case
   document says the console can show it. A newly saved case stops this step: its compact
   copy goes first.

While `run_forever` is online it also keeps Firestore listeners on the same queries, so a
review reaches the kiosk within seconds; after a disconnect the next pass's catch-up query
fills any gap. When the link drops, it is probed often (a TCP connect) and the next pass starts
the moment a probe gets through; when a server fails or refuses, attempts back off
exponentially with jitter (kiosk.cases.link). Images go one at a time on a slow link and
several at once on a fast one (kiosk.cases.send_window).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.cases import cloud_schema as schema
from kiosk.cases import resumable
from kiosk.cases.case_code import case_code
from kiosk.cases.compact import CompactPicture, make_compact
from kiosk.cases.firebase import (
    CredentialsError,
    FirebaseClients,
    LinkDownError,
    OfflineError,
    check_credentials_file,
    connect,
    probe,
)
from kiosk.cases.link import (
    UNSTABLE_WINDOW_S,
    Failure,
    LinkMonitor,
    classify,
    probe_delay,
    server_in_trouble,
)
from kiosk.cases.model_updates import ModelUpdater
from kiosk.cases.send_window import SendWindow
from kiosk.cases.specialist_check import message_verifies, review_verifies
from kiosk.cases.store import (
    Case,
    CaseStore,
    CaseStoreError,
    Message,
    UploadSession,
    utc_now,
)
from kiosk.cases.sync_status import SyncProblem, SyncStatus

if TYPE_CHECKING:
    from kiosk.config import KioskConfig

log = logging.getLogger(__name__)

LAST_SYNC_KEY = "sync.last_sync"
LINK_KEY = "sync.link"  # the link's stability, for `kiosk status` (another process)
# An unchanged link row is rewritten once this old, so that it never gets old enough for
# stored_link_status to stop believing it.
LINK_REFRESH_S = UNSTABLE_WINDOW_S / 2
WATERMARK_KEY = "sync.remote_watermark"
# Documents written in the same instant by two servers can become visible slightly out of
# order; re-reading a minute before the watermark costs little (applying is idempotent).
WATERMARK_OVERLAP = timedelta(minutes=1)
BACKOFF_FIRST_S = 2.0
BACKOFF_MAX_S = 300.0
# Link failures in a row with nothing sent, each right after a probe got through, before the
# probing gives way to backoff (see run_forever).
FRUITLESS_PASSES = 8
# Seconds to wait for the server's answer once a request is sent: a connection that went
# half-dead (common on mobile data) must not hold a pass for long.
UPLOAD_TIMEOUT_S = 30.0
# The client libraries retry a lost server for up to two minutes; a kiosk should give up on
# this pass within seconds and try again later (every step is repeatable).
RETRY_BUDGET_S = 8.0
# Confirmed uploads are marked in the store this many at a time (one fsync each batch).
MARK_BATCH = 16
CLOUD_ACTED_STATUSES = [schema.STATUS_CLASSIFIED, schema.STATUS_REVIEWED]


class IntegrityError(Exception):
    """Storage holds different bytes than the kiosk sent."""


class ServerGaveUpError(Exception):
    """A server kept answering with errors (5xx, 429) until the client's retries ran out."""


@dataclass
class PassReport:
    uploaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # case id -> error
    quarantined: list[str] = field(default_factory=list)
    full_uploaded: list[str] = field(default_factory=list)  # full pictures that followed
    full_failed: dict[str, str] = field(default_factory=dict)  # case id -> error type
    messages_sent: int = 0
    remote_updates: int = 0
    images_removed: int = 0
    model_installed: str | None = None
    model_rejected: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "uploaded": len(self.uploaded),
            "failed": len(self.failed),
            "quarantined": len(self.quarantined),
            "full_uploaded": len(self.full_uploaded),
            "full_failed": len(self.full_failed),
            "messages_sent": self.messages_sent,
            "remote_updates": self.remote_updates,
            "images_removed": self.images_removed,
            "model_installed": self.model_installed,
            "model_rejected": self.model_rejected,
        }


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(max, first·2^attempt)], so a fleet that lost the same
    uplink does not come back in lockstep."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (2**attempt))
    return (rng or random).uniform(BACKOFF_FIRST_S / 2, ceiling)


def case_document(
    case: Case, image_path: str, compact: CompactPicture | None = None
) -> dict[str, Any]:
    """The case's Firestore document. With `compact`, the picture went as its compact copy and
    the full one (`image`) follows (see kiosk.cases.cloud_schema)."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    doc: dict[str, Any] = {
        "kiosk_id": case.kiosk_id,
        "created_at": case.created_at,
        "updated_at": SERVER_TIMESTAMP,
        "patient_ref": case.patient_ref,
        "body_site": case.body_site,
        "consent": case.consent,
        "image": {
            "path": image_path,
            "sha256": case.image_sha256,
            "bytes": case.image_bytes,
            "content_type": schema.IMAGE_CONTENT_TYPE,
        },
        "full_image_stored": compact is None,
        "on_device": case.on_device.as_dict(),
        "urgency_rank": schema.URGENCY_RANK.get(case.on_device.urgency, 3),
        # What the kiosk's screens call the case; the console finds a case by it.
        "case_code": case_code(case.case_id),
        "status": schema.STATUS_UPLOADED,
    }
    if compact is not None:
        doc["compact_image"] = {
            "path": schema.compact_image_path(case.kiosk_id, case.case_id),
            "sha256": compact.sha256,
            "bytes": len(compact.data),
            "content_type": schema.IMAGE_CONTENT_TYPE,
            "width": compact.width,
            "height": compact.height,
        }
    if case.provenance is not None:
        doc["provenance"] = case.provenance.as_dict()
    doc["demo"] = case.provenance is not None and case.provenance.demo
    return doc


class SyncService:
    def __init__(
        self,
        config: KioskConfig,
        store: CaseStore,
        on_model_installed: Callable[[Path], None] | None = None,
        app_version: str = "",
    ) -> None:
        self.config = config
        self.store = store
        self.app_version = app_version
        self.updater = ModelUpdater(config, on_installed=on_model_installed)
        self._clients: FirebaseClients | None = None
        self._listeners: list[Any] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pass_stop = self._stop  # the event run_forever was given (SIGTERM sets it)
        self._thread: threading.Thread | None = None
        self._attempt = 0
        self._window = SendWindow(config.sync_concurrency)  # kept across passes
        self._link = LinkMonitor()
        # Grows whenever the server confirms more of the queue: a case sent, or more of a
        # full picture stored. A pass cut by the link that moved this was not fruitless.
        self._advances = 0
        self._image_stored: dict[str, bool] = {}  # case id -> image state (see _put_picture)
        # Sent as compact copies since their last mark: marked with their full picture queued.
        self._full_waiting: set[str] = set()
        self._status = replace(
            SyncStatus.offline(pending=store.queue_depth()),
            last_sync=self._stored_last_sync(),
            unverified_items=store.unverified_count(),
        )

    # ---- status -------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        with self._lock:
            return self._status

    def _with(self, **changes: Any) -> SyncStatus:
        with self._lock:
            self._status = replace(self._status, **changes)
            return self._status

    def _stored_last_sync(self) -> datetime | None:
        value = self.store.get_value(LAST_SYNC_KEY)
        return datetime.fromisoformat(value) if value else None

    # ---- connection ---------------------------------------------------------------------

    def _connect(self) -> FirebaseClients:
        if not self.config.uses_emulators:
            # A key that others can read is refused before anything goes on the network.
            check_credentials_file(self.config.credentials)
        probe(self.config)
        if self._clients is None:
            self._clients = connect(self.config)
        return self._clients

    def _disconnect(self) -> None:
        self._stop_listeners()
        if self._clients is not None:
            try:
                self._clients.close()
            except Exception:  # closing a broken connection must not hide the original error
                log.debug("closing the Firebase app failed", exc_info=True)
            self._clients = None

    def close(self) -> None:
        self.stop()
        self._disconnect()

    # ---- one pass -----------------------------------------------------------------------

    def sync_once(self) -> PassReport:
        """One full pass. Raises OfflineError when Firebase is unreachable."""
        report = PassReport()
        self._wake.clear()  # this pass serves every request made before it (and a save since)
        pending = self.store.pending_uploads()
        self._with(syncing=True, done_this_pass=0, total_this_pass=len(pending))
        try:
            clients = self._connect()
            self._upload_cases(clients, pending, report)
            self._send_messages(clients, report)
            report.remote_updates += self.catch_up(clients)
            update = self.updater.check(clients)
            report.model_installed, report.model_rejected = update.installed, update.rejected
            self._heartbeat(clients, update.rejected)
            report.images_removed = self.store.apply_retention(self.config.retention_days)
            now = utc_now()
            self.store.set_value(LAST_SYNC_KEY, now.isoformat())
            last_error, problem = None, None
            if report.failed:
                last_error = f"{len(report.failed)} case(s) failed to upload; will retry"
                problem = SyncProblem.SOME_FAILED
            elif report.model_rejected:
                last_error = f"model release rejected: {report.model_rejected}"
                problem = SyncProblem.MODEL_REJECTED
            self._with(
                online=True,
                last_sync=now,
                last_error=last_error,
                problem=problem,
                next_attempt_in_s=None,
                model_rejected=update.rejected,
            )
            # Last, after the pass is recorded: every case is sent by now, and a link that
            # cuts a full picture does not make the cases, threads and reviews look unsynced.
            self._send_full_pictures(clients, report)
            return report
        except CredentialsError as e:
            self._with(online=False, last_error=str(e), problem=SyncProblem.CREDENTIALS)
            raise
        except OfflineError as e:
            self._disconnect()
            self._with(online=False, last_error=str(e), problem=SyncProblem.NO_CONNECTION)
            raise
        except Exception as e:
            # A server that died mid-pass looks like this: drop the connection, try later.
            self._disconnect()
            link_lost = classify(e) is Failure.LINK
            self._with(
                online=False,
                last_error=f"sync failed: {type(e).__name__}",
                problem=SyncProblem.NO_CONNECTION if link_lost else SyncProblem.SERVER_ERROR,
            )
            failed = LinkDownError if link_lost else OfflineError
            raise failed(f"sync failed: {type(e).__name__}: {e}") from e
        finally:
            self._with(
                syncing=False,
                pending=self.store.queue_depth(),
                unverified_items=self.store.unverified_count(),
            )

    def _upload_cases(
        self, clients: FirebaseClients, cases: list[Case], report: PassReport
    ) -> None:
        done = 0
        sent_bytes = 0
        lost = threading.Event()  # the link dropped: start no more uploads this pass
        server_gave_up: list[BaseException] = []  # a server's trouble outlasted the retries
        confirmed: list[str] = []  # uploaded, not yet marked in the store
        window = self._window
        self._with(bytes_sent_this_pass=0, send_window=window.size)

        def mark_confirmed() -> None:
            with self._lock:
                batch = confirmed[:]
                confirmed.clear()
            if batch:
                with self._lock:
                    waiting = self._full_waiting & set(batch)
                    self._full_waiting -= waiting
                self.store.mark_uploaded_many(batch, full_waiting=waiting)

        def one(case: Case) -> None:
            nonlocal done, sent_bytes
            if lost.is_set() or server_gave_up:
                return
            started = time.monotonic()
            try:
                nbytes = self.send_case(clients, case)
                window.finished(time.monotonic() - started, nbytes)
                self._link.sent(nbytes)
                report.uploaded.append(case.case_id)
                with self._lock:
                    confirmed.append(case.case_id)
                    sent_bytes += nbytes
                    self._advances += 1
                    full = len(confirmed) >= MARK_BATCH
                if full:
                    mark_confirmed()
            except CaseStoreError as e:
                report.quarantined.append(case.case_id)
                log.error("%s", e)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"[:300]
                report.failed[case.case_id] = error
                self.store.record_upload_failure(case.case_id, error)
                log.warning("case %s not uploaded: %s", case.case_id, type(e).__name__)
                if classify(e) is Failure.LINK:
                    window.cut()
                    lost.set()
                elif server_in_trouble(e):
                    server_gave_up.append(e)
            finally:
                with self._lock:
                    done += 1
                    sent_now = sent_bytes
                state = window.state()
                self._with(
                    done_this_pass=done,
                    bytes_sent_this_pass=sent_now,
                    send_window=state.size,
                    link_rate_bytes_per_s=state.rate_bytes_per_s,
                )

        # Oldest first, as many at once as the send window allows: one on a slow link (a
        # whole image fits an up-window), more while uploads finish quickly. Each sender takes
        # the next case itself the moment it is free to (no round trip through a dispatcher).
        pending = iter(cases)
        gate = threading.Condition()
        in_flight = 0

        def sender() -> None:
            nonlocal in_flight
            while True:
                with gate:
                    while in_flight >= window.size and not (lost.is_set() or server_gave_up):
                        gate.wait()
                    case = None if lost.is_set() or server_gave_up else next(pending, None)
                    if case is None:
                        return
                    in_flight += 1
                try:
                    one(case)
                finally:
                    with gate:
                        in_flight -= 1
                        gate.notify_all()

        try:
            with ThreadPoolExecutor(max_workers=window.maximum) as pool:
                senders = [pool.submit(sender) for _ in range(window.maximum)]
                for future in senders:
                    future.result()  # one() handles its errors; anything else is a bug
        finally:
            mark_confirmed()
            self._publish_link()
        if lost.is_set():
            raise LinkDownError(
                f"connection lost during upload ({len(report.uploaded)} of {len(cases)} done)"
            )
        if server_gave_up:
            raise ServerGaveUpError(
                f"the server kept failing ({len(report.uploaded)} of {len(cases)} done)"
            ) from server_gave_up[0]

    def send_case(self, clients: FirebaseClients, case: Case) -> int:
        """The picture (its compact copy when it is large), then the document; the caller
        marks the case uploaded afterwards. Returns the picture bytes sent (or found there)."""
        from google.api_core.exceptions import AlreadyExists

        data = self.store.read_verified_image(case)  # quarantines and raises when unusable
        compact = make_compact(data)
        ids = (case.kiosk_id, case.case_id)
        full_path = schema.case_image_path(*ids)
        path = full_path if compact is None else schema.compact_image_path(*ids)
        picture = data if compact is None else compact.data
        if self._link.report().unstable or self.store.upload_session(path) is not None:
            # A flapping link cuts even a small picture now and then: resumable, a cut costs
            # only what was in flight (one more request per picture, so only on such a link;
            # and a session kept from such a time goes on where it stands).
            self._put_resumable(clients, case, path, picture)
        else:
            self._put_picture(clients, case, path, picture)
        # "Already exists": an earlier attempt created it before the kiosk could record that.
        with contextlib.suppress(AlreadyExists):
            clients.db.collection(schema.CASES).document(case.case_id).create(
                case_document(case, full_path, compact),
                retry=_firestore_retry(),
                timeout=UPLOAD_TIMEOUT_S,
            )
        self._image_stored.pop(case.case_id, None)
        if compact is not None:
            with self._lock:
                self._full_waiting.add(case.case_id)
        return len(data) if compact is None else len(compact.data)

    def _put_picture(self, clients: FirebaseClients, case: Case, path: str, data: bytes) -> None:
        """One request for a picture that fits an up-window (a compact copy, a small one)."""
        blob = clients.bucket.blob(path)
        expected_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        # On a flapping link the drop often falls between the picture and the document: the
        # picture is then not sent again. True: this process stored and checked it; False: its
        # upload was cut here (send it again, no need to ask); unknown after a failure (a
        # restart): one metadata request instead of the whole picture over a slow link.
        known = self._image_stored.get(case.case_id)
        if known or (
            known is None
            and case.upload_attempts
            and _stored_already(blob, expected_md5, len(data))
        ):
            self._image_stored[case.case_id] = True
            return
        blob.metadata = _picture_metadata(case)
        try:
            blob.upload_from_string(
                data,
                content_type=schema.IMAGE_CONTENT_TYPE,
                timeout=(self.config.connect_timeout_s, UPLOAD_TIMEOUT_S),
                retry=_storage_retry(),
            )
        except Exception:
            self._image_stored[case.case_id] = False
            raise
        if blob.md5_hash != expected_md5 or (blob.size is not None and blob.size != len(data)):
            raise IntegrityError(f"storage holds different bytes for {path}")
        self._image_stored[case.case_id] = True

    # ---- full pictures, after their cases -----------------------------------------------

    def _send_full_pictures(self, clients: FirebaseClients, report: PassReport) -> None:
        """Full pictures of cases sent as compact copies, oldest first, one at a time (on a
        slow link two would each take twice as long, and a cut would catch both)."""
        pending = self.store.pending_full_uploads()
        if pending:  # the screens' "sending N of M" was about cases, and those are sent
            self._with(done_this_pass=0, total_this_pass=0)
        for case in pending:
            if self._pass_stop.is_set():
                return
            if self._wake.is_set() or self._saved_since(report):
                # A case saved meanwhile: its compact copy and document go first, now.
                self._wake.set()
                return
            try:
                self.send_full_picture(clients, case)
                report.full_uploaded.append(case.case_id)
            except CaseStoreError as e:
                report.quarantined.append(case.case_id)
                log.error("%s", e)
            except Exception as e:
                if classify(e) is Failure.LINK:
                    raise LinkDownError(
                        f"connection lost during a full picture ({len(report.full_uploaded)} "
                        "sent this pass)"
                    ) from e
                if server_in_trouble(e):
                    raise ServerGaveUpError("the server kept failing (full pictures)") from e
                # Refused or damaged on the way: the next pass tries again; the rest go on.
                # The type only: a storage error's text names the upload session's URI.
                report.full_failed[case.case_id] = type(e).__name__
                log.warning("case %s: full picture not sent: %s", case.case_id, type(e).__name__)

    def _saved_since(self, report: PassReport) -> bool:
        """A case is waiting that this pass did not try (saved by another process since):
        one that failed in this pass waits for the next, and must not stop the full
        pictures (else a case that keeps failing would starve them and spin the loop)."""
        tried = report.failed.keys() | set(report.quarantined)
        waiting = self.store.pending_uploads(limit=len(tried) + 1)
        return any(c.case_id not in tried for c in waiting)

    def send_full_picture(self, clients: FirebaseClients, case: Case) -> None:
        """The full picture by a resumable upload, from where the server's copy stands; then
        `full_image_stored` on the document, then the local mark."""
        from google.cloud.firestore import SERVER_TIMESTAMP

        data = self.store.read_verified_image(case)

        def on_bytes(n: int) -> None:
            self._link.sent(n, cases=0)
            with self._lock:
                sent = self._status.bytes_sent_this_pass + n
            self._with(bytes_sent_this_pass=sent)

        path = schema.case_image_path(case.kiosk_id, case.case_id)
        self._put_resumable(clients, case, path, data, on_bytes)
        clients.db.collection(schema.CASES).document(case.case_id).update(
            {"full_image_stored": True, "full_image_stored_at": SERVER_TIMESTAMP},
            retry=_firestore_retry(),
            timeout=UPLOAD_TIMEOUT_S,
        )
        self.store.mark_full_uploaded(case.case_id)
        with self._lock:
            self._advances += 1

    def _put_resumable(
        self,
        clients: FirebaseClients,
        case: Case,
        path: str,
        data: bytes,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """One of the case's pictures by a resumable upload: from the server's offset when a
        session is kept for it, else from a new session kept before the first byte. Returns
        once Storage holds exactly these bytes."""
        from google.api_core import exceptions as gexc

        total = len(data)
        http = clients.bucket.client._http  # the storage client's authorised session
        timeout = (self.config.connect_timeout_s, UPLOAD_TIMEOUT_S)
        kept = self.store.upload_session(path)
        if kept is not None and kept.total != total:
            kept = None  # for other bytes (cannot happen unless the picture changed): anew
        progress: resumable.Progress | None = None
        if kept is not None:
            try:
                progress = resumable.query(http, kept.uri, total, timeout)
            except resumable.SessionGoneError:
                kept = None
            else:
                if progress.stored > kept.stored:
                    with self._lock:
                        self._advances += 1
                kept = replace(kept, stored=progress.stored)
                self.store.keep_upload_session(kept)
                log.info(
                    "case %s: %s resumes at byte %d of %d",
                    case.case_id,
                    _part_name(path),
                    progress.stored,
                    total,
                )
        if kept is None:
            kept = self._open_session(clients, case, path, total, timeout)
            progress = resumable.Progress(stored=0)
        assert progress is not None
        if progress.done is None:
            try:
                progress = resumable.send_from(
                    http, kept.uri, data, progress.stored, timeout, on_bytes
                )
            except (gexc.BadRequest, resumable.SessionGoneError):
                if progress.stored == 0:
                    raise
                # The server will not go on from the offset it reported (gcp-storage-emulator
                # says "bytes=0-0" for a session holding nothing), or forgot the session
                # since: once more, from byte 0.
                log.warning(
                    "case %s: %s not resumable at byte %d; starting again",
                    case.case_id,
                    _part_name(path),
                    progress.stored,
                )
                kept = self._open_session(clients, case, path, total, timeout)
                progress = resumable.send_from(http, kept.uri, data, 0, timeout, on_bytes)
            if progress.done is None:  # the server took only part: the next pass goes on
                self.store.keep_upload_session(replace(kept, stored=progress.stored))
                raise resumable.IncompleteUploadError(
                    f"the server holds {progress.stored} of {total} bytes"
                )
        done = progress.done
        expected_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        if done.get("md5Hash") != expected_md5 or str(done.get("size")) != str(total):
            self.store.forget_upload_session(path)  # start again from byte 0
            raise IntegrityError(f"storage holds different bytes for {path}")

    def _open_session(
        self, clients: FirebaseClients, case: Case, path: str, total: int, timeout: Any
    ) -> UploadSession:
        blob = clients.bucket.blob(path)
        blob.metadata = _picture_metadata(case)
        uri = resumable.open_session(
            blob, total, schema.IMAGE_CONTENT_TYPE, timeout, _storage_retry()
        )
        # Kept before the first byte goes: a cut or a kill from here on resumes.
        session = UploadSession(path, case.case_id, uri, 0, total)
        self.store.keep_upload_session(session)
        return session

    def _send_messages(self, clients: FirebaseClients, report: PassReport) -> None:
        for message in self.store.pending_messages():
            self.send_message(clients, message)
            report.messages_sent += 1
            self._with(pending=self.store.queue_depth())

    def send_message(self, clients: FirebaseClients, message: Message) -> None:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud.firestore import SERVER_TIMESTAMP

        case_ref = clients.db.collection(schema.CASES).document(message.case_id)
        with contextlib.suppress(AlreadyExists):
            case_ref.collection(schema.MESSAGES).document(message.message_id).create(
                {
                    "case_id": message.case_id,
                    "kiosk_id": self.store.kiosk_id,
                    "author": message.author,
                    "author_name": "",
                    "body": message.body,
                    "created_at": message.created_at,
                }
            )
        # Tell the console a question is waiting (and wake listeners on the case).
        case_ref.update({"awaiting_reply": True, "updated_at": SERVER_TIMESTAMP})
        self.store.mark_message_sent(message.message_id)

    # ---- from the cloud -----------------------------------------------------------------

    def _watermark(self) -> datetime | None:
        value = self.store.get_value(WATERMARK_KEY)
        return datetime.fromisoformat(value) - WATERMARK_OVERLAP if value else None

    def _advance_watermark(self, seen: datetime | None) -> None:
        if seen is None:
            return
        value = self.store.get_value(WATERMARK_KEY)
        if value is None or seen > datetime.fromisoformat(value):
            self.store.set_value(WATERMARK_KEY, seen.isoformat())

    def _cases_query(self, clients: FirebaseClients, since: datetime | None) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        # Only cases the cloud has acted on: a case still "uploaded" has nothing new for the
        # kiosk, and leaving those out keeps a pass from reading back every case it just sent.
        query = clients.db.collection(schema.CASES).where(
            filter=FieldFilter("kiosk_id", "==", self.store.kiosk_id)
        )
        query = query.where(filter=FieldFilter("status", "in", CLOUD_ACTED_STATUSES))
        if since is not None:
            query = query.where(filter=FieldFilter("updated_at", ">", since))
        return query

    def _messages_query(self, clients: FirebaseClients, since: datetime | None) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = clients.db.collection_group(schema.MESSAGES).where(
            filter=FieldFilter("kiosk_id", "==", self.store.kiosk_id)
        )
        if since is not None:
            query = query.where(filter=FieldFilter("created_at", ">", since))
        return query

    def catch_up(self, clients: FirebaseClients) -> int:
        """Apply every change to our cases and threads since the watermark."""
        since = self._watermark()
        changed = 0
        newest: datetime | None = None
        # Only the fields the cloud changes: a rural uplink should not carry back the
        # on-device results it just sent.
        remote_fields = ["status", "cloud", "review", "updated_at"]
        for snapshot in self._cases_query(clients, since).select(remote_fields).stream():
            changed += self._apply_case(snapshot)
            newest = _latest(newest, (snapshot.to_dict() or {}).get("updated_at"))
        for snapshot in self._messages_query(clients, since).stream():
            changed += self._apply_message(snapshot)
        self._advance_watermark(newest)
        return changed

    def _apply_case(self, snapshot: Any) -> int:
        doc = snapshot.to_dict() or {}
        review = doc.get("review")
        if review is not None and not isinstance(review, dict):
            review = {}  # not a review at all: kept aside like any other that fails to verify
        verified = review is not None and review_verifies(
            review, snapshot.id, self.store.kiosk_id, self.config.review_public_key
        )
        status = doc.get("status")
        changed = self.store.apply_remote(
            snapshot.id,
            status if isinstance(status, str) else None,
            doc.get("cloud") if isinstance(doc.get("cloud"), dict) else None,
            _review_fields(review) if review is not None else None,
            review_verified=verified,
        )
        if changed and review is not None and not verified:
            # Ids only: the label and text may be a forger's, and are health data either way.
            log.warning("case %s: review does not verify; kept aside, not shown", snapshot.id)
            # Recounted only when something was set aside (two COUNT queries per case otherwise).
            self._with(unverified_items=self.store.unverified_count())
        return int(changed)

    def _apply_message(self, snapshot: Any) -> int:
        doc = snapshot.to_dict() or {}
        # The thread the document sits in, not a field its writer chose.
        parent = getattr(getattr(snapshot.reference, "parent", None), "parent", None)
        case_id = parent.id if parent is not None else doc.get("case_id")
        if not isinstance(case_id, str) or not case_id:
            log.warning("message %s has no case id; ignored", snapshot.id)
            return 0
        author = str(doc.get("author", ""))
        # Only a dermatologist's signed message can verify; one that claims to come from this
        # kiosk but is not one of its own (those are recognised by id) is kept aside too.
        verified = author == schema.AUTHOR_DERMATOLOGIST and message_verifies(
            doc, snapshot.id, case_id, self.store.kiosk_id, self.config.review_public_key
        )
        added = self.store.add_remote_message(
            message_id=snapshot.id,
            case_id=case_id,
            author=author,
            author_name=_text(doc.get("author_name")),
            body=_text(doc.get("body")),
            created_at=_time(doc.get("created_at")),
            verified=verified,
        )
        if added and not verified:
            log.warning(
                "case %s: message %s does not verify; kept aside, not shown", case_id, snapshot.id
            )
            self._with(unverified_items=self.store.unverified_count())
        return int(added)

    def _start_listeners(self, clients: FirebaseClients) -> None:
        if self._listeners:
            return
        since = self._watermark()

        def on_cases(snapshots: list[Any], changes: Any, read_time: Any) -> None:
            newest: datetime | None = None
            for snapshot in snapshots:
                self._apply_case(snapshot)
                newest = _latest(newest, (snapshot.to_dict() or {}).get("updated_at"))
            self._advance_watermark(newest)

        def on_messages(snapshots: list[Any], changes: Any, read_time: Any) -> None:
            for snapshot in snapshots:
                self._apply_message(snapshot)

        self._listeners = [
            self._cases_query(clients, since).on_snapshot(on_cases),
            self._messages_query(clients, since).on_snapshot(on_messages),
        ]

    def _stop_listeners(self) -> None:
        for watch in self._listeners:
            try:
                watch.unsubscribe()
            except Exception:
                log.debug("unsubscribing a listener failed", exc_info=True)
        self._listeners = []

    def _heartbeat(self, clients: FirebaseClients, model_rejected: str | None) -> None:
        from google.cloud.firestore import SERVER_TIMESTAMP

        clients.db.collection(schema.KIOSKS).document(self.store.kiosk_id).set(
            {
                "kiosk_id": self.store.kiosk_id,
                "last_seen": SERVER_TIMESTAMP,
                "model_version": self.updater.running_version(),
                "queue_depth": self.store.queue_depth(),
                "app_version": self.app_version,
                # The fleet sees a release that failed verification on this kiosk.
                "model_rejected": model_rejected,
                "last_sync": utc_now(),
            },
            merge=True,
        )

    # ---- running in the background ------------------------------------------------------

    def request_sync(self) -> None:
        """Start a pass now (UI button, MQTT `sync_now`, a new case saved)."""
        self._wake.set()

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        self._pass_stop = stop  # a long run of full pictures ends when this is set too
        rng = random.Random()
        down_since: float | None = None  # the link dropped then: probe instead of waiting
        link_up = False  # the last probe or pass got through
        # Passes in a row that a probe let through and that then failed on the link without
        # sending anything: an endpoint that accepts connections and drops every request
        # must not be retried twice a second for ever.
        fruitless = 0
        while not stop.is_set():
            if down_since is not None:
                if not self._probe_link(time.monotonic() - down_since, stop, rng):
                    link_up = False
                    continue
                log.info("link back after %.1f s", time.monotonic() - down_since)
                # The next drop starts probing from PROBE_FIRST_S again: a link that was up
                # a moment ago is likely to be back soon.
                down_since, link_up = None, True
            sent_before = self._advances
            try:
                self.sync_once()
                self._attempt = 0
                fruitless = 0
                link_up = True
                if self._clients is not None:
                    try:
                        self._start_listeners(self._clients)
                    except Exception as e:
                        log.warning("listeners not started: %s", type(e).__name__)
                delay = self.config.sync_interval_s
            except CredentialsError as e:
                # Only a person can fix this (and a restart picks up the new file).
                log.error("sync disabled: %s", e)
                delay = BACKOFF_MAX_S
            except OfflineError as e:
                self._stop_listeners()
                if classify(e) is Failure.LINK:
                    # The network, not Firebase: probe from now on, send once it is back.
                    if link_up:
                        self._link.dropped()
                        self._publish_link()
                    if down_since is None:
                        down_since = time.monotonic()
                    link_up = False
                    fruitless = 0 if self._advances > sent_before else fruitless + 1
                    if fruitless <= FRUITLESS_PASSES:
                        log.info("link down (%s); probing", e)
                        continue
                    delay = backoff_delay(fruitless - FRUITLESS_PASSES, rng)
                    log.info("link drops every request (%s); next try in %.0f s", e, delay)
                    self._with(next_attempt_in_s=round(delay, 1))
                    self._wake.wait(timeout=delay)
                    self._wake.clear()
                    continue
                down_since = None
                delay = backoff_delay(self._attempt, rng)
                self._attempt += 1
                log.info("sync failed (%s); next try in %.0f s", e, delay)
                self._with(next_attempt_in_s=round(delay, 1))
            self._wake.wait(timeout=delay)
            self._wake.clear()
        self._disconnect()

    def _probe_link(self, down_for_s: float, stop: threading.Event, rng: random.Random) -> bool:
        """Wait for the next probe (a sync request cuts the wait short), then one TCP connect
        to each endpoint: True when all answered."""
        delay = probe_delay(down_for_s, self.config.link_probe_interval_s, rng)
        self._with(next_attempt_in_s=round(delay, 1))
        self._wake.wait(timeout=delay)
        self._wake.clear()
        if stop.is_set():
            return False
        try:
            probe(self.config)
        except OfflineError:
            return False
        return True

    def _publish_link(self) -> None:
        """The link's stability on the status and, for `kiosk status`, in the store."""
        link = self._link.report()
        self._with(
            link_unstable=link.unstable,
            link_drops_recent=link.drops_recent,
            cases_sent_while_unstable=link.cases_sent_while_unstable,
            bytes_sent_while_unstable=link.bytes_sent_while_unstable,
        )
        try:
            # Called on every pass: each write is a commit and an fsync on the SD card.
            row = link.as_dict()
            if _link_row_outdated(self.store.get_value(LINK_KEY), row):
                self.store.set_value(LINK_KEY, json.dumps({**row, "at": utc_now().isoformat()}))
        except CaseStoreError as e:  # a status line must not stop sending
            log.warning("link status not stored: %s", e)

    def start(self) -> SyncService:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self.run_forever, name="skinscan-sync", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def _link_row_outdated(raw: str | None, link: dict[str, object]) -> bool:
    """Whether the stored link row must be rewritten: when it says something else than
    `link` (its time aside), or when it is old enough that stored_link_status may soon read
    it as steady (older than UNSTABLE_WINDOW_S) while it says otherwise."""
    try:
        stored = json.loads(raw) if raw else None
        at = datetime.fromisoformat(stored.pop("at"))
        age = utc_now() - at
    except (ValueError, TypeError, KeyError, AttributeError):
        return True  # none yet, damaged, or written by another version
    if stored != link:
        return True
    steady = LinkMonitor().report().as_dict()  # what a row too old to count reads as
    return stored != steady and age > timedelta(seconds=LINK_REFRESH_S)


def stored_link_status(store: CaseStore) -> dict[str, Any]:
    """What the sync process last recorded of the link (for `kiosk status`, another process):
    steady unless it was unstable within UNSTABLE_WINDOW_S."""
    steady: dict[str, Any] = {**LinkMonitor().report().as_dict(), "at": None}
    raw = store.get_value(LINK_KEY)
    try:
        stored = json.loads(raw) if raw else None
        at = datetime.fromisoformat(stored["at"]) if isinstance(stored, dict) else None
    except (ValueError, TypeError, KeyError):
        return steady  # written by another version, or damaged: nothing to say
    if stored is None or at is None or utc_now() - at > timedelta(seconds=UNSTABLE_WINDOW_S):
        return steady
    return {**steady, **{k: stored[k] for k in steady if k in stored}}


def _storage_retry() -> Any:
    """Retry a server's passing trouble (429, 5xx) within the budget, never a dropped
    connection: the library would wait 1, 2, 4 s on a timer, while run_forever probes the link
    and sends again the moment it is back."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    return Retry(
        predicate=if_exception_type(
            gexc.TooManyRequests,
            gexc.InternalServerError,
            gexc.BadGateway,
            gexc.ServiceUnavailable,
            gexc.GatewayTimeout,
        ),
        initial=1.0,
        maximum=4.0,
        timeout=RETRY_BUDGET_S,
    )


def _part_name(path: str) -> str:
    return "compact copy" if path.endswith(".compact.jpg") else "full picture"


def _picture_metadata(case: Case) -> dict[str, str]:
    return {"case_id": case.case_id, "kiosk_id": case.kiosk_id, "sha256": case.image_sha256}


def _stored_already(blob: Any, md5: str, size: int) -> bool:
    """Storage holds exactly these bytes under this name (one metadata request)."""
    from google.api_core.exceptions import NotFound

    try:
        blob.reload(timeout=UPLOAD_TIMEOUT_S, retry=None)
    except NotFound:
        return False
    return blob.md5_hash == md5 and blob.size == size


def _firestore_retry() -> Any:
    from google.api_core.exceptions import DeadlineExceeded, ServiceUnavailable
    from google.api_core.retry import Retry, if_exception_type

    return Retry(
        predicate=if_exception_type(ServiceUnavailable, DeadlineExceeded),
        initial=0.2,
        maximum=2.0,
        timeout=RETRY_BUDGET_S,
    )


# Longest text kept from a document (a forged one can be any size; the console's are shorter).
MAX_REMOTE_TEXT = 4000


def _text(value: Any) -> str:
    return value[:MAX_REMOTE_TEXT] if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _review_fields(review: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a review map, each field of the type it must have: anyone can
    write a document, and one with a list for a label or text for a timestamp must not stop
    the sync of every case after it."""
    return {
        "label": _text(review.get("label")),
        "recommendation": _text(review.get("recommendation")),
        "reviewer": _text(review.get("reviewer")),
        "reviewed_at": _time(review.get("reviewed_at")),
    }


def _latest(current: datetime | None, value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return current
    return value if current is None or value > current else current
