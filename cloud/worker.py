"""`skinscan-cloud worker`: classify every uploaded case once with the stronger cloud model.

Cases are found two ways: a Firestore listener on `status == "uploaded"` (new cases within a
second) and a catch-up query at start and every `catch_up_interval_s` (cases that arrived while
no worker ran, and cases whose worker died: an expired lease changes nothing in the document,
so no listener would fire for it). Each case is claimed with a lease (cloud.leases) before any
work and the lease is renewed while the work goes on (LeaseKeeper), so workers can run side by
side, a second look at a finished case does nothing, and a dead worker's case is another's
within one lease plus one catch-up interval.

A case is classified from its first look (cloud.pictures.first_look): the compact copy when the
kiosk sent one on a slow link, which is in Storage before the document, so the result never
waits for the full picture's resumable upload. The result records which picture it came from
(`cloud.image_part`); the case is not classified again when the full picture arrives.

Output is one JSON line per case on stdout: the case id, the outcome and timings, never the
result or anything about the patient.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from firebase_admin import firestore
from google.api_core import exceptions as gexc

from cloud import leases, pictures
from cloud.leases import Claim, Commit
from cloud.pictures import PictureMismatchError, StoredPicture
from cloud.transactions import ContendedError
from cloud.tta import classify_tta
from kiosk.cases import cloud_schema as schema
from kiosk.errors import ImageReadError
from kiosk.live.imaging import load_rgb
from kiosk.model.classifier import Classifier

T = TypeVar("T")


class PermanentCaseError(Exception):
    """This case's image can never be classified as it is (reason is safe to store and log)."""


@dataclass(frozen=True)
class Outcome:
    case_id: str
    outcome: str  # a Claim or Commit value, or "retry" / "failed"
    ms: float


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# A lease is renewed this often (a fraction of its length): two renewals can fail in a row
# (a Firestore hiccup) before it runs out under a live worker.
RENEW_SHARE = 1 / 3


class LeaseKeeper:
    """Renews a claimed case's lease in a background thread while the `with` block works on
    it. A renewal that finds the lease gone stops renewing (commit() then says LOST_LEASE); a
    failed renewal (network) is tried again at the next turn."""

    def __init__(self, db: Any, case_id: str, worker: str, lease_s: float) -> None:
        self.db, self.case_id, self.worker, self.lease_s = db, case_id, worker, lease_s
        self.renewals = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{case_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s * RENEW_SHARE):
            try:
                if not leases.renew(self.db, self.case_id, self.worker, self.lease_s):
                    self.lost = True
                    emit("lease_lost", case=self.case_id)
                    return
                self.renewals += 1
            except Exception as e:
                emit("error", error=type(e).__name__, where="lease renewal")


class CaseWorker:
    def __init__(
        self,
        db: Any,
        bucket: Any,
        classifier: Classifier,
        worker_id: str,
        lease_s: float,
        report: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.db = db
        self.bucket = bucket
        self.classifier = classifier
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.report = report or (lambda o: emit("case", case=o.case_id, outcome=o.outcome, ms=o.ms))

    # -- one case

    def process(self, case_id: str) -> Outcome:
        start = time.perf_counter()
        claimed = leases.claim(self.db, case_id, self.worker_id, self.lease_s)
        if claimed is not Claim.CLAIMED:
            return self._done(case_id, str(claimed), start)
        try:
            with LeaseKeeper(self.db, case_id, self.worker_id, self.lease_s):
                picture, rgb = self._fetch_image(case_id)
                result = classify_tta(self.classifier, rgb)
        except PermanentCaseError as e:
            leases.give_up(self.db, case_id, self.worker_id, permanent=str(e))
            return self._done(case_id, "failed", start)
        except (gexc.GoogleAPIError, OSError):
            # Network or a blob not there yet: release now so the next catch-up retries.
            leases.give_up(self.db, case_id, self.worker_id, permanent=None)
            return self._done(case_id, "retry", start)
        try:
            committed = leases.commit(
                self.db, case_id, self.worker_id, result, image_part=picture.part
            )
        except ContendedError:
            # Release the lease rather than sit on it until it expires: the next catch-up
            # does the case again in seconds, not minutes.
            leases.give_up(self.db, case_id, self.worker_id, permanent=None)
            return self._done(case_id, "retry", start)
        return self._done(case_id, str(committed), start)

    def _done(self, case_id: str, outcome: str, start: float) -> Outcome:
        result = Outcome(case_id, outcome, round((time.perf_counter() - start) * 1000, 1))
        if outcome != str(Claim.NOT_PENDING):
            self.report(result)
        return result

    def _fetch_image(self, case_id: str) -> tuple[StoredPicture, Any]:
        """The case's first look (the compact copy when the kiosk sent one, so a slow link's
        full picture is never waited for), checked against its own sha256 and decoded."""
        case = self.db.collection(schema.CASES).document(case_id).get().to_dict() or {}
        picture = pictures.first_look(case)
        if picture is None:
            raise PermanentCaseError("case has no image path or sha256")
        try:
            data = pictures.download(self.bucket, picture)
        except PictureMismatchError:
            raise PermanentCaseError("image sha256 does not match the case") from None
        # load_rgb applies the kiosk's decoding limits and EXIF handling to a file; the image is
        # patient data, so the file lives only for the decode.
        with tempfile.TemporaryDirectory(prefix="skinscan-case-") as tmp:
            file = Path(tmp) / "image.jpg"
            file.write_bytes(data)
            try:
                return picture, load_rgb(file)
            except ImageReadError:
                raise PermanentCaseError("image cannot be decoded") from None

    # -- many cases

    def pending_case_ids(self) -> list[str]:
        """Uploaded cases, most urgent and then oldest first (sorted here: ordering on a
        second field would need a composite index)."""
        docs = (
            self.db.collection(schema.CASES)
            .where(filter=firestore.FieldFilter("status", "==", schema.STATUS_UPLOADED))
            .stream()
        )
        rows = []
        for doc in docs:
            case = doc.to_dict()
            rows.append((case.get("urgency_rank", 3), str(case.get("created_at", "")), doc.id))
        return [case_id for _, _, case_id in sorted(rows)]

    def catch_up(self) -> list[Outcome]:
        return [self.process(case_id) for case_id in self.pending_case_ids()]

    def run(self, catch_up_interval_s: float, stop: threading.Event) -> None:
        """Listen and catch up until `stop` is set."""
        arrivals: queue.Queue[str] = queue.Queue()
        watch = self._listen(arrivals)
        # Releasing a case after a passing failure (blob missing, network) modifies it, and
        # the listener hands it straight back: without this, a case whose image is gone would
        # be retried in a tight loop. Such cases wait for the next catch-up instead.
        retry_later: set[str] = set()
        try:
            next_catch_up = 0.0
            while not stop.is_set():
                if time.monotonic() >= next_catch_up:
                    if not watch.is_active:
                        # The stream ended (Firestore restarted, network lost): listen again;
                        # the catch-up right after covers what arrived meanwhile.
                        watch.unsubscribe()
                        watch = self._listen(arrivals)
                        emit("relistening")
                    outcomes = self._guarded(self.catch_up) or []
                    retry_later = {o.case_id for o in outcomes if o.outcome == "retry"}
                    next_catch_up = time.monotonic() + catch_up_interval_s
                try:
                    case_id = arrivals.get(timeout=min(1.0, catch_up_interval_s))
                except queue.Empty:
                    continue
                if case_id in retry_later:
                    continue
                done = self._guarded(lambda c=case_id: self.process(c))
                if done is not None and done.outcome == "retry":
                    retry_later.add(case_id)
        finally:
            watch.unsubscribe()

    def _listen(self, arrivals: queue.Queue[str]) -> Any:
        def on_snapshot(_docs: Any, changes: Any, _read_time: Any) -> None:
            now = leases.now_utc()
            for change in changes:
                if change.type.name not in ("ADDED", "MODIFIED"):
                    continue
                # Another worker's claim modifies the case too: skip cases under a live lease
                # instead of answering every claim with a doomed claim of our own (that only
                # makes the transactions collide). An expired lease is the catch-up's job.
                lease = leases.Lease.from_document((change.document.to_dict() or {}).get("lease"))
                if lease is not None and lease.live(now):
                    continue
                arrivals.put(change.document.id)

        return (
            self.db.collection(schema.CASES)
            .where(filter=firestore.FieldFilter("status", "==", schema.STATUS_UPLOADED))
            .on_snapshot(on_snapshot)
        )

    def _guarded(self, work: Callable[[], T]) -> T | None:
        # A Firestore outage must not end the worker: log one line and go on; the lease
        # machinery makes a repeat harmless.
        try:
            return work()
        except gexc.GoogleAPIError as e:
            emit("error", error=type(e).__name__)
            time.sleep(1.0)
            return None


def main_loop(worker: CaseWorker, once: bool, catch_up_interval_s: float) -> int:
    if once:
        outcomes = worker.catch_up()
        done = sum(o.outcome == str(Commit.CLASSIFIED) for o in outcomes)
        emit("done", classified=done, seen=len(outcomes))
        return 0
    stop = threading.Event()
    _stop_on_signals(stop)
    quiet_listener_errors()
    emit("listening", worker=worker.worker_id)
    worker.run(catch_up_interval_s, stop)
    return 0


def quiet_listener_errors() -> None:
    """The Firestore client's watch threads raise when their stream ends (Firestore restarted,
    network lost). The worker notices (`watch.is_active`) and listens again, so one JSON line
    says it; a traceback on stderr would read as a crash to whoever watches the logs."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, gexc.GoogleAPIError):
            emit("error", error=type(args.exc_value).__name__, where="listener")
            return
        default(args)

    threading.excepthook = hook


def _stop_on_signals(stop: threading.Event) -> None:
    import signal

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
