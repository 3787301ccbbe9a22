"""Small pieces the training, conversion and evaluation scripts share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def add_data_arguments(ap: argparse.ArgumentParser) -> None:
    """--data and the split arguments: train, convert and evaluate must agree on the split."""
    ap.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        help="folder holding skin/ and skin_extra/ (default ../shared/data)",
    )
    ap.add_argument("--seed", type=int, default=0, help="split (and training) seed")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument(
        "--limit-per-class",
        type=int,
        default=0,
        help="use at most N images per folder class (smoke tests)",
    )


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
