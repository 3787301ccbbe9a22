"""The training set for a retrain: the base images plus the reviewed cases, laid out the way
scripts/train.py reads data (`skin/` and `skin_extra/`, each with a metadata.csv).

Two rules keep the before/after comparison honest:
- Reviewed cases only ever train. The split (cloud.training.dataset.split_by_lesion) sends a
  group to validation when its hash ranks low within its class, so each reviewed case gets a
  group name whose hash ranks above every validation group: the base data's validation lesions
  stay in validation, and the fixed validation set never leaks into the new model's training.
- Only cases whose consent flag is set are used, and only with the dermatologist's label.

A case trains on its full-resolution picture once Storage holds it, else on the compact copy
the kiosk sent first on a slow link (cloud.pictures.best_available): a reviewed case is not
held back for a full picture that may take days to arrive, and the report counts how many
went in as compact copies.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firebase_admin import firestore

from cloud import pictures
from kiosk.cases import cloud_schema as schema
from kiosk.model.conditions import CONDITIONS

SUBSETS = ("skin", "skin_extra")
REVIEWED_DIR = "reviewed"
REVIEW_SOURCE = "Skinscan kiosk case, label from dermatologist review"


@dataclass(frozen=True)
class ReviewedCase:
    case_id: str
    label: str
    image: bytes
    image_part: str = pictures.PART_FULL  # which stored picture `image` is


@dataclass(frozen=True)
class ExportSummary:
    data_dir: Path
    base_images: int
    reviewed: int
    skipped: dict[str, int]  # reason -> count (no consent, bad label, image mismatch)


def train_only_group(case_id: str, seed: int) -> str:
    """A group name for one case whose split hash starts with 'f': it ranks after the lowest
    15/16 of all groups, far beyond the validation fraction, so the case stays in training."""
    nonce = 0
    while True:
        group = f"review:{case_id}:{nonce}"
        if hashlib.sha256(f"{seed}:{group}".encode()).hexdigest().startswith("f"):
            return group
        nonce += 1


def fetch_reviewed(db: Any, bucket: Any) -> tuple[list[ReviewedCase], dict[str, int]]:
    skipped = {"no_consent": 0, "bad_label": 0, "image_mismatch": 0}
    cases = []
    docs = (
        db.collection(schema.CASES)
        .where(filter=firestore.FieldFilter("status", "==", schema.STATUS_REVIEWED))
        .stream()
    )
    for doc in docs:
        case = doc.to_dict()
        if case.get("consent") is not True:
            skipped["no_consent"] += 1
            continue
        label = (case.get("review") or {}).get("label")
        if label not in CONDITIONS:
            skipped["bad_label"] += 1
            continue
        picture = pictures.best_available(case)
        if picture is None:
            skipped["image_mismatch"] += 1  # nothing checkable recorded
            continue
        try:
            data = pictures.download(bucket, picture)
        except pictures.PictureMismatchError:
            skipped["image_mismatch"] += 1
            continue
        cases.append(ReviewedCase(doc.id, label, data, picture.part))
    return sorted(cases, key=lambda c: c.case_id), skipped


def _base_rows(base: Path, subset: str, limit_per_class: int) -> list[dict[str, str]]:
    with (base / subset / "metadata.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    if limit_per_class <= 0:
        return rows
    seen: dict[str, int] = {}
    kept = []
    for row in rows:  # the first N of each class, as scripts' --limit-per-class picks them
        if seen.get(row["class"], 0) < limit_per_class:
            kept.append(row)
            seen[row["class"]] = seen.get(row["class"], 0) + 1
    return kept


def build_dataset(
    base: Path,
    out: Path,
    reviewed: list[ReviewedCase],
    *,
    seed: int = 0,
    limit_per_class: int = 0,
) -> int:
    """Write the combined data folder under `out`; return how many base images it holds.
    Base images are linked, not copied. `limit_per_class` is applied to the base data here (the
    same rows scripts/evaluate.py --limit-per-class picks), so reviewed cases are never cut."""
    fields = ["file", "class", "source", "lesion_id"]
    base_count = 0
    for subset in SUBSETS:
        target = out / subset
        target.mkdir(parents=True, exist_ok=True)
        for entry in (base / subset).iterdir():
            link = target / entry.name
            if entry.name != "metadata.csv" and not link.exists():
                link.symlink_to(os.path.relpath(entry.resolve(), target))
        rows = _base_rows(base, subset, limit_per_class)
        base_count += len(rows)
        if subset == "skin":
            (target / REVIEWED_DIR).mkdir(exist_ok=True)
            for case in reviewed:
                name = f"{REVIEWED_DIR}/{case.case_id}.jpg"
                (target / name).write_bytes(case.image)
                rows.append(
                    {
                        "file": name,
                        "class": case.label,
                        "source": REVIEW_SOURCE,
                        "lesion_id": train_only_group(case.case_id, seed),
                    }
                )
        with (target / "metadata.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return base_count
