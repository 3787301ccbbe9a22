"""Live = still: replay real lesion pictures one at a time and compare with `kiosk classify`.

    .venv/bin/python scripts/check_live_still.py --data ../shared/data [--per-class 15]

Each picture of the validation split (cloud.training.dataset.split_by_lesion; at most
--per-class per folder class, seeded) is replayed as `kiosk scan --source replay:FILE` replays
it: the same frame, --frames times, through the real pipeline (shipped int8 model) in each lens
mode. Reported per mode and per class: how many pictures got a verdict at all (the gate let a
frame through), and how many of those have the label `kiosk classify` gives the file.
Targets (issue 13): at least 95 % get a verdict, at least 90 % of those agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud.training.dataset import load_records, split_by_lesion  # noqa: E402
from kiosk.cli.classify import classify_one  # noqa: E402
from kiosk.live.frames import Frame  # noqa: E402
from kiosk.live.imaging import load_rgb  # noqa: E402
from kiosk.live.pipeline import LivePipeline  # noqa: E402
from kiosk.live.triage import Triage  # noqa: E402
from kiosk.model.classifier import Classifier  # noqa: E402

LESION_CLASSES = (
    "actinic_keratosis",
    "basal_cell_carcinoma",
    "benign_keratosis",
    "dermatofibroma",
    "melanoma",
    "nevus",
    "vascular_lesion",
)
# How a replay runs (off), with the lens set, and detected (auto: without a vignette the
# guide box of a clinical photo, so agreement there is not expected).
MODES = ("off", "dermoscopic", "auto")


class _Replay:
    name = "replay:picture"
    status = None

    def open(self) -> None: ...

    def close(self) -> None: ...


def live_label(classifier: Classifier, rgb: np.ndarray, lens: str, frames: int) -> str | None:
    pipeline = LivePipeline(_Replay(), classifier, Triage(classifier.thresholds), lens=lens)
    verdict = None
    for n in range(frames):
        verdict = pipeline.process(Frame(rgb, timestamp=n / 15.0, sequence=n))
    return None if verdict is None or verdict.decision is None else verdict.label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--per-class", type=int, default=15)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    _, val = split_by_lesion(load_records(args.data))
    rng = np.random.default_rng(args.seed)
    chosen = []
    for cls in LESION_CLASSES:
        recs = [r for r in val if r.source_class == cls]
        idx = sorted(rng.choice(len(recs), min(args.per_class, len(recs)), replace=False))
        chosen += [recs[i] for i in idx]
    classifier = Classifier.from_metadata()
    # per mode, per class: [pictures, with a verdict, agreeing]
    table: dict[str, dict[str, list[int]]] = {m: defaultdict(lambda: [0, 0, 0]) for m in MODES}
    for r in chosen:
        still = classify_one(classifier, str(r.path))["label"]
        rgb = load_rgb(r.path)
        for mode in MODES:
            label = live_label(classifier, rgb, mode, args.frames)
            row = table[mode][r.source_class]
            row[0] += 1
            row[1] += label is not None
            row[2] += label == still
    summary = {}
    for mode in MODES:
        n, got, same = (sum(v[i] for v in table[mode].values()) for i in range(3))
        summary[mode] = {
            "pictures": n,
            "verdict": got,
            "verdict_rate": got / n,
            "agree": same,
            "agree_rate": same / got if got else 0.0,
        }
    if args.json:
        print(json.dumps({"per_class": table, "summary": summary}))
        return 0
    for mode in MODES:
        print(f"lens {mode}:")
        for cls, (n, got, same) in sorted(table[mode].items()):
            print(f"  {cls:22s} verdict {got}/{n}  same as classify {same}/{got}")
        s = summary[mode]
        print(
            f"  all: verdict {s['verdict']}/{s['pictures']} ({100 * s['verdict_rate']:.1f} %), "
            f"same as classify {s['agree']}/{s['verdict']} ({100 * s['agree_rate']:.1f} %)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
