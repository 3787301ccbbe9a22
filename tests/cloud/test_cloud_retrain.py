"""Retraining: the export of reviewed cases, the no-regression gate, and (slow) a real tiny
retrain with the foundation's scripts that publishes a release a kiosk verifies and installs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from cloud.release import generate_signing_key
from cloud.retrain import gate
from cloud.retrain_data import ReviewedCase, build_dataset, train_only_group
from cloud.training.dataset import Record, load_records, split_by_lesion
from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import connect as kiosk_connect
from kiosk.cases.model_updates import ModelUpdater
from kiosk.cases.releases import ReleaseManifest, verify_manifest
from kiosk.model.classifier import Classifier
from tests.cloud_helpers import CLOUD_CLI, case_doc, put_case, sample_images

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SKINSCAN_TRAINING_DATA", REPO.parent / "shared" / "data"))


def test_the_gate_refuses_any_regression_of_the_gated_metrics():
    base = {"balanced_accuracy": 0.74, "melanoma_sensitivity_urgent": 0.95, "accuracy": 0.8}
    assert gate(dict(base), base).publish
    better = {**base, "balanced_accuracy": 0.80, "accuracy": 0.5}  # accuracy is not gated
    assert gate(better, base).publish
    worse_ba = {**base, "balanced_accuracy": 0.739}
    assert not gate(worse_ba, base).publish
    worse_mel = {**base, "melanoma_sensitivity_urgent": 0.90, "balanced_accuracy": 0.9}
    refused = gate(worse_mel, base)
    assert not refused.publish and "melanoma_sensitivity_urgent" in refused.reasons[0]
    assert gate(worse_mel, base, max_drop=0.06).publish
    assert not gate({"balanced_accuracy": 0.9}, base).publish  # a missing figure refuses


def test_reviewed_cases_never_enter_the_validation_split():
    base = [
        Record(Path(f"{c}/{i}.jpg"), c, c, f"lesion-{c}-{i}")
        for c in ("melanoma", "eczema")
        for i in range(40)
    ]
    _, base_val = split_by_lesion(base, 0.2, seed=0)
    reviewed = [
        Record(Path(f"r/{i}.jpg"), "melanoma", "melanoma", train_only_group(f"case-{i}", 0))
        for i in range(60)
    ]
    train, val = split_by_lesion(base + reviewed, 0.2, seed=0)
    assert not {r.group for r in reviewed} & {r.group for r in val}
    assert {r.group for r in reviewed} <= {r.group for r in train}
    assert {r.group for r in base_val} <= {r.group for r in val}  # the fixed set stays


def test_the_export_links_base_images_and_adds_reviewed_cases(tmp_path):
    base = tmp_path / "base"
    for subset, classes in (("skin", ["melanoma", "eczema"]), ("skin_extra", ["nevus"])):
        rows = []
        for c in classes:
            (base / subset / c).mkdir(parents=True)
            for i in range(3):
                (base / subset / c / f"{i}.jpg").write_bytes(b"jpeg")
                rows.append({"file": f"{c}/{i}.jpg", "class": c, "source": "s", "lesion_id": ""})
        with (base / subset / "metadata.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["file", "class", "source", "lesion_id"])
            w.writeheader()
            w.writerows(rows)
    reviewed = [ReviewedCase("c1", "melanoma", b"one"), ReviewedCase("c2", "other", b"two")]
    out = tmp_path / "export"
    assert build_dataset(base, out, reviewed, limit_per_class=2) == 6
    records = load_records(out)
    assert sorted(r.label for r in records if "reviewed" in str(r.path)) == ["melanoma", "other"]
    assert (out / "skin" / "reviewed" / "c1.jpg").read_bytes() == b"one"
    assert (out / "skin" / "melanoma").is_symlink()
    assert all(r.path.is_file() for r in records)
    assert len([r for r in records if r.source_class == "eczema"]) == 2  # limit on base only


@pytest.mark.slow
def test_a_tiny_retrain_publishes_a_release_that_a_kiosk_installs(env, firebase_env, tmp_path):
    assert (DATA / "skin" / "metadata.csv").is_file(), (
        f"training data not found at {DATA}; set SKINSCAN_TRAINING_DATA"
    )
    env.reset()
    images = sample_images()
    used = [
        put_case(env.fb, image=images[0], status=schema.STATUS_REVIEWED, label="acne"),
        put_case(env.fb, image=images[4], status=schema.STATUS_REVIEWED, label="melanoma"),
    ]
    no_consent = put_case(env.fb, image=images[2], status=schema.STATUS_REVIEWED)
    env.fb.db.collection(schema.CASES).document(no_consent).update({"consent": False})
    for case_id, label in zip(used, ("acne", "melanoma"), strict=True):
        env.fb.db.collection(schema.CASES).document(case_id).update(
            {"review": {"label": label, "recommendation": "r", "reviewer": "Dr"}}
        )
    put_case(env.fb, image=images[3])  # not reviewed: not used
    key = tmp_path / "release.pem"
    public = generate_signing_key(key)
    out = tmp_path / "retrain"
    result = subprocess.run(
        [
            str(CLOUD_CLI),
            "retrain",
            *("--data", str(DATA), "--out", str(out), "--signing-key", str(key)),
            *("--limit-per-class", "4", "--head-epochs", "1", "--epochs", "1"),
            *("--representative", "12", "--version", "retrain-smoke"),
            # A model trained on 30 images cannot match the shipped one; this run proves the
            # pipeline, and the gate itself is tested above.
            *("--max-drop", "1.0"),
        ],
        capture_output=True,
        text=True,
        env=env.environ(TQDM_DISABLE="1"),
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads((out / "retrain.json").read_text())
    assert report["reviewed_cases"] == 2 and report["skipped"]["no_consent"] == 1
    assert report["reviewed_from_compact"] == 0  # both sent whole (cloud.retrain_data)
    assert report["published"]
    for side in ("candidate", "baseline"):
        for key_name in ("balanced_accuracy", "melanoma_sensitivity_urgent"):
            assert 0 <= report[side][key_name] <= 1
    exported = load_records(out / "data")
    assert {r.path.stem for r in exported if "reviewed" in str(r.path)} == set(used)
    assert no_consent not in (out / "data" / "skin" / "metadata.csv").read_text()
    assert case_doc(env.fb, used[0])["status"] == schema.STATUS_REVIEWED  # untouched

    doc = env.fb.db.collection(schema.MODEL_RELEASES).document("retrain-smoke").get().to_dict()
    manifest = ReleaseManifest.from_document(doc)
    verify_manifest(manifest, public)
    assert manifest.metrics["balanced_accuracy"] == report["candidate"]["balanced_accuracy"]
    config = firebase_env.kiosk_config(tmp_path / "kiosk", model_public_key=public)
    clients = kiosk_connect(config)
    try:
        assert ModelUpdater(config).check(clients).installed == "retrain-smoke"
    finally:
        clients.close()
    installed = Classifier.open(config.models_dir / "retrain-smoke" / "skinscan.json")
    assert installed.metadata.calibration.fitted_on.startswith("int8 logits")
