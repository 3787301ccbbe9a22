"""Smoke test of the whole model pipeline on a tiny subset: train → convert → evaluate.

Real images, the real ImageNet weights, the real converters and interpreter; only the amount of
data and epochs is small, so it runs in CI in a few minutes. It needs the training images
(../shared/data beside the checkout, or $SKINSCAN_TRAINING_DATA) and fails loudly without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SKINSCAN_TRAINING_DATA", REPO.parent / "shared" / "data"))


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TQDM_DISABLE="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    assert (DATA / "skin" / "metadata.csv").is_file(), (
        f"training data not found at {DATA}; set SKINSCAN_TRAINING_DATA"
    )
    out = tmp_path_factory.mktemp("pipeline")
    small = ["--data", str(DATA), "--limit-per-class", "4"]
    run_script(
        "train.py",
        *small,
        "--out",
        str(out / "run"),
        "--head-epochs",
        "1",
        "--epochs",
        "1",
        "--cache-views",
        "1",
        "--batch-size",
        "8",
    )
    run_script(
        "convert.py",
        *small,
        "--weights",
        str(out / "run" / "model.pt"),
        "--out",
        str(out / "models"),
        "--representative",
        "12",
        "--version",
        "smoke",
    )
    run_script(
        "evaluate.py",
        *small,
        "--model",
        str(out / "models" / "skinscan.json"),
        "--calibrate",
        "--out-dir",
        str(out / "report"),
    )
    return out


def test_training_writes_weights_logits_and_summary(pipeline: Path):
    run = pipeline / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["port_check"]["chelsea"] > 0.2  # the ImageNet port was verified first
    assert [h["stage"] for h in summary["history"]] == ["head", "finetune"]
    logits = np.load(run / "val_logits.npz")
    assert logits["logits"].shape[1] == 7
    assert (run / "checkpoint.pt").is_file()


def test_split_is_lesion_disjoint(pipeline: Path):
    from cloud.training.dataset import load_records, split_by_lesion

    train, val = split_by_lesion(load_records(DATA))
    assert {r.group for r in train}.isdisjoint({r.group for r in val})
    assert 0.15 < len(val) / (len(train) + len(val)) < 0.25


def test_conversion_is_full_integer_and_recorded(pipeline: Path):
    from cloud.training.tflite_export import float_tensor_names
    from kiosk.model.classifier import Classifier, load_metadata

    models = pipeline / "models"
    assert float_tensor_names((models / "skinscan_int8.tflite").read_bytes()) == []
    md = load_metadata(models / "skinscan.json")
    assert md.training["port_max_logit_difference"] < 1e-3
    int8 = Classifier(md, "int8")
    assert int8.input_dtype == np.uint8
    assert Classifier(md, "float").input_dtype == np.float32


def test_evaluation_calibrates_and_reports(pipeline: Path):
    from kiosk.model.classifier import load_metadata

    md = load_metadata(pipeline / "models" / "skinscan.json")
    assert md.calibration.fitted_on.startswith("int8 logits")
    assert 0 < md.thresholds.urgent_at <= 1
    metrics = json.loads((pipeline / "report" / "metrics.json").read_text())
    for key in (
        "accuracy",
        "balanced_accuracy",
        "ece",
        "melanoma_sensitivity_urgent",
        "out_of_scope_rate",
        "abstain_rate",
        "int8_float_agreement",
        "per_class",
    ):
        assert key in metrics["int8"], key
    assert metrics["latency"]["int8_median_ms"] > 0
    card = (pipeline / "report" / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card.lower()
    assert (pipeline / "report" / "confusion_int8.png").stat().st_size > 1000


def test_training_resumes_from_its_checkpoint(pipeline: Path):
    """A second run with --resume and one more epoch continues where the first one stopped."""
    run = pipeline / "run"
    result = run_script(
        "train.py",
        "--data",
        str(DATA),
        "--limit-per-class",
        "4",
        "--out",
        str(run),
        "--head-epochs",
        "1",
        "--epochs",
        "2",
        "--cache-views",
        "1",
        "--batch-size",
        "8",
        "--resume",
    )
    assert "resuming after epoch 2" in result.stdout
    history = json.loads((run / "summary.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
