"""Claiming a case and writing its cloud result, each in one Firestore transaction.

Any number of workers may see the same `uploaded` case at once. A worker claims it by writing
`lease {worker, expires_at}` in a transaction that first checks nobody else holds a live lease;
Firestore retries the transaction when another worker's write lands in between, so at most one
claim succeeds. The result is written in a second transaction only while the lease is still
that worker's, so a worker that stalled past its lease (and whose case another worker took
over) cannot write a second result. While a worker works on a case it renews its lease
(renew(), every third of the lease), so a lease can be short (30 s) and a dead worker's case is
free again within seconds of its last renewal, while a slow but live worker keeps its case.
Lease times are worker wall-clock times: a lease is tens of seconds long, far longer than any
sane clock skew between servers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from firebase_admin import firestore

from cloud.transactions import ContendedError, run_transaction
from cloud.tta import CloudResult
from kiosk.cases import cloud_schema as schema


class Claim(enum.StrEnum):
    CLAIMED = "claimed"
    GONE = "gone"  # no such case
    NOT_PENDING = "not_pending"  # already classified or reviewed
    LEASED = "leased"  # another worker holds a live lease
    FAILED_BEFORE = "failed_before"  # this image could not be classified before


class Commit(enum.StrEnum):
    CLASSIFIED = "classified"
    ATTACHED = "attached"  # reviewed meanwhile: result stored, status left as "reviewed"
    LOST_LEASE = "lost_lease"  # another worker took the case over; nothing written


@dataclass(frozen=True)
class Lease:
    worker: str
    expires_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any] | None) -> Lease | None:
        if not isinstance(doc, dict) or not doc.get("worker"):
            return None
        expires = doc.get("expires_at")
        if not isinstance(expires, datetime):
            return None
        return cls(worker=str(doc["worker"]), expires_at=expires)

    def live(self, now: datetime) -> bool:
        return self.expires_at > now


def now_utc() -> datetime:
    return datetime.now(UTC)


def claim(db: Any, case_id: str, worker: str, lease_s: float) -> Claim:
    ref = db.collection(schema.CASES).document(case_id)

    @firestore.transactional
    def attempt(transaction: Any) -> Claim:
        snap = ref.get(transaction=transaction)
        if not snap.exists:
            return Claim.GONE
        case = snap.to_dict()
        if case.get("status") != schema.STATUS_UPLOADED:
            return Claim.NOT_PENDING
        failure = case.get("cloud_error") or {}
        if failure.get("sha256") and failure.get("sha256") == _classified_sha256(case):
            return Claim.FAILED_BEFORE
        now = now_utc()
        lease = Lease.from_document(case.get("lease"))
        if lease is not None and lease.worker != worker and lease.live(now):
            return Claim.LEASED
        transaction.update(
            ref,
            {"lease": {"worker": worker, "expires_at": now + timedelta(seconds=lease_s)}},
        )
        return Claim.CLAIMED

    try:
        return run_transaction(db, attempt)
    except ContendedError:
        # Only another worker's write to this very case collides with a claim: it is on it.
        # If its claim failed too, the next catch-up finds the case still free.
        return Claim.LEASED


def renew(db: Any, case_id: str, worker: str, lease_s: float) -> bool:
    """Extend this worker's lease by `lease_s` from now. False when the lease is no longer
    this worker's (it expired and another took the case, or the case moved on): stop working
    on it, commit() would refuse anyway."""
    ref = db.collection(schema.CASES).document(case_id)

    @firestore.transactional
    def attempt(transaction: Any) -> bool:
        snap = ref.get(transaction=transaction)
        if not snap.exists:
            return False
        case = snap.to_dict()
        lease = Lease.from_document(case.get("lease"))
        if lease is None or lease.worker != worker:
            return False
        expires = now_utc() + timedelta(seconds=lease_s)
        transaction.update(ref, {"lease": {"worker": worker, "expires_at": expires}})
        return True

    return run_transaction(db, attempt)


def _classified_sha256(case: dict[str, Any]) -> str:
    """The sha256 of the picture a worker classifies (the first look, cloud.worker): a failure
    is remembered for those bytes, and a new picture with other bytes is tried again."""
    return str(schema.first_look_image(case).get("sha256", ""))


def commit(db: Any, case_id: str, worker: str, result: CloudResult, *, image_part: str) -> Commit:
    """`image_part`: which of the case's pictures was classified (cloud.pictures.PARTS)."""
    ref = db.collection(schema.CASES).document(case_id)
    decision = result.decision
    cloud = {
        "label": decision.label,
        "confidence": decision.confidence,
        "probabilities": dict(decision.probabilities),
        "abstained": decision.abstained,
        "urgency": str(decision.urgency),
        "model_version": result.model_version,
        "classified_at": firestore.SERVER_TIMESTAMP,
        "worker": worker,
        "views": result.views,
        "image_part": image_part,
    }

    @firestore.transactional
    def attempt(transaction: Any) -> Commit:
        snap = ref.get(transaction=transaction)
        case = snap.to_dict() if snap.exists else {}
        lease = Lease.from_document(case.get("lease"))
        if lease is None or lease.worker != worker:
            return Commit.LOST_LEASE
        update: dict[str, Any] = {
            "cloud": cloud,
            "lease": firestore.DELETE_FIELD,
            "updated_at": firestore.SERVER_TIMESTAMP,
        }
        # Never downgrade: a case a dermatologist already reviewed keeps its status.
        if case.get("status") == schema.STATUS_UPLOADED:
            update["status"] = schema.STATUS_CLASSIFIED
            outcome = Commit.CLASSIFIED
        else:
            outcome = Commit.ATTACHED
        transaction.update(ref, update)
        return outcome

    return run_transaction(db, attempt)


def give_up(db: Any, case_id: str, worker: str, *, permanent: str | None) -> None:
    """Release this worker's lease. `permanent` (a reason without patient data) records that
    this image cannot be classified, so workers stop retrying it until a new image arrives;
    None means a passing problem (network, missing blob) that the next catch-up retries."""
    ref = db.collection(schema.CASES).document(case_id)

    @firestore.transactional
    def attempt(transaction: Any) -> None:
        snap = ref.get(transaction=transaction)
        if not snap.exists:
            return
        case = snap.to_dict()
        lease = Lease.from_document(case.get("lease"))
        if lease is None or lease.worker != worker:
            return
        update: dict[str, Any] = {"lease": firestore.DELETE_FIELD}
        if permanent:
            update["cloud_error"] = {
                "reason": permanent,
                "sha256": _classified_sha256(case),
                "worker": worker,
                "at": firestore.SERVER_TIMESTAMP,
            }
            update["updated_at"] = firestore.SERVER_TIMESTAMP
        transaction.update(ref, update)

    run_transaction(db, attempt)
