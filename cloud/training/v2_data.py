"""The cpu-v2 recipe's inputs: records, split, fine-grained labels and the embedding cache.

Fine-grained outputs: the six conditions keep their own outputs, and the benign / out-of-scope
pictures that v1 lumped into `other` get theirs (nevus, benign keratosis, vascular lesion,
healthy skin, non-skin). The kiosk sums the last five back into `other` (metadata
`other_outputs`), so `classify --json` keeps its seven classes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud.training.dataset import (
    CACHE_SIDE,
    Record,
    load_images,
    load_records,
    source_family,
    split_by_lesion,
)
from cloud.training.feature_cache import (
    INPUT_SIDE,
    Embedder,
    centre_embeddings,
    embedding_tflite,
    view_rounds,
)
from cloud.training.negatives import non_skin_images
from kiosk.model.conditions import CONDITIONS, OTHER

SIX = tuple(c for c in CONDITIONS if c != OTHER)
OTHER_OUTPUTS = ("nevus", "benign_keratosis", "vascular_lesion", "healthy_skin", "non_skin")
OUTPUTS = SIX + OTHER_OUTPUTS
NON_SKIN = "non_skin"


@dataclass
class FeatureSet:
    """Embeddings with their labels (index into OUTPUTS) and source names."""

    centre: np.ndarray  # (N, 1280) float16: the kiosk's view
    labels: np.ndarray  # (N,) int64
    sources: np.ndarray  # (N,) str, source_family names
    names: list[str]  # file (relative to --data) or non_skin/<i>
    views: list[np.ndarray]  # rounds of (N, 1280) augmented views (train only; else empty)
    centre_top: np.ndarray | None = None  # (N, 7, 7, 192) float16 top-block inputs
    views_top: list[np.ndarray] | None = None  # rounds of those (memory-mapped)

    def subset(self, mask: np.ndarray) -> FeatureSet:
        return FeatureSet(
            self.centre[mask],
            self.labels[mask],
            self.sources[mask],
            [n for n, m in zip(self.names, mask, strict=True) if m],
            [v[mask] for v in self.views],
            None if self.centre_top is None else self.centre_top[mask],
            None if self.views_top is None else [v[mask] for v in self.views_top],
        )


@dataclass
class PreparedData:
    train: FeatureSet
    val: FeatureSet
    train_records: list[Record]
    val_records: list[Record]
    warm_state: dict
    timings: dict


def fine_label(r: Record) -> int:
    return OUTPUTS.index(r.source_class)


def trunk_digest(state: dict) -> str:
    """A hash of the frozen trunk's weights: the cache is only valid for the same trunk."""
    h = hashlib.sha256()
    for k in sorted(state):
        if not k.startswith("_fc."):
            h.update(k.encode())
            h.update(state[k].detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _key(records: Sequence[Record], *extra: object) -> str:
    text = "\n".join(str(r.path) for r in records) + "".join(f"|{e}" for e in extra)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _images(records: Sequence[Record], side: int, path: Path, workers: int) -> np.ndarray:
    if path.exists():
        return np.load(path)
    images = load_images(records, side=side, workers=workers)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, images)
    tmp.replace(path)
    return images


def prepare(
    data_root: Path,
    cache_dir: Path,
    warm_state: dict,
    views: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit=None,
    non_skin_per_scene: int = 30,
    workers: int = 4,
    threads: int = 2,
    deadline: float = 0.0,
    log=print,
) -> PreparedData:
    """Decode, split and embed everything the head training needs (cached under cache_dir)."""
    t0 = time.time()
    records = load_records(data_root)
    if limit is not None:
        records = limit(records)
    train_recs, val_recs = split_by_lesion(records, val_fraction, seed)
    key = _key(records, seed, val_fraction, non_skin_per_scene, trunk_digest(warm_state))
    folder = cache_dir / f"features-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    tflite_path = folder / "embedding.tflite"
    if not tflite_path.exists():
        tflite_path.write_bytes(embedding_tflite(warm_state))
    embed = Embedder(tflite_path.read_bytes(), threads)
    timings = {"setup_s": time.time() - t0}

    def feature_set(recs: list[Record], split: str) -> tuple[FeatureSet, np.ndarray | None]:
        neg = non_skin_images(split, CACHE_SIDE, non_skin_per_scene, seed)
        centre_imgs = _images(recs, INPUT_SIDE, folder / f"{split}-224.npy", workers)
        neg_224 = np.stack([_area(n, INPUT_SIDE) for n in neg])
        centre, centre_top = centre_embeddings(
            embed, np.concatenate([centre_imgs, neg_224]), folder / f"{split}-centre.npy"
        )
        labels = np.array(
            [fine_label(r) for r in recs] + [OUTPUTS.index(NON_SKIN)] * len(neg), dtype=np.int64
        )
        sources = np.array([source_family(r.source) for r in recs] + [NON_SKIN] * len(neg))
        names = [str(r.path.relative_to(data_root)) for r in recs]
        names += [f"non_skin/{i}" for i in range(len(neg))]
        big = None
        if split == "train":
            big = np.concatenate(
                [_images(recs, CACHE_SIDE, folder / "train-240.npy", workers), neg]
            )
        return FeatureSet(centre, labels, sources, names, [], centre_top, []), big

    t1 = time.time()
    val, _ = feature_set(val_recs, "val")
    train, big = feature_set(train_recs, "train")
    timings["centre_s"] = time.time() - t1
    t2 = time.time()
    train.views, train.views_top = view_rounds(
        embed, big, views, folder / "views", seed, deadline=deadline, log=log
    )
    timings["views_s"] = time.time() - t2
    timings["view_rounds"] = len(train.views)
    log(f"features ready: {len(train.labels)} train, {len(val.labels)} val, {timings}")
    return PreparedData(train, val, train_recs, val_recs, warm_state, timings)


def _area(img: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
