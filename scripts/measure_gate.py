"""Measure the live quality gate at model scale: real validation pictures and synthetic bad frames.

    .venv/bin/python scripts/measure_gate.py --data ../shared/data [--per-class 150] [--json]

Real pictures: the lesion-disjoint validation split (cloud.training.dataset.split_by_lesion, the
split the shipped model was calibrated on), at most --per-class per folder class; each goes
through the still-picture crop (its centre square, as `kiosk classify` and the dermoscope mode
take it) and `assess_quality`. Reported per folder class and per source: how many pass.

Bad frames are made from the real pictures that pass, at the picture's own scale (not the
model's), so they are what a camera would deliver: defocus (Gaussian sigma 4), motion blur (a
15-pixel line at a random angle), dark (x0.15), over-exposed (gain until 60 % of the pixels are
white), and no skin (grey wall, blue shirt, white sheet, green cloth: flat colours with shading
and noise). Reported: how many are rejected, and how many with the right first reason.

Everything is seeded; ~1,600 real pictures take about a minute on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud.training.dataset import load_records, source_family, split_by_lesion  # noqa: E402
from kiosk.live.imaging import centre_square, load_rgb  # noqa: E402
from kiosk.live.vision import QualityIssue, assess_quality  # noqa: E402

CLINICAL_CLASSES = ("acne", "eczema", "healthy_skin")
# Which first reasons count as "the right one" for each kind of bad frame.
EXPECTED = {
    "defocus": {QualityIssue.BLURRY},
    "motion_blur": {QualityIssue.BLURRY},
    "dark": {QualityIssue.TOO_DARK},
    "over_exposed": {QualityIssue.TOO_BRIGHT, QualityIssue.CLIPPED},
    "no_skin": {QualityIssue.NO_SKIN},
}


def motion_kernel(length: int, angle_deg: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = length // 2
    dx, dy = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    for t in np.linspace(-c, c, 4 * length):
        k[round(c + t * dy), round(c + t * dx)] = 1.0
    return k / k.sum()


def over_exposed(rgb: np.ndarray) -> np.ndarray:
    """Gain until at least 60 % of the pixels are pure white, as a blown-out frame."""
    darkest = rgb.min(axis=2).astype(np.float32)  # white needs every channel high
    level = max(float(np.percentile(darkest, 40)), 1.0)
    return np.clip(rgb.astype(np.float32) * (250.0 / level), 0, 255).astype(np.uint8)


def surface(colour: tuple[int, int, int], side: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side].astype(np.float32) / side
    shade = 1.0 - 0.15 * ((xx - rng.uniform(0, 1)) ** 2 + (yy - rng.uniform(0, 1)) ** 2)
    img = np.array(colour, np.float32) * shade[..., None] + rng.normal(0, 5, (side, side, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


NO_SKIN_COLOURS = ((128, 128, 128), (40, 70, 150), (240, 240, 236), (60, 120, 70))


def bad_frames(rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "defocus": cv2.GaussianBlur(rgb, (0, 0), 4),
        "motion_blur": cv2.filter2D(rgb, -1, motion_kernel(15, float(rng.uniform(0, 180)))),
        "dark": (rgb.astype(np.float32) * 0.15).astype(np.uint8),
        "over_exposed": over_exposed(rgb),
        "no_skin": surface(
            NO_SKIN_COLOURS[int(rng.integers(len(NO_SKIN_COLOURS)))], rgb.shape[0], rng
        ),
    }


def rate(ok: int, n: int) -> str:
    return f"{ok}/{n} ({100.0 * ok / n:.1f} %)" if n else "0/0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--per-class", type=int, default=150, help="0: every picture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # the machine is shared

    _, val = split_by_lesion(load_records(args.data))
    rng = np.random.default_rng(args.seed)
    by_class: dict[str, list] = defaultdict(list)
    for r in val:
        by_class[r.source_class].append(r)
    chosen = []
    for _cls, recs in sorted(by_class.items()):
        if args.per_class and len(recs) > args.per_class:
            idx = rng.choice(len(recs), args.per_class, replace=False)
            recs = [recs[i] for i in sorted(idx)]
        chosen += recs

    real_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    real_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    first_reasons: Counter[str] = Counter()
    bad: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # rejected, right reason, n
    for r in chosen:
        crop = centre_square(load_rgb(r.path))
        report = assess_quality(crop)
        for table, key in ((real_class, r.source_class), (real_source, source_family(r.source))):
            table[key][0] += report.ok
            table[key][1] += 1
        if not report.ok:
            first_reasons[str(report.primary)] += 1
            continue
        for kind, frame in bad_frames(np.ascontiguousarray(crop), rng).items():
            b = assess_quality(frame)
            bad[kind][0] += not b.ok
            bad[kind][1] += (not b.ok) and b.primary in EXPECTED[kind]
            bad[kind][2] += 1

    def total(keys) -> tuple[int, int]:
        return (
            sum(real_class[k][0] for k in keys),
            sum(real_class[k][1] for k in keys),
        )

    dermoscopic = [k for k in real_class if k not in CLINICAL_CLASSES]
    clinical = [k for k in real_class if k in CLINICAL_CLASSES]
    summary = {
        "real_all": total(list(real_class)),
        "real_dermoscopic": total(dermoscopic),
        "real_clinical": total(clinical),
        "real_without_healthy_studio": total([k for k in real_class if k != "healthy_skin"]),
        "bad_all": (sum(v[0] for v in bad.values()), sum(v[2] for v in bad.values())),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "per_class": dict(real_class),
                    "per_source": dict(real_source),
                    "rejection_reasons": dict(first_reasons),
                    "bad_frames": dict(bad),
                    "summary": summary,
                }
            )
        )
        return 0
    print("real pictures that pass, per folder class:")
    for k, (ok, n) in sorted(real_class.items()):
        print(f"  {k:22s} {rate(ok, n)}")
    print("per source:")
    for k, (ok, n) in sorted(real_source.items()):
        print(f"  {k:22s} {rate(ok, n)}")
    print("first reason of the real pictures rejected:", dict(first_reasons))
    print("synthetic bad frames rejected (right first reason):")
    for k, (rej, right, n) in sorted(bad.items()):
        print(f"  {k:22s} {rate(rej, n)}  right reason {rate(right, n)}")
    for k, (ok, n) in summary.items():
        label = "rejected" if k.startswith("bad") else "pass"
        print(f"{k:30s} {label} {rate(ok, n)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
