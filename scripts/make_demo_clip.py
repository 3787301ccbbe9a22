#!/usr/bin/env python3
"""Make the demo clip the kiosk replays when no camera is found.

    python scripts/make_demo_clip.py [--samples tests/data/samples] [--out kiosk/data/demo]

Each sample image (sorted by file name; the name starts with its true class) becomes about two
seconds of frames as a hand-held camera would give them: the image's centre square (what the
model is trained on) with a slow zoom and a small pan drift, and a couple of strongly blurred
frames in the middle of each segment for the quality gate to reject. Written as an MJPG .avi
(OpenCV's built-in writer, so it plays back wherever OpenCV does) with a sidecar .json that
lists the segments (frames [start, end), true class, source image, blurred frames) so
end-to-end tests can check the verdict per segment. Deterministic: same inputs, same clip.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from kiosk.live.imaging import centre_square, load_rgb
from kiosk.model.conditions import CONDITIONS, OTHER

ROOT = Path(__file__).resolve().parent.parent
# Diagnoses the model files under "other" (see README, "The model").
OTHER_PREFIXES = ("nevus", "healthy", "benign_keratosis", "vascular")
MAX_BYTES = 2_000_000


def label_of(name: str) -> str:
    for condition in sorted(CONDITIONS, key=len, reverse=True):
        if name.startswith(condition + "_"):
            return condition
    if name.startswith(OTHER_PREFIXES):
        return OTHER
    raise SystemExit(f"cannot tell the class of {name}: the file name must start with it")


def jittered(
    square: np.ndarray,
    side: int,
    k: int,
    n: int,
    rng: np.random.Generator,
    pan: np.ndarray,
    fill: float = 1.0,
) -> np.ndarray:
    """Frame k of n: zoom 1.00-1.08 in a slow wave, pan drifting within ±3 % of the side."""
    zoom = 1.04 + 0.04 * math.sin(2 * math.pi * k / n + rng.uniform(-0.2, 0.2))
    pan += rng.normal(0.0, 0.004, 2)
    np.clip(pan, -0.03, 0.03, out=pan)
    src = square.shape[0]
    scale = side * fill / src * zoom
    c = src / 2
    # output = scale * (input - c) + side / 2 + pan
    m = np.array(
        [
            [scale, 0.0, side / 2 - scale * c + pan[0] * side],
            [0.0, scale, side / 2 - scale * c + pan[1] * side],
        ]
    )
    return cv2.warpAffine(
        square, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, default=ROOT / "tests" / "data" / "samples")
    parser.add_argument("--out", type=Path, default=ROOT / "kiosk" / "data" / "demo")
    parser.add_argument("--name", default="demo")
    parser.add_argument("--size", type=int, default=352, help="frame side in pixels")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=2.0, help="per sample")
    parser.add_argument(
        "--backend",
        choices=("ffmpeg", "opencv"),
        default="ffmpeg",
        help="OpenCV's FFmpeg writer (smaller files) or its built-in MJPEG writer",
    )
    parser.add_argument(
        "--quality", type=int, default=75, help="JPEG quality (built-in writer only)"
    )
    parser.add_argument(
        "--fill",
        type=float,
        default=1.0,
        help="fraction of the frame the sample's centre square fills (the rest continues it "
        "mirrored); e.g. the guide box fraction, so the model sees the whole sample",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    samples = sorted(args.samples.glob("*.jpg"))
    if not samples:
        raise SystemExit(f"no .jpg samples in {args.samples}")
    per_sample = max(6, round(args.seconds * args.fps))
    blurred_at = (per_sample * 2 // 5, per_sample * 2 // 5 + 1)
    side = args.size - args.size % 2
    args.out.mkdir(parents=True, exist_ok=True)
    clip = args.out / f"{args.name}.avi"

    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    if args.backend == "ffmpeg":  # its MJPEG is about half the size at the same look
        writer = cv2.VideoWriter(str(clip), cv2.CAP_FFMPEG, fourcc, args.fps, (side, side))
    else:
        writer = cv2.VideoWriter(
            str(clip),
            cv2.CAP_OPENCV_MJPEG,
            fourcc,
            args.fps,
            (side, side),
            [cv2.VIDEOWRITER_PROP_QUALITY, args.quality],
        )
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write an MJPG .avi to {clip}")
    rng = np.random.default_rng(args.seed)
    segments = []
    frame_no = 0
    try:
        for path in samples:
            square = centre_square(load_rgb(path))
            pan = np.zeros(2)
            start = frame_no
            blurred = []
            for k in range(per_sample):
                rgb = jittered(square, side, k, per_sample, rng, pan, args.fill)
                if k in blurred_at:  # a shaken or defocused frame
                    rgb = cv2.GaussianBlur(rgb, (0, 0), sigmaX=side / 50)
                    blurred.append(frame_no)
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                frame_no += 1
            segments.append(
                {
                    "start": start,
                    "end": frame_no,
                    "label": label_of(path.stem),
                    "source": path.name,
                    "blurred": blurred,
                }
            )
    finally:
        writer.release()

    check = cv2.VideoCapture(str(clip))
    readable = 0
    while check.read()[0]:
        readable += 1
    check.release()
    if readable != frame_no:
        raise SystemExit(f"{clip}: wrote {frame_no} frames but {readable} read back")
    size = clip.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{clip} is {size} bytes, over {MAX_BYTES}: lower --size")

    sidecar = {
        "clip": clip.name,
        "made_by": "scripts/make_demo_clip.py",
        "fps": args.fps,
        "fill": args.fill,
        "width": side,
        "height": side,
        "frames": frame_no,
        "segments_note": "frames [start, end) show one sample; blurred lists frame numbers",
        "attribution": "tests/data/samples/ATTRIBUTION.md",
        "segments": segments,
    }
    clip.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"{clip}: {frame_no} frames, {side}x{side} at {args.fps:g} fps, {size / 1e6:.2f} MB")
    for s in segments:
        print(f"  {s['start']:4d}-{s['end'] - 1:4d}  {s['label']:<22} {s['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
