#!/usr/bin/env python3
"""Copy the training images into a smaller folder of the same layout, for a remote GPU run.

    python scripts/pack_data.py --data ../shared/data --out .gpu/data --side 224 --quality 80

Each image becomes the centre square that training uses anyway, resized to --side, re-encoded
as JPEG; metadata.csv files are copied unchanged. Training on the packed copy sees the same
crops as on the original, only re-encoded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from cloud.training.dataset import SUBSETS
    from kiosk.live.imaging import load_rgb, square_resize

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--quality", type=int, default=80)
    args = ap.parse_args(argv)

    jobs = []
    for subset in SUBSETS:
        (args.out / subset).mkdir(parents=True, exist_ok=True)
        shutil.copy2(args.data / subset / "metadata.csv", args.out / subset / "metadata.csv")
        for src in sorted((args.data / subset).glob("*/*.jpg")):
            jobs.append((src, args.out / src.relative_to(args.data)))

    def one(job: tuple[Path, Path]) -> int:
        src, dst = job
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(square_resize(load_rgb(src), args.side)).save(
            dst, "JPEG", quality=args.quality
        )
        return dst.stat().st_size

    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(one, jobs))
    print(f"{len(jobs)} images, {total / 2**20:.1f} MiB → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
