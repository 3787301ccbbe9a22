"""Everything the review console reads from and writes to Firestore and Storage, following
kiosk.cases.cloud_schema. Views get typed rows, never raw documents.

Writes by the console are create-only where history matters: a message id or an audit entry id
that exists already is refused by Firestore (create()), so neither a form nor a replayed
request can rewrite a health worker's note, a dermatologist's message or the audit trail.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from firebase_admin import firestore
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_transient_error
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.storage.retry import DEFAULT_RETRY

from cloud import pictures
from cloud.console.signing import ReviewSigner
from cloud.pictures import PictureMismatchError, StoredPicture
from kiosk.cases import cloud_schema as schema
from kiosk.cases.case_code import ALPHABET, case_code
from kiosk.cases.case_code import LENGTH as CODE_LENGTH
from kiosk.cases.provenance import Provenance
from kiosk.cases.store import Review
from kiosk.model.conditions import CONDITIONS

# Firestore reserves ids of the form __name__.
CASE_ID = re.compile(r"^(?!__.*__$)[A-Za-z0-9_-]{1,64}$")
CASE_CODE = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")
OPEN_STATUSES = [schema.STATUS_UPLOADED, schema.STATUS_CLASSIFIED]
# What the worklist shows and sorts by: not the probabilities, image or patient details.
QUEUE_FIELDS = [
    "created_at",
    "kiosk_id",
    "status",
    "urgency_rank",
    "body_site",
    "demo",
    "on_device.label",
    "on_device.confidence",
    "on_device.urgency",
    "cloud.label",
    "cloud.confidence",
    "cloud.urgency",
    "review.label",
    "review.reviewer",
    "review.reviewed_at",
    # Enough to tell that the full picture is still on its way (schema.full_image_available).
    "compact_image.path",
    "full_image_stored",
]
OVERVIEW_FIELDS = [
    "created_at",
    "kiosk_id",
    "urgency_rank",
    "demo",
    "on_device.label",
    "cloud.label",
    "cloud.urgency",
    "review.label",
    "review.reviewed_at",
]
SEARCH_ROWS = 50
# Threads of flagged cases read at once for the worklist (each is one small query).
THREAD_READERS = 8
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Every call is bounded. With Firestore or Storage unreachable the client libraries would wait
# for minutes, and a dermatologist would stare at a page that never loads; instead the call
# fails within about CALL_TIMEOUT_S + RETRY_S, and the app shows "nothing was saved, try
# again" (503).
CALL_TIMEOUT_S = 10.0
RETRY_S = 15.0
_RETRY = Retry(
    initial=0.2, maximum=2.0, multiplier=2.0, timeout=RETRY_S, predicate=if_transient_error
)
BOUNDED: dict[str, Any] = {"timeout": CALL_TIMEOUT_S, "retry": _RETRY}
_STORAGE_RETRY = DEFAULT_RETRY.with_timeout(RETRY_S)


class CaseNotFoundError(LookupError):
    pass


class AlreadySavedError(Exception):
    """This submission (the same form, sent again) was written before: nothing is written
    twice."""


@dataclass(frozen=True)
class Result:
    label: str
    confidence: float
    urgency: str
    abstained: bool
    model_version: str
    probabilities: dict[str, float]

    @classmethod
    def from_document(cls, doc: Any) -> Result | None:
        if not isinstance(doc, dict) or doc.get("label") not in CONDITIONS:
            return None
        probs = doc.get("probabilities") or {}
        return cls(
            label=doc["label"],
            confidence=float(doc.get("confidence", 0.0)),
            urgency=str(doc.get("urgency", "")),
            abstained=bool(doc.get("abstained", False)),
            model_version=str(doc.get("model_version", "")),
            probabilities={c: float(probs.get(c, 0.0)) for c in CONDITIONS},
        )


@dataclass(frozen=True)
class Case:
    case_id: str
    kiosk_id: str
    created_at: datetime
    status: str
    urgency_rank: int
    body_site: str
    patient_ref: str
    image: StoredPicture | None  # the full-resolution picture, stored or still on its way
    on_device: Result | None
    cloud: Result | None
    review: Review | None
    demo: bool = False  # the bundled demo clip, never a patient
    provenance: Provenance | None = None  # absent for cases saved before it was recorded
    compact: StoredPicture | None = None  # the compact copy the kiosk sent first, if any
    full_pending: bool = False  # Storage does not hold the full picture yet
    # The review map as stored, for checking its signature (kiosk.cases.specialist_check).
    review_fields: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def code(self) -> str:
        """The six-character code the kiosk shows and the health worker writes on the card."""
        return case_code(self.case_id)

    @property
    def queue_rank(self) -> int:
        """The kiosk's urgency rank, raised (never lowered) by the cloud's result: a cancer the
        stronger model suspects must not wait behind routine cases."""
        cloud = schema.URGENCY_RANK.get(self.cloud.urgency, 3) if self.cloud else 3
        return min(self.urgency_rank, cloud)

    @property
    def urgency(self) -> str:
        for name, rank in schema.URGENCY_RANK.items():
            if rank == self.queue_rank:
                return name
        return "none"

    @property
    def raised_by_cloud(self) -> bool:
        return self.queue_rank < self.urgency_rank

    @property
    def suggestion(self) -> Result | None:
        """The machine's best answer, shown beside the form (never ticked in it): the cloud's
        when there is one, else the kiosk's."""
        return self.cloud or self.on_device

    @property
    def review_time(self) -> datetime | None:
        return self.review.reviewed_at if self.review else None

    @property
    def shown_picture(self) -> StoredPicture | None:
        """What the case page shows: the full picture once it is stored, else the compact
        copy (a first look while the full one is still on its way from the kiosk)."""
        return self.compact if self.full_pending else self.image

    @property
    def thumbnail_picture(self) -> StoredPicture | None:
        """The smallest download that makes a worklist thumbnail."""
        return self.compact or self.image

    def picture(self, part: str) -> StoredPicture | None:
        """The picture `part` (pictures.PARTS) when Storage holds it, else None."""
        if part == pictures.PART_FULL:
            return None if self.full_pending else self.image
        if part == pictures.PART_COMPACT:
            return self.compact
        return None


@dataclass(frozen=True)
class Message:
    message_id: str
    author: str
    author_name: str
    body: str
    created_at: datetime | None
    kiosk_id: str  # the kiosk a health worker's message came from
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # When Firestore stored it (the server's clock). created_at is the writer's: a kiosk's
    # question written offline at 10:00 and sent at 11:00 came after a 10:30 answer.
    received_at: datetime | None = None


@dataclass(frozen=True)
class Kiosk:
    kiosk_id: str
    last_seen: datetime | None
    model_version: str
    queue_depth: int | None
    app_version: str


@dataclass(frozen=True)
class Reviewer:
    username: str
    name: str


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _provenance(d: Any) -> Provenance | None:
    if not isinstance(d, dict):
        return None
    try:
        return Provenance.from_dict(d)
    except (TypeError, ValueError):
        return None  # a damaged map is not a reason to hide the case


def _case(doc_id: str, d: dict[str, Any]) -> Case:
    review = d.get("review")
    provenance = _provenance(d.get("provenance"))
    return Case(
        case_id=doc_id,
        kiosk_id=str(d.get("kiosk_id", "")),
        created_at=_time(d.get("created_at")) or EPOCH,
        status=str(d.get("status", "")),
        urgency_rank=int(d.get("urgency_rank", 3)),
        body_site=str(d.get("body_site", "")),
        patient_ref=str(d.get("patient_ref", "")),
        image=pictures.full_picture(d),
        on_device=Result.from_document(d.get("on_device")),
        cloud=Result.from_document(d.get("cloud")),
        review=Review.from_dict(review) if isinstance(review, dict) else None,
        demo=bool(d.get("demo")) or bool(provenance and provenance.demo),
        provenance=provenance,
        compact=pictures.compact_picture(d),
        full_pending=not schema.full_image_available(d),
        review_fields=dict(review) if isinstance(review, dict) else None,
    )


def _first_unanswered(
    case_id: str, thread: list[Message], is_answer: Callable[[str, str, dict[str, Any]], bool]
) -> datetime | None:
    """When the oldest question not followed by a real (signed) answer was asked; None when
    every question has one. "Followed" in the order the server received them: the kiosk's
    clock says when a question was written, not whether it came before an answer."""
    pending = None
    for m in sorted(thread, key=lambda m: (m.received_at or m.created_at or EPOCH, m.message_id)):
        if m.author == schema.AUTHOR_DERMATOLOGIST and is_answer(case_id, m.message_id, m.fields):
            pending = None
        elif m.author == schema.AUTHOR_HEALTH_WORKER and pending is None:
            pending = m.created_at or EPOCH
    return pending


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ConsoleStore:
    def __init__(self, db: Any, bucket: Any) -> None:
        self.db = db
        self.bucket = bucket

    def _cases(self) -> Any:
        return self.db.collection(schema.CASES)

    def _ref(self, case_id: str) -> Any:
        if not CASE_ID.match(case_id):
            raise CaseNotFoundError(case_id)
        return self._cases().document(case_id)

    # -- reads

    def _open_cases(self) -> Any:
        return self._cases().where(filter=firestore.FieldFilter("status", "in", OPEN_STATUSES))

    def queue(self) -> list[Case]:
        """Cases waiting for a dermatologist, most urgent first, then oldest first."""
        docs = self._open_cases().select(QUEUE_FIELDS).stream(**BOUNDED)
        cases = [_case(doc.id, doc.to_dict()) for doc in docs]
        return sorted(cases, key=lambda c: (c.queue_rank, c.created_at, c.case_id))

    def queue_depth(self) -> int:
        """How many cases wait for a dermatologist, counted by Firestore (no documents read)."""
        result = self._open_cases().count().get(**BOUNDED)
        return int(result[0][0].value)

    def unanswered_questions(
        self, is_answer: Callable[[str, str, dict[str, Any]], bool]
    ) -> dict[str, tuple[Case, datetime]]:
        """Cases whose thread ends with a health worker's message nobody answered, reviewed or
        not: case id → (case, when the first unanswered question was asked).

        `is_answer(case_id, message_id, fields)` says whether a dermatologist message really is
        one (its signature verifies): a message forged with a kiosk credential must not make a
        question disappear from the worklist.

        Only the threads of cases flagged `awaiting_reply` are read, not every message of the
        programme: the kiosk sets the flag right after creating each question (and retries
        both until the flag is written), whatever the case's status, so no question falls
        through. A flagged case with nothing left unanswered is unflagged here (_unflag), where
        the answer's signature has just been checked."""
        flagged = [
            snap
            for snap in self._cases()
            .where(filter=firestore.FieldFilter("awaiting_reply", "==", True))
            .select(QUEUE_FIELDS)
            .stream(**BOUNDED)
            if CASE_ID.match(snap.id)
        ]
        threads = self._threads([snap.id for snap in flagged])
        found: dict[str, tuple[Case, datetime]] = {}
        for snap in flagged:
            asked = _first_unanswered(snap.id, threads[snap.id], is_answer)
            if asked is None:
                self._unflag(snap)
            else:
                found[snap.id] = (_case(snap.id, snap.to_dict()), asked)
        return found

    def _threads(self, case_ids: list[str]) -> dict[str, list[Message]]:
        """Several cases' threads, read side by side: one round trip each, and a worklist load
        should not wait for them one after another."""
        if not case_ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(THREAD_READERS, len(case_ids))) as pool:
            return dict(zip(case_ids, pool.map(self.messages, case_ids), strict=True))

    def _unflag(self, snap: Any) -> None:
        """Clear `awaiting_reply` on a case whose questions are all answered, only if the case
        is unchanged since `snap` was read. A question that arrived after the thread was read
        was followed by the kiosk's flag write, which changed the document: the precondition
        then fails and the flag stays for the next load to look again. (This is why the reply
        itself does not clear the flag: a question sent while the dermatologist typed would
        lose its flag.)"""
        # Changed meanwhile (FailedPrecondition) or unreachable: flagged until the next load.
        with contextlib.suppress(gexc.GoogleAPIError):
            snap.reference.update(
                {"awaiting_reply": False, "updated_at": firestore.SERVER_TIMESTAMP},
                option=self.db.write_option(last_update_time=snap.update_time),
                **BOUNDED,
            )

    def reviewed_since(self, days: int) -> list[Case]:
        since = datetime.now(UTC) - timedelta(days=days)
        docs = (
            self._cases()
            .where(filter=firestore.FieldFilter("review.reviewed_at", ">=", since))
            .select(QUEUE_FIELDS)
            .stream(**BOUNDED)
        )
        return [_case(doc.id, doc.to_dict()) for doc in docs]

    def search(self, q: str) -> list[Case]:
        """Cases whose id starts with `q` (the queue shows the first 8 characters), whose
        patient reference is exactly `q`, or whose case code (the kiosk's six characters, any
        case) is `q`."""
        found: dict[str, Case] = {}
        exact = [("patient_ref", q)]
        if CASE_CODE.match(q.upper()):
            exact.append(("case_code", q.upper()))
        for name, wanted in exact:
            query = (
                self._cases()
                .where(filter=firestore.FieldFilter(name, "==", wanted))
                .select(QUEUE_FIELDS)
                .limit(SEARCH_ROWS)
            )
            for doc in query.stream(**BOUNDED):
                found[doc.id] = _case(doc.id, doc.to_dict())
        if CASE_ID.match(q):
            # Ids sort as strings: every id with this prefix lies in [q, q + U+F8FF).
            by_id = (
                self._cases()
                .where(filter=firestore.FieldFilter(FieldPath.document_id(), ">=", self._ref(q)))
                .where(
                    filter=firestore.FieldFilter(
                        FieldPath.document_id(), "<", self._cases().document(q + "\uf8ff")
                    )
                )
                .select(QUEUE_FIELDS)
                .limit(SEARCH_ROWS)
            )
            for doc in by_id.stream(**BOUNDED):
                found[doc.id] = _case(doc.id, doc.to_dict())
        return list(found.values())

    def case(self, case_id: str) -> Case:
        snap = self._ref(case_id).get(**BOUNDED)
        if not snap.exists:
            raise CaseNotFoundError(case_id)
        return _case(snap.id, snap.to_dict())

    def messages(self, case_id: str) -> list[Message]:
        docs = self._ref(case_id).collection(schema.MESSAGES).stream(**BOUNDED)
        rows = []
        for doc in docs:
            d = doc.to_dict()
            rows.append(
                Message(
                    message_id=doc.id,
                    author=str(d.get("author", "")),
                    author_name=str(d.get("author_name", "")),
                    body=str(d.get("body", "")),
                    created_at=_time(d.get("created_at")),
                    kiosk_id=str(d.get("kiosk_id", "")),
                    fields=d,
                    received_at=_time(getattr(doc, "create_time", None)),
                )
            )
        return sorted(rows, key=lambda m: (m.created_at or EPOCH, m.message_id))

    def image(self, case: Case, picture: StoredPicture | None) -> bytes:
        """One of the case's pictures (Case.shown_picture, .picture(part), ...), checked
        against the sha256 of the dict that describes it; CaseNotFoundError when there is no
        such picture or Storage holds other bytes."""
        if picture is None:
            raise CaseNotFoundError(case.case_id)
        try:
            return pictures.download(
                self.bucket, picture, timeout=CALL_TIMEOUT_S, retry=_STORAGE_RETRY
            )
        except PictureMismatchError:
            raise CaseNotFoundError(case.case_id) from None

    # -- writes

    def submit(
        self,
        case_id: str,
        *,
        review: tuple[str, str] | None,
        reply: str | None,
        reviewer: Reviewer,
        ids: SubmissionIds,
        signer: ReviewSigner,
    ) -> None:
        """A review (label, recommendation) and/or a reply, signed, in one batch with their
        audit entries: all of it is written or none. Every id is made by the server
        (`ids`); the message and the audit entries are created, never overwritten, so the same
        form sent twice raises AlreadySavedError and writes nothing."""
        if review is None and reply is None:
            raise ValueError("nothing to save")
        ref = self._ref(case_id)
        case = self.case(case_id)  # CaseNotFoundError; and the kiosk id the signature covers
        audit = self.db.collection(schema.AUDIT)
        batch = self.db.batch()
        if review is not None:
            label, recommendation = review
            signature = signer.review(
                case_id=case_id,
                kiosk_id=case.kiosk_id,
                reviewer=reviewer.username,
                reviewer_name=reviewer.name,
                label=label,
                recommendation=recommendation,
            )
            # update() fails on a missing document; the last review written wins (a second
            # dermatologist's correction replaces the first, and both are in the audit).
            batch.update(
                ref,
                {
                    "review": {
                        "label": label,
                        "recommendation": recommendation,
                        "reviewer": reviewer.name,
                        "reviewer_username": reviewer.username,
                        "author": schema.AUTHOR_DERMATOLOGIST,
                        "reviewed_at": firestore.SERVER_TIMESTAMP,
                        "signed_at": signature.signed_at,
                        "signature": signature.signature,
                    },
                    "status": schema.STATUS_REVIEWED,
                    "updated_at": firestore.SERVER_TIMESTAMP,
                },
            )
            batch.create(
                audit.document(ids.review_audit),
                _audit(
                    "review",
                    case_id,
                    reviewer.username,
                    {"label": label, "text_sha256": text_sha256(recommendation)},
                ),
            )
        if reply is not None:
            signature = signer.message(
                case_id=case_id,
                kiosk_id=case.kiosk_id,
                message_id=ids.message,
                reviewer=reviewer.username,
                reviewer_name=reviewer.name,
                body=reply,
            )
            batch.create(
                ref.collection(schema.MESSAGES).document(ids.message),
                {
                    "case_id": case_id,
                    "kiosk_id": case.kiosk_id,
                    "author": schema.AUTHOR_DERMATOLOGIST,
                    "author_name": reviewer.name,
                    "reviewer_username": reviewer.username,
                    "body": reply,
                    "created_at": firestore.SERVER_TIMESTAMP,
                    "signed_at": signature.signed_at,
                    "signature": signature.signature,
                },
            )
            batch.create(
                audit.document(ids.message_audit),
                _audit(
                    "message",
                    case_id,
                    reviewer.username,
                    {"message_id": ids.message, "text_sha256": text_sha256(reply)},
                ),
            )
            if review is None:
                batch.update(ref, {"updated_at": firestore.SERVER_TIMESTAMP})
        try:
            batch.commit(**BOUNDED)
        except gexc.AlreadyExists:
            raise AlreadySavedError(case_id) from None
        except gexc.NotFound:
            raise CaseNotFoundError(case_id) from None

    # -- programme overview

    def recent(self, days: int) -> list[Case]:
        """Cases created in the last `days` days, with only the fields the figures use: two
        weeks of a busy programme is thousands of cases, and their probabilities need not
        cross the wire for a count."""
        since = datetime.now(UTC) - timedelta(days=days)
        return [
            _case(doc.id, doc.to_dict())
            for doc in self._cases()
            .where(filter=firestore.FieldFilter("created_at", ">=", since))
            .select(OVERVIEW_FIELDS)
            .stream(**BOUNDED)
        ]

    def kiosks(self) -> list[Kiosk]:
        rows = []
        for doc in self.db.collection(schema.KIOSKS).stream(**BOUNDED):
            d = doc.to_dict()
            depth = d.get("queue_depth")
            rows.append(
                Kiosk(
                    kiosk_id=str(d.get("kiosk_id", doc.id)),
                    last_seen=_time(d.get("last_seen")),
                    model_version=str(d.get("model_version", "")),
                    queue_depth=int(depth) if isinstance(depth, int | float) else None,
                    app_version=str(d.get("app_version", "")),
                )
            )
        return sorted(rows, key=lambda k: k.last_seen or EPOCH)

    def latest_release(self) -> str | None:
        docs = list(self.db.collection(schema.MODEL_RELEASES).stream(**BOUNDED))
        if not docs:
            return None
        newest = max(docs, key=lambda d: str(d.to_dict().get("published_at", "")))
        return newest.id


@dataclass(frozen=True)
class SubmissionIds:
    """The ids one form submission writes, derived on the server (decision.submission_ids)."""

    review_audit: str
    message: str
    message_audit: str


def _audit(action: str, case_id: str, actor: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action,
        "case_id": case_id,
        "actor": actor,
        "at": firestore.SERVER_TIMESTAMP,
        "detail": detail,
    }
