"""Measure the scene-change distance (kiosk.live.scene) on the demo clip and on hand-held moves.

    .venv/bin/python scripts/measure_scene_change.py

Prints the distances the thresholds in kiosk/live/scene.py were chosen from: consecutive sharp
frames inside each demo segment, the cuts between segments, drift from a segment's first frame,
and simulated hand-held moves of the six sample pictures (small per-frame steps, and a larger
drift from the first frame). Seeded; a few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk.errors import CameraError  # noqa: E402
from kiosk.live.camera import ReplaySource, clip_segments, demo_clip_path  # noqa: E402
from kiosk.live.imaging import load_rgb, square_resize  # noqa: E402
from kiosk.live.scene import distance, signature  # noqa: E402


def sig(rgb: np.ndarray) -> np.ndarray:
    return signature(square_resize(rgb, 224))


def moved(img: np.ndarray, shift: float, angle: float, gain: float, rng) -> np.ndarray:
    h, w = img.shape[:2]
    dx, dy = rng.uniform(-shift, shift, 2) * min(h, w)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-angle, angle), 1.0)
    m[:, 2] += (dx, dy)
    out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    out = out * rng.uniform(1 - gain, 1 + gain) + rng.normal(0, 3, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def main() -> int:
    source = ReplaySource(demo_clip_path(), fps=None, loop=False)
    source.open()
    frames = []
    try:
        while True:
            frames.append(source.read().image)
    except CameraError:
        pass
    finally:
        source.close()
    segments = clip_segments()
    blurred = {i for s in segments for i in s.blurred}
    sigs = [sig(f) for f in frames]
    starts = {s.start for s in segments}
    steps, cuts, drift = [], [], []
    for i in range(1, len(sigs)):
        if i in starts:
            cuts.append(distance(sigs[i], sigs[i - 1]))
        elif i not in blurred and i - 1 not in blurred:
            steps.append(distance(sigs[i], sigs[i - 1]))
    for s in segments:
        sharp = [i for i in range(s.start, s.end) if i not in blurred]
        drift += [distance(sigs[i], sigs[s.start]) for i in sharp]
    rng = np.random.default_rng(0)
    hand_steps, hand_drift = [], []
    for path in sorted((ROOT / "tests" / "data" / "samples").glob("*.jpg")):
        img = load_rgb(path)
        base = sig(img)
        for _ in range(20):
            hand_steps.append(distance(sig(moved(img, 0.01, 0.5, 0.02, rng)), base))
            hand_drift.append(distance(sig(moved(img, 0.05, 4.0, 0.08, rng)), base))
    print(f"demo, consecutive sharp frames in a segment: max {max(steps):.1f}")
    print("demo, cuts: " + ", ".join(f"{c:.1f}" for c in sorted(cuts)))
    print(f"demo, drift from the segment's first frame: max {max(drift):.1f}")
    print(f"hand-held step (1 %, 0.5°, ±2 %): max {max(hand_steps):.1f}")
    print(
        f"hand-held drift (5 %, 4°, ±8 %): p95 {np.percentile(hand_drift, 95):.1f}, "
        f"max {max(hand_drift):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
