"""Everything the review console reads from and writes to Firestore and Storage, following
kiosk.cases.cloud_schema. Views get typed rows, never raw documents."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from firebase_admin import firestore
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_transient_error
from google.cloud.storage.retry import DEFAULT_RETRY

from kiosk.cases import cloud_schema as schema
from kiosk.cases.store import Review
from kiosk.model.conditions import CONDITIONS

# Firestore reserves ids of the form __name__.
CASE_ID = re.compile(r"^(?!__.*__$)[A-Za-z0-9_-]{1,64}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_MESSAGE = 2000
MAX_RECOMMENDATION = 4000
OPEN_STATUSES = [schema.STATUS_UPLOADED, schema.STATUS_CLASSIFIED]
# What the queue page shows and sorts by: not the probabilities, image or patient details.
QUEUE_FIELDS = [
    "created_at",
    "kiosk_id",
    "status",
    "urgency_rank",
    "on_device.label",
    "on_device.confidence",
    "cloud.label",
    "cloud.confidence",
    "cloud.urgency",
]
OVERVIEW_FIELDS = ["created_at", "on_device.label", "review.label", "review.reviewed_at"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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


@dataclass(frozen=True)
class Result:
    label: str
    confidence: float
    urgency: str
    abstained: bool
    model_version: str
    probabilities: list[tuple[str, float]]  # most probable first

    @classmethod
    def from_document(cls, doc: Any) -> Result | None:
        if not isinstance(doc, dict) or doc.get("label") not in CONDITIONS:
            return None
        probs = doc.get("probabilities") or {}
        ranked = sorted(((c, float(probs.get(c, 0.0))) for c in CONDITIONS), key=lambda x: -x[1])
        return cls(
            label=doc["label"],
            confidence=float(doc.get("confidence", 0.0)),
            urgency=str(doc.get("urgency", "")),
            abstained=bool(doc.get("abstained", False)),
            model_version=str(doc.get("model_version", "")),
            probabilities=ranked,
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
    image_path: str
    image_sha256: str
    on_device: Result | None
    cloud: Result | None
    review: Review | None

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
    def suggested_label(self) -> str:
        """The label the review form starts on: the review's, else the cloud's, else the
        kiosk's."""
        for source in (self.review, self.cloud, self.on_device):
            if source is not None:
                return source.label
        return "other"


@dataclass(frozen=True)
class Message:
    message_id: str
    author: str
    author_name: str
    body: str
    created_at: datetime | None


@dataclass(frozen=True)
class Kiosk:
    kiosk_id: str
    last_seen: datetime | None
    model_version: str
    queue_depth: int | None
    app_version: str


@dataclass(frozen=True)
class Overview:
    per_day: list[tuple[str, int]]  # (YYYY-MM-DD, cases created), oldest first
    per_condition: list[tuple[str, int, int]]  # (condition, kiosk label count, review count)
    queue_depth: int
    reviewed: int
    turnaround_median_h: float | None
    turnaround_p90_h: float | None
    kiosks: list[Kiosk]
    latest_release: str | None


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _case(doc_id: str, d: dict[str, Any]) -> Case:
    image = d.get("image") or {}
    review = d.get("review")
    return Case(
        case_id=doc_id,
        kiosk_id=str(d.get("kiosk_id", "")),
        created_at=_time(d.get("created_at")) or _EPOCH,
        status=str(d.get("status", "")),
        urgency_rank=int(d.get("urgency_rank", 3)),
        body_site=str(d.get("body_site", "")),
        patient_ref=str(d.get("patient_ref", "")),
        image_path=str(image.get("path", "")),
        image_sha256=str(image.get("sha256", "")),
        on_device=Result.from_document(d.get("on_device")),
        cloud=Result.from_document(d.get("cloud")),
        review=Review.from_dict(review) if isinstance(review, dict) else None,
    )


class ConsoleStore:
    def __init__(self, db: Any, bucket: Any) -> None:
        self.db = db
        self.bucket = bucket

    def _ref(self, case_id: str) -> Any:
        if not CASE_ID.match(case_id):
            raise CaseNotFoundError(case_id)
        return self.db.collection(schema.CASES).document(case_id)

    # -- reads

    def _open_cases(self) -> Any:
        return self.db.collection(schema.CASES).where(
            filter=firestore.FieldFilter("status", "in", OPEN_STATUSES)
        )

    def queue(self) -> list[Case]:
        """Cases waiting for a dermatologist, most urgent first, then oldest first."""
        docs = self._open_cases().select(QUEUE_FIELDS).stream(**BOUNDED)
        cases = [_case(doc.id, doc.to_dict()) for doc in docs]
        return sorted(cases, key=lambda c: (c.queue_rank, c.created_at, c.case_id))

    def queue_depth(self) -> int:
        """How many cases wait for a dermatologist, counted by Firestore (no documents read)."""
        result = self._open_cases().count().get(**BOUNDED)
        return int(result[0][0].value)

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
                )
            )
        return sorted(rows, key=lambda m: (m.created_at or _EPOCH, m.message_id))

    def image(self, case: Case) -> bytes:
        """The case image, checked against the sha256 the kiosk recorded."""
        if not case.image_path:
            raise CaseNotFoundError(case.case_id)
        data = self.bucket.blob(case.image_path).download_as_bytes(
            timeout=CALL_TIMEOUT_S, retry=_STORAGE_RETRY
        )
        if hashlib.sha256(data).hexdigest() != case.image_sha256:
            raise CaseNotFoundError(case.case_id)
        return data

    # -- writes

    def submit_review(
        self, case_id: str, label: str, recommendation: str, reviewer: str, reviewer_name: str
    ) -> None:
        if label not in CONDITIONS:
            raise ValueError("label must be one of the conditions")
        recommendation = recommendation.strip()
        if not recommendation or len(recommendation) > MAX_RECOMMENDATION:
            raise ValueError(f"a recommendation of 1-{MAX_RECOMMENDATION} characters is needed")
        ref = self._ref(case_id)
        audit = self.db.collection(schema.AUDIT).document(uuid.uuid4().hex)

        # One batch, so a review without its audit entry cannot exist. No transaction is
        # needed: update() fails on a missing document, and the last review written wins (a
        # second dermatologist's correction replaces the first, and both are in the audit).
        batch = self.db.batch()
        batch.update(
            ref,
            {
                "review": {
                    "label": label,
                    "recommendation": recommendation,
                    "reviewer": reviewer_name,
                    "reviewed_at": firestore.SERVER_TIMESTAMP,
                },
                "status": schema.STATUS_REVIEWED,
                "updated_at": firestore.SERVER_TIMESTAMP,
            },
        )
        batch.set(audit, _audit("review", case_id, reviewer, {"label": label}))
        try:
            batch.commit(**BOUNDED)
        except gexc.NotFound:
            raise CaseNotFoundError(case_id) from None

    def add_message(
        self, case_id: str, message_id: str, body: str, author: str, author_name: str
    ) -> None:
        """A dermatologist's message. `message_id` was made when the form was shown, so a
        resubmitted form writes the same document instead of a second message."""
        body = body.strip()
        if not body or len(body) > MAX_MESSAGE:
            raise ValueError(f"a message of 1-{MAX_MESSAGE} characters is needed")
        if not MESSAGE_ID.match(message_id):
            raise ValueError("bad message id")
        case = self.case(case_id)
        ref = self._ref(case_id)
        batch = self.db.batch()
        batch.set(
            ref.collection(schema.MESSAGES).document(message_id),
            {
                "case_id": case_id,
                "kiosk_id": case.kiosk_id,
                "author": schema.AUTHOR_DERMATOLOGIST,
                "author_name": author_name,
                "body": body,
                "created_at": firestore.SERVER_TIMESTAMP,
            },
        )
        batch.update(ref, {"updated_at": firestore.SERVER_TIMESTAMP})
        batch.set(
            self.db.collection(schema.AUDIT).document(f"message-{message_id}"),
            _audit("message", case_id, author, {}),
        )
        batch.commit(**BOUNDED)

    # -- programme overview

    def overview(self, days: int = 14) -> Overview:
        since = datetime.now(UTC) - timedelta(days=days)
        # Only the fields the figures use: two weeks of a busy programme is thousands of cases,
        # and their results and probabilities need not cross the wire for a count.
        recent = [
            _case(doc.id, doc.to_dict())
            for doc in self.db.collection(schema.CASES)
            .where(filter=firestore.FieldFilter("created_at", ">=", since))
            .select(OVERVIEW_FIELDS)
            .stream(**BOUNDED)
        ]
        today = datetime.now(UTC).date()
        day_keys = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
        per_day = dict.fromkeys(day_keys, 0)
        for c in recent:
            key = c.created_at.date().isoformat()
            if key in per_day:
                per_day[key] += 1
        kiosk_counts = dict.fromkeys(CONDITIONS, 0)
        review_counts = dict.fromkeys(CONDITIONS, 0)
        turnaround_h = []
        for c in recent:
            if c.on_device:
                kiosk_counts[c.on_device.label] += 1
            if c.review and c.review.label in review_counts:
                review_counts[c.review.label] += 1
                if c.review.reviewed_at:
                    hours = (c.review.reviewed_at - c.created_at).total_seconds() / 3600
                    turnaround_h.append(hours)
        turnaround_h.sort()
        return Overview(
            per_day=list(per_day.items()),
            per_condition=[(c, kiosk_counts[c], review_counts[c]) for c in CONDITIONS],
            queue_depth=self.queue_depth(),
            reviewed=len(turnaround_h),
            turnaround_median_h=_quantile(turnaround_h, 0.5),
            turnaround_p90_h=_quantile(turnaround_h, 0.9),
            kiosks=self.kiosks(),
            latest_release=self.latest_release(),
        )

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
        return sorted(rows, key=lambda k: k.last_seen or _EPOCH)

    def latest_release(self) -> str | None:
        docs = list(self.db.collection(schema.MODEL_RELEASES).stream(**BOUNDED))
        if not docs:
            return None
        newest = max(docs, key=lambda d: str(d.to_dict().get("published_at", "")))
        return newest.id


def _audit(action: str, case_id: str, actor: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action,
        "case_id": case_id,
        "actor": actor,
        "at": firestore.SERVER_TIMESTAMP,
        "detail": detail,
    }


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]
