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


def convert_and_evaluate(small: list[str], out: Path, version: str) -> None:
    """The trained run in out/run to int8 + float in out/models, calibrated and evaluated
    into out/report, as scripts/make_model.sh does."""
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
        version,
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
    convert_and_evaluate(small, out, "smoke")
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


@pytest.fixture(scope="module")
def pipeline_v2(tmp_path_factory) -> Path:
    """The cpu-v2 recipe end to end on a tiny subset, warm-started from the shipped model."""
    out = tmp_path_factory.mktemp("pipeline_v2")
    small = ["--data", str(DATA), "--limit-per-class", "4"]
    run_script(
        "train.py",
        *small,
        "--recipe",
        "cpu-v2",
        "--out",
        str(out / "run"),
        "--views",
        "1",
        "--top-block-epochs",
        "1",
        "--head-epochs-v2",
        "2",
    )
    convert_and_evaluate(small, out, "smoke-v2")
    return out


def test_v2_recipe_writes_fine_grained_weights_and_source_results(pipeline_v2: Path):
    from cloud.training.v2_data import OTHER_OUTPUTS, OUTPUTS

    run = pipeline_v2 / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["recipe"] == "cpu-v2" and summary["outputs"] == list(OUTPUTS)
    assert summary["chosen"] in ("head_only", "top_block")
    assert summary["timings"]["view_rounds"] == 1
    assert "ham10000" in summary["leave_one_source_out"]  # the tiny subset holds no ISIC
    logits = np.load(run / "val_logits.npz")
    assert logits["logits"].shape[1] == len(OUTPUTS) == 6 + len(OTHER_OUTPUTS)


def test_v2_conversion_ships_outputs_and_a_checkpoint(pipeline_v2: Path):
    import torch

    from cloud.training.tflite_export import float_tensor_names
    from kiosk.model.classifier import Classifier, load_metadata

    models = pipeline_v2 / "models"
    assert float_tensor_names((models / "skinscan_int8.tflite").read_bytes()) == []
    md = load_metadata(models / "skinscan.json")
    assert len(md.outputs) == 11 and "nevus" in md.other_outputs
    state = torch.load(models / "skinscan_checkpoint.pt", weights_only=True)
    assert state["_fc.weight"].dtype == torch.float32 and state["_fc.weight"].shape[0] == 11
    p = Classifier(md, "int8").predict(np.zeros((224, 224, 3), np.uint8)).probabilities
    assert p.shape == (7,) and abs(p.sum() - 1) < 1e-6


def test_v2_evaluation_chooses_both_tiers_and_reports_sources(pipeline_v2: Path):
    from kiosk.model.classifier import load_metadata

    md = load_metadata(pipeline_v2 / "models" / "skinscan.json")
    assert md.thresholds.soon_at is not None
    assert 0 < md.thresholds.soon_at <= md.thresholds.urgent_at
    metrics = json.loads((pipeline_v2 / "report" / "metrics.json").read_text())
    v2 = metrics["v2"]
    assert {"referral", "class_intervals", "per_source", "float_vs_int8"} <= set(v2)
    assert "ham10000" in v2["per_source"]
    assert (pipeline_v2 / "report" / "referral_roc.png").stat().st_size > 1000
    assert "Referral rule" in (pipeline_v2 / "report" / "MODEL_CARD.md").read_text()
