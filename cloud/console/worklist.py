"""The queue as a worklist: what a dermatologist with thirty cases and ten minutes does next.

Groups, in this order: cases with a health worker's question nobody has answered yet (reviewed
or not: a question on a reviewed case must not be lost), then cases waiting for a review (most
urgent first, then oldest), then, when asked for, cases reviewed in the last N days. A search
(case id or patient reference) replaces the groups with what it found. Filters narrow every
group. Pure functions on typed rows; the store reads, this module only sorts and filters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from cloud.console.store import EPOCH, Case
from kiosk.cases import cloud_schema as schema

REVIEWED_DAYS = (0, 1, 7, 30, 90)  # the choices offered; 0: reviewed cases not listed
_KIOSK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_QUERY = re.compile(r"^[\w .:/#-]{1,64}$")


@dataclass(frozen=True)
class Filters:
    kiosk: str = ""
    urgency: str = ""  # "" or a key of cloud_schema.URGENCY_RANK
    has_question: bool = False
    disagrees: bool = False
    reviewed_days: int = 0
    q: str = ""  # search: a case id (or its first characters) or a patient reference

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filters:
        """Filters from a query string; anything malformed is dropped, not an error (these
        come from links and bookmarks)."""
        kiosk = args.get("kiosk", "").strip()
        urgency = args.get("urgency", "").strip()
        q = args.get("q", "").strip()
        try:
            days = int(args.get("reviewed_days", "0") or 0)
        except ValueError:
            days = 0
        return cls(
            kiosk=kiosk if _KIOSK.match(kiosk) else "",
            urgency=urgency if urgency in schema.URGENCY_RANK else "",
            has_question=args.get("has_question") == "1",
            disagrees=args.get("disagrees") == "1",
            reviewed_days=days if days in REVIEWED_DAYS else 0,
            q=q if _QUERY.match(q) else "",
        )

    def to_query(self) -> str:
        """The query string of the filters that are set ("" for none)."""
        pairs = [
            ("q", self.q),
            ("kiosk", self.kiosk),
            ("urgency", self.urgency),
            ("has_question", "1" if self.has_question else ""),
            ("disagrees", "1" if self.disagrees else ""),
            ("reviewed_days", str(self.reviewed_days) if self.reviewed_days else ""),
        ]
        return urlencode([(k, v) for k, v in pairs if v])

    @property
    def active(self) -> bool:
        return self != Filters()


@dataclass(frozen=True)
class Row:
    case: Case
    question_at: datetime | None = None  # the oldest unanswered health-worker message

    @property
    def has_question(self) -> bool:
        return self.question_at is not None

    @property
    def disagrees(self) -> bool:
        """The kiosk and the cloud name different conditions: worth a closer look."""
        c = self.case
        return bool(c.on_device and c.cloud and c.on_device.label != c.cloud.label)

    def matches(self, f: Filters) -> bool:
        return (
            (not f.kiosk or self.case.kiosk_id == f.kiosk)
            and (not f.urgency or self.case.urgency == f.urgency)
            and (not f.has_question or self.has_question)
            and (not f.disagrees or self.disagrees)
        )


@dataclass(frozen=True)
class Worklist:
    filters: Filters
    questions: list[Row]
    waiting: list[Row]
    reviewed: list[Row]
    found: list[Row] | None  # None: no search

    def order(self) -> list[str]:
        """Case ids in the order "save and next" walks them."""
        if self.found is not None:
            rows = self.found
        else:
            rows = self.questions + self.waiting + self.reviewed
        seen: dict[str, None] = {}
        for r in rows:
            seen.setdefault(r.case.case_id, None)
        return list(seen)

    def next_after(self, case_id: str) -> str | None:
        """The case after `case_id` in this list (wrapping to the top: cases skipped earlier
        come round again); None when nothing else is left."""
        order = self.order()
        start = order.index(case_id) + 1 if case_id in order else 0
        for candidate in order[start:] + order[:start]:
            if candidate != case_id:
                return candidate
        return None


def _urgent_then_oldest(row: Row) -> tuple:
    return (row.case.queue_rank, row.case.created_at, row.case.case_id)


def build(
    open_cases: Iterable[Case],
    questions: Mapping[str, tuple[Case, datetime]],
    reviewed: Iterable[Case],
    filters: Filters,
    found: Iterable[Case] | None = None,
) -> Worklist:
    """`questions`: case id → (case, when its oldest unanswered question was asked)."""

    def row(case: Case) -> Row:
        asked = questions.get(case.case_id)
        return Row(case, asked[1] if asked else None)

    question_rows = sorted(
        (Row(case, asked) for case, asked in questions.values()),
        key=lambda r: (r.case.queue_rank, r.question_at or EPOCH, r.case.case_id),
    )
    waiting = sorted(
        (row(c) for c in open_cases if c.case_id not in questions), key=_urgent_then_oldest
    )
    reviewed_rows = sorted(
        (row(c) for c in reviewed if c.case_id not in questions),
        key=lambda r: -(r.case.review_time or EPOCH).timestamp(),
    )
    found_rows = None
    if found is not None:
        found_rows = sorted((row(c) for c in found), key=_urgent_then_oldest)
        found_rows = [r for r in found_rows if r.matches(filters)]
    return Worklist(
        filters=filters,
        questions=[r for r in question_rows if r.matches(filters)],
        waiting=[r for r in waiting if r.matches(filters)],
        reviewed=[r for r in reviewed_rows if r.matches(filters)] if filters.reviewed_days else [],
        found=found_rows,
    )
