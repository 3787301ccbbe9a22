"""The programme overview's figures, computed from case rows (pure; the store reads them).

The agreement tables are confusion matrices: for each condition the specialist named, how
often the kiosk (and the cloud) had said the same. They are what retraining learns from, and
what tells a programme whether the kiosk's "all clear" can be trusted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from cloud.console.store import Case
from kiosk.cases import cloud_schema as schema
from kiosk.model.conditions import CONDITIONS

URGENCIES: tuple[str, ...] = tuple(schema.URGENCY_RANK)  # urgent, soon, routine, none


@dataclass(frozen=True)
class Confusion:
    """counts[(specialist label, machine label)] over reviewed cases with a machine result."""

    counts: dict[tuple[str, str], int]

    def cell(self, specialist: str, machine: str) -> int:
        return self.counts.get((specialist, machine), 0)

    def row_total(self, specialist: str) -> int:
        return sum(self.cell(specialist, m) for m in CONDITIONS)

    def agreement(self, specialist: str) -> float | None:
        """Of the cases the specialist called `specialist`, the share the machine called so."""
        total = self.row_total(specialist)
        return self.cell(specialist, specialist) / total if total else None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def overall(self) -> float | None:
        agreed = sum(self.cell(c, c) for c in CONDITIONS)
        return agreed / self.total if self.total else None


@dataclass(frozen=True)
class ReviewTime:
    urgency: str  # or "all"
    reviewed: int
    median_h: float | None
    p90_h: float | None


@dataclass(frozen=True)
class Figures:
    days: list[str]  # YYYY-MM-DD, oldest first
    per_day: dict[str, list[int]]  # urgency → cases created per day, aligned with `days`
    per_kiosk: list[tuple[str, dict[str, int]]]  # kiosk → urgency → cases, busiest first
    review_times: list[ReviewTime]  # "all" first, then each urgency
    kiosk_agreement: Confusion
    cloud_agreement: Confusion
    demo_cases: int  # left out of every figure above

    @property
    def total(self) -> int:
        return sum(sum(v) for v in self.per_day.values())


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


def _review_time(urgency: str, hours: list[float]) -> ReviewTime:
    hours = sorted(hours)
    return ReviewTime(urgency, len(hours), _quantile(hours, 0.5), _quantile(hours, 0.9))


def compute(cases: Iterable[Case], days: int, today: date) -> Figures:
    day_keys = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    index = {d: i for i, d in enumerate(day_keys)}
    per_day = {u: [0] * len(day_keys) for u in URGENCIES}
    per_kiosk: dict[str, Counter[str]] = {}
    hours: dict[str, list[float]] = {u: [] for u in URGENCIES}
    kiosk_pairs: Counter[tuple[str, str]] = Counter()
    cloud_pairs: Counter[tuple[str, str]] = Counter()
    demo = 0
    for c in cases:
        if c.demo:
            demo += 1  # a demo picture is not a patient: it must not move a programme figure
            continue
        day = index.get(c.created_at.date().isoformat())
        if day is not None:
            per_day[c.urgency][day] += 1
        per_kiosk.setdefault(c.kiosk_id, Counter())[c.urgency] += 1
        review = c.review
        if review is None or review.label not in CONDITIONS:
            continue
        if review.reviewed_at:
            hours[c.urgency].append((review.reviewed_at - c.created_at).total_seconds() / 3600)
        if c.on_device:
            kiosk_pairs[(review.label, c.on_device.label)] += 1
        if c.cloud:
            cloud_pairs[(review.label, c.cloud.label)] += 1
    everyone = [h for u in URGENCIES for h in hours[u]]
    return Figures(
        days=day_keys,
        per_day=per_day,
        per_kiosk=sorted(
            ((k, dict(v)) for k, v in per_kiosk.items()),
            key=lambda kv: (-sum(kv[1].values()), kv[0]),
        ),
        review_times=[_review_time("all", everyone)]
        + [_review_time(u, hours[u]) for u in URGENCIES],
        kiosk_agreement=Confusion(dict(kiosk_pairs)),
        cloud_agreement=Confusion(dict(cloud_pairs)),
        demo_cases=demo,
    )
