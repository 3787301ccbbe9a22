#!/usr/bin/env python3
"""Peak memory and outcome of `kiosk classify` on awkward still pictures (issue 12).

Makes each picture in a temp folder, runs `kiosk classify --json` on it in a fresh process and
reports that process's peak RSS (ru_maxrss of the child) and what it answered:

    python scripts/bench_still_images.py [--json]

The Pi 4 this must fit has 2 GB for everything (the UI, sync, the OS): a still picture must
stay well under a few hundred MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

# The child's own peak (VmHWM, kB): ru_maxrss would carry over the parent's peak across
# fork + exec, and this parent holds the big test pictures.
PEAK_EXPR = "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))"


def make_pictures(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    skin = np.array([190, 140, 120], np.uint8)

    def noisy(h: int, w: int) -> np.ndarray:
        return np.clip(skin + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)

    out: dict[str, Path] = {}
    for name, array in {
        "tiny_1x1.png": noisy(1, 1),
        "tiny_2x2.png": noisy(2, 2),
        "strip_5000x1.png": noisy(1, 5000),
        "small_40x40.png": noisy(40, 40),
        "ok_512x512.jpg": noisy(512, 512),
    }.items():
        out[name] = folder / name
        Image.fromarray(array).save(out[name])
    out["grayscale_512.png"] = folder / "grayscale_512.png"
    Image.fromarray(noisy(512, 512)).convert("L").save(out["grayscale_512.png"])
    # Large, cheap-to-compress pictures (a smooth gradient) so the files stay small on disk.
    big = np.zeros((7000, 7000, 4), np.uint8)
    big[..., 0] = np.linspace(0, 255, 7000, dtype=np.uint8)[None, :]
    big[..., 1:3] = 120
    big[..., 3] = 255
    out["huge_7000x7000_rgba.png"] = folder / "huge_7000x7000_rgba.png"
    Image.fromarray(big, "RGBA").save(out["huge_7000x7000_rgba.png"], compress_level=1)
    out["huge_8000x6000.jpg"] = folder / "huge_8000x6000.jpg"
    Image.fromarray(big[:6000, : 8000 if big.shape[1] >= 8000 else 7000, :3]).resize(
        (8000, 6000)
    ).save(out["huge_8000x6000.jpg"], quality=85)
    return out


def run_one(path: Path) -> dict:
    code = (
        "import sys\n"
        "from kiosk.cli.main import main\n"
        "rc = main(['classify', '--json', sys.argv[1]])\n"
        f"print('PEAK', {PEAK_EXPR}, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False
    )
    peak_kb = next(
        (int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK")), 0
    )
    answer = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout.strip() else {}
    return {
        "picture": path.name,
        "exit": proc.returncode,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "answer": answer.get("error") or f"{answer.get('label')} {answer.get('confidence')}",
    }


def baseline_rss_mb() -> float:
    code = "from kiosk.cli.main import main; import kiosk.model.classifier\n"
    code += f"print({PEAK_EXPR})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(out.stdout.strip()) / 1024, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_one(p) for p in make_pictures(Path(tmp)).values()]
    report = {"import_only_rss_mb": baseline_rss_mb(), "pictures": rows}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"import only: {report['import_only_rss_mb']} MB")
        for r in rows:
            print(
                f"{r['picture']:<26} exit {r['exit']}  peak {r['peak_rss_mb']:>7} MB  {r['answer']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
