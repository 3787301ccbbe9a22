"""Does a lesion-centred crop help the model? Top-1 and balanced accuracy on the validation split.

Compares, with the shipped int8 model (or --model):
  square      the training preprocessing: centre square crop, INTER_AREA resize to 224
  lesion      kiosk.live.vision.find_lesion_box, then lesion_centred_crop (defaults), then resize
  lesion-dermo  the lesion crop only for dermoscopic pictures (the UI mode an operator would set:
              the HAM10000 / ISIC images), the square crop for clinical photos
  recentre    lesion-centred but never zoomed in (min_fraction=1: the square crop's scale,
              slid towards the lesion)

Balanced accuracy is the mean recall over the 7 model classes (labels from record.label).
kiosk.live.vision.DEFAULT_LESION_CROP is set from this script's output.

    PYTHONPATH=. .venv/bin/python scripts/measure_lesion_crop.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cloud.training.dataset import Record, load_records, split_by_lesion
from kiosk.live.imaging import load_rgb, square_resize
from kiosk.live.vision import find_lesion_box, lesion_centred_crop, to_model_input
from kiosk.model.classifier import Classifier
from kiosk.model.conditions import CONDITIONS

CLINICAL_SOURCES = ("acne", "eczema", "healthy_skin")


def stratified(records: Sequence[Record], limit: int) -> list[Record]:
    """At most `limit` records, the same share of each folder class, chosen by a stable hash."""
    if limit <= 0 or limit >= len(records):
        return list(records)
    by_class: dict[str, list[Record]] = {}
    for r in records:
        by_class.setdefault(r.source_class, []).append(r)
    share = limit / len(records)
    kept: list[Record] = []
    for rs in by_class.values():
        rs = sorted(rs, key=lambda r: hashlib.sha256(str(r.path.name).encode()).hexdigest())
        kept.extend(rs[: max(1, round(len(rs) * share))])
    return kept


def scores(pred: np.ndarray, labels: np.ndarray) -> tuple[float, float, list[float]]:
    recalls = []
    for c in range(len(CONDITIONS)):
        sel = labels == c
        recalls.append(float(np.mean(pred[sel] == c)) if sel.any() else float("nan"))
    return float(np.mean(pred == labels)), float(np.nanmean(recalls)), recalls


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--model", default=None, help="metadata .json or .tflite (default: shipped)")
    ap.add_argument("--limit", type=int, default=0, help="stratified subset size (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    _, val = split_by_lesion(load_records(args.data))
    val = stratified(val, args.limit)
    labels = np.array([CONDITIONS.index(r.label) for r in val])
    clf = Classifier.open(args.model, num_threads=args.threads)

    variants: dict[str, Callable[[np.ndarray, Record, tuple | None], np.ndarray]] = {
        "square": lambda img, r, box: square_resize(img, clf.input_side),
        "lesion": lambda img, r, box: to_model_input(lesion_centred_crop(img, box)),
        "lesion-dermo": lambda img, r, box: (
            square_resize(img, clf.input_side)
            if r.source_class in CLINICAL_SOURCES
            else to_model_input(lesion_centred_crop(img, box))
        ),
        "recentre": lambda img, r, box: to_model_input(
            lesion_centred_crop(img, box, min_fraction=1.0)
        ),
    }
    preds = {k: np.empty(len(val), dtype=np.int64) for k in variants}
    found = np.zeros(len(val), dtype=bool)
    box_ms = 0.0
    for i, r in enumerate(val):
        img = load_rgb(r.path)
        start = time.perf_counter()
        box = find_lesion_box(img)
        box_ms += (time.perf_counter() - start) * 1000.0
        found[i] = box is not None
        for name, make in variants.items():
            preds[name][i] = int(np.argmax(clf.logits(make(img, r, box))))
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(val)}", file=sys.stderr, flush=True)

    dermo = np.array([r.source_class not in CLINICAL_SOURCES for r in val])
    print(f"validation images: {len(val)} ({'all' if args.limit <= 0 else 'stratified subset'})")
    print(
        f"lesion box found: {found[dermo].mean():.1%} of dermoscopic, "
        f"{found[~dermo].mean():.1%} of clinical; find_lesion_box {box_ms / len(val):.2f} ms/image"
    )
    header = f"{'variant':13s} {'top-1':>7s} {'bal.acc':>7s}  " + " ".join(
        f"{c[:8]:>8s}" for c in CONDITIONS
    )
    print(header)
    for name, p in preds.items():
        acc, bal, rec = scores(p, labels)
        print(f"{name:13s} {acc:7.4f} {bal:7.4f}  " + " ".join(f"{x:8.3f}" for x in rec))
    support = " ".join(f"{int((labels == c).sum()):8d}" for c in range(len(CONDITIONS)))
    print(f"{'support':13s} {'':>7s} {'':>7s}  {support}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
