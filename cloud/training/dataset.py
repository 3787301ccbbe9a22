"""The training images: records from metadata.csv, the lesion-disjoint split, an in-memory cache.

`--data` points at a folder holding `skin/` (the six conditions) and `skin_extra/` (benign and
healthy images that all map to `other`), each with a `metadata.csv` of `file,class,source,
lesion_id`.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kiosk.live.imaging import load_rgb, square_resize
from kiosk.model.conditions import CONDITIONS, OTHER

SUBSETS = ("skin", "skin_extra")
CACHE_SIDE = 240  # stored a little larger than the 224 input so random crops have margin


@dataclass(frozen=True)
class Record:
    path: Path
    label: str  # one of CONDITIONS
    source_class: str  # the folder class (nevus, healthy_skin …), for stratification and reports
    group: str  # images of one lesion (or one photo series) share a group
    source: str = ""  # the metadata's source column (camera / collection)


# Sources added to the pool after the first split was fixed. Each is split on its own, so adding
# it moves no earlier lesion across the split: the shipped model's validation images stay
# validation images (a warm start from that model must not see them), and numbers stay comparable.
LATER_COHORTS = (("ISIC 2017", "isic2017"),)

# Short names of the sources, for per-source reports and leave-one-source-out runs.
_SOURCE_FAMILIES = (
    ("HAM10000", "ham10000"),
    ("ISIC 2017", "isic2017"),
    ("ISIC archive", "isic_archive"),
    ("Roboflow", "roboflow_acne"),
    ("DermNet", "dermnet_eczema"),
    ("Eczema-AI:Normal", "healthy_photos"),
    ("non_skin", "non_skin"),
)


def source_family(source: str) -> str:
    """A short, stable name for a metadata source string ("other" when not recognised)."""
    for prefix, name in _SOURCE_FAMILIES:
        if prefix in source:
            return name
    return "other"


def _cohort(r: Record) -> str:
    for prefix, name in LATER_COHORTS:
        if r.source.startswith(prefix):
            return name
    return ""


def _group_key(subset: str, row: dict[str, str]) -> str:
    if row.get("lesion_id"):
        return row["lesion_id"]
    name = Path(row["file"]).stem
    if name.startswith("dermnet_"):
        # DermNet numbers photos of one series consecutively (eczemaHand1, eczemaHand2 …):
        # keep a series on one side of the split.
        return "dermnet:" + re.sub(r"[^a-z]", "", name.lower())
    return f"{subset}:{row['file']}"


def load_records(data_root: Path, subsets: Sequence[str] = SUBSETS) -> list[Record]:
    records: list[Record] = []
    for subset in subsets:
        meta = data_root / subset / "metadata.csv"
        if not meta.is_file():
            raise FileNotFoundError(f"{meta} not found: --data must hold {' and '.join(SUBSETS)}")
        with meta.open(newline="") as f:
            for row in csv.DictReader(f):
                source_class = row["class"]
                label = source_class if source_class in CONDITIONS else OTHER
                records.append(
                    Record(
                        path=data_root / subset / row["file"],
                        label=label,
                        source_class=source_class,
                        group=_group_key(subset, row),
                        source=row.get("source", ""),
                    )
                )
    return records


def split_by_lesion(
    records: Sequence[Record], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Lesion-disjoint split, stratified by folder class, stable for a given seed.

    Each group goes to validation when a hash of (seed, group) falls below the fraction, within
    its class: deterministic without any global RNG state. A source listed in LATER_COHORTS is
    ranked within its own (class, cohort) stratum, so adding it leaves the earlier split as it
    was (ranking it with the rest would shift the per-class cut-off and move old lesions).
    """
    by_class_groups: dict[tuple[str, str], dict[str, None]] = {}  # an ordered set per stratum
    for r in records:
        by_class_groups.setdefault((r.source_class, _cohort(r)), {})[r.group] = None
    val_groups: set[str] = set()
    for groups in by_class_groups.values():
        ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
        val_groups.update(ranked[: max(1, round(len(ranked) * val_fraction))])
    train = [r for r in records if r.group not in val_groups]
    val = [r for r in records if r.group in val_groups]
    return train, val


def class_counts(records: Sequence[Record], key: str = "label") -> dict[str, int]:
    return dict(sorted(Counter(getattr(r, key) for r in records).items()))


def labels_array(records: Sequence[Record]) -> np.ndarray:
    return np.array([CONDITIONS.index(r.label) for r in records], dtype=np.int64)


def load_images(
    records: Sequence[Record], side: int = CACHE_SIDE, workers: int = 4, progress: bool = True
) -> np.ndarray:
    """Decode every image once into a uint8 (N, side, side, 3) array (centre square crop)."""

    def one(r: Record) -> np.ndarray:
        return square_resize(load_rgb(r.path), side)

    out = np.empty((len(records), side, side, 3), dtype=np.uint8)
    with ThreadPoolExecutor(workers) as pool:
        it = pool.map(one, records)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(records), desc="decode", unit="img")
        for i, img in enumerate(it):
            out[i] = img
    return out
