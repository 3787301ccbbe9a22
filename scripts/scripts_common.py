"""Small pieces the training, conversion and evaluation scripts share."""

from __future__ import annotations

from collections.abc import Sequence


def limit_per_class(records: Sequence, per_class: int) -> list:
    """At most `per_class` records of each folder class, in order (for smoke tests)."""
    if per_class <= 0:
        return list(records)
    seen: dict[str, int] = {}
    kept = []
    for r in records:
        if seen.get(r.source_class, 0) < per_class:
            kept.append(r)
            seen[r.source_class] = seen.get(r.source_class, 0) + 1
    return kept
