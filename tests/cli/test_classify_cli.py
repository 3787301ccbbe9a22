"""The `kiosk classify` / `kiosk version` contract, as a subprocess and in-process."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kiosk.cli.main import main
from kiosk.model.classifier import METADATA_ENV, Classifier, default_metadata_path, load_metadata
from kiosk.model.conditions import CONDITIONS, Urgency
from tests.conftest import TinyModel, sha256_of
from tests.kiosk_cli import run_kiosk as kiosk_process

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data" / "samples"
RESULT_KEYS = {
    "file",
    "label",
    "confidence",
    "probabilities",
    "abstained",
    "urgency",
    "reason",  # condition | unsure | cancer_not_ruled_out
    "latency_ms",
    "model_version",  # the model that actually ran (the installed release unless --model)
}
URGENCIES = {u.value for u in Urgency}


def run_kiosk(*args: str, env_drop: tuple[str, ...] = (METADATA_ENV,)):
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    return kiosk_process(*args, env=env, timeout=120)


def check_result(row: dict, file: str) -> None:
    assert set(row) == RESULT_KEYS
    assert row["reason"] in {"condition", "unsure", "cancer_not_ruled_out"}
    assert row["file"] == file
    assert row["label"] in CONDITIONS
    assert row["urgency"] in URGENCIES
    assert isinstance(row["abstained"], bool)
    assert list(row["probabilities"]) == list(CONDITIONS)
    assert math.isclose(sum(row["probabilities"].values()), 1.0, abs_tol=1e-3)
    assert all(0.0 <= p <= 1.0 for p in row["probabilities"].values())
    assert row["confidence"] == max(row["probabilities"].values())
    assert row["probabilities"][row["label"]] == row["confidence"]
    assert all(round(p, 4) == p for p in row["probabilities"].values())
    assert isinstance(row["latency_ms"], float)
    assert row["latency_ms"] > 0


def parse_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def images(tiny_model: TinyModel, tmp_path: Path) -> list[str]:
    """Three good JPEGs (classes 0, 1, 2 of the tiny model; 300×260, so they get cropped)."""
    paths = []
    for i in range(3):
        img = Image.fromarray(tiny_model.images[i]).resize((300, 260))
        p = tmp_path / f"img{i}.jpg"
        img.save(p, "JPEG", quality=92)
        paths.append(str(p))
    return paths


@pytest.fixture
def bad_file(tmp_path: Path) -> str:
    p = tmp_path / "bad.jpg"
    p.write_text("not an image")
    return str(p)


class TestClassifySubprocess:
    def test_json_lines_with_a_bad_file_in_the_middle(self, tiny_model, images, bad_file):
        files = [images[0], bad_file, images[1], images[2]]
        r = run_kiosk("classify", "--json", "--model", str(tiny_model.int8_path), *files)
        assert r.returncode == 1, r.stderr
        rows = parse_lines(r.stdout)
        assert [row["file"] for row in rows] == files
        assert rows[1] == {
            "file": bad_file,
            "error": f"{bad_file} is not an image Pillow can read (unknown format)",
        }
        for row, f in zip(
            [rows[0], rows[2], rows[3]], [images[0], images[1], images[2]], strict=True
        ):
            check_result(row, f)
        assert "Traceback" not in r.stderr

    def test_all_good_exits_0(self, tiny_model, images):
        r = run_kiosk("classify", "--json", "--model", str(tiny_model.metadata_path), *images)
        assert r.returncode == 0, r.stderr
        rows = parse_lines(r.stdout)
        assert len(rows) == len(images)
        for row, f in zip(rows, images, strict=True):
            check_result(row, f)
        # The tiny model knows its colour classes.
        assert [row["label"] for row in rows] == list(CONDITIONS[:3])

    def test_missing_model_exits_2_with_one_line(self, tmp_path, images):
        r = run_kiosk("classify", "--json", "--model", str(tmp_path / "nope.tflite"), *images)
        assert r.returncode == 2
        assert r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0] == f"kiosk: error: model file {tmp_path / 'nope.tflite'} not found"

    def test_corrupt_model_exits_2(self, model_copy, images):
        data = bytearray(model_copy.int8_path.read_bytes())
        data[100] ^= 0x55
        model_copy.int8_path.write_bytes(bytes(data))
        r = run_kiosk("classify", "--json", "--model", str(model_copy.int8_path), *images)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr
        error_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("kiosk: error:")]
        assert len(error_lines) == 1
        assert "does not match metadata" in error_lines[0]
        assert "corrupt or replaced" in error_lines[0]

    def test_python_dash_m_kiosk_without_command(self):
        r = run_kiosk()
        assert r.returncode == 2
        assert "classify" in r.stderr

    def test_version(self, tiny_model):
        r = run_kiosk("version", "--model", str(tiny_model.metadata_path))
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "skinscan-kiosk 0.1.0"
        assert lines[1].startswith("model tiny-test-model 0.0.1-test (int8: ")


class TestClassifyInProcess:
    def test_json(self, tiny_model, images, bad_file, capsys):
        rc = main(["classify", "--json", "--threads", "1", "--model", str(tiny_model.float_path),
                   bad_file, *images])  # fmt: skip
        out = capsys.readouterr().out
        assert rc == 1
        rows = parse_lines(out)
        assert set(rows[0]) == {"file", "error"}
        assert "not an image" in rows[0]["error"]
        for row, f in zip(rows[1:], images, strict=True):
            check_result(row, f)

    def test_missing_image_reported_and_others_processed(self, tiny_model, images, capsys):
        missing = str(Path(images[0]).with_name("missing.jpg"))
        rc = main(["classify", "--json", "--model", str(tiny_model.int8_path), missing, images[0]])
        rows = parse_lines(capsys.readouterr().out)
        assert rc == 1
        assert rows[0] == {"file": missing, "error": f"file not found: {missing}"}
        check_result(rows[1], images[0])

    def test_json_matches_classifier_and_decision(self, tiny_model, images, capsys):
        from kiosk.live.imaging import load_rgb, square_resize
        from kiosk.model.decision import decide

        assert main(["classify", "--json", "--model", str(tiny_model.int8_path), images[0]]) == 0
        row = parse_lines(capsys.readouterr().out)[0]
        clf = Classifier.from_model_file(tiny_model.int8_path)
        pred = clf.predict(square_resize(load_rgb(images[0]), 224))
        d = decide(pred.probabilities, clf.thresholds)
        assert row["label"] == d.label
        assert row["abstained"] == d.abstained
        assert row["urgency"] == d.urgency.value
        np.testing.assert_allclose(
            [row["probabilities"][c] for c in CONDITIONS], pred.probabilities, atol=5e-5
        )

    def test_table_output(self, tiny_model, images, bad_file, capsys):
        rc = main(["classify", "--model", str(tiny_model.int8_path), images[0], bad_file])
        lines = capsys.readouterr().out.splitlines()
        assert rc == 1
        assert lines[0].split() == ["file", "label", "conf", "urgency", "ms"]
        assert len(lines) == 3
        assert lines[1].startswith(images[0])
        assert CONDITIONS[0] in lines[1]
        assert "ERROR: " in lines[2] and "not an image" in lines[2]

    @pytest.mark.parametrize("problem", ["classes", "shape", "no_metadata"])
    def test_bad_model_exits_2(self, model_copy, images, capsys, problem):
        model_arg = str(model_copy.int8_path)
        if problem == "classes":
            model_copy.edit_metadata(classes=list(reversed(CONDITIONS)))
        elif problem == "shape":
            data = model_copy.metadata()
            data["input"]["height"] = data["input"]["width"] = 96
            model_copy.write_metadata(data)
        else:
            model_copy.metadata_path.unlink()
        rc = main(["classify", "--json", "--model", model_arg, *images])
        captured = capsys.readouterr()
        assert rc == 2
        assert captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1
        assert captured.err.startswith("kiosk: error: ")

    def test_model_from_environment(self, tiny_model, images, capsys, monkeypatch):
        monkeypatch.setenv(METADATA_ENV, str(tiny_model.metadata_path))
        assert main(["classify", "--json", images[0]]) == 0
        check_result(parse_lines(capsys.readouterr().out)[0], images[0])

    def test_bad_threads_is_a_usage_error(self, tiny_model, images, capsys):
        with pytest.raises(SystemExit) as e:
            main(["classify", "--threads", "0", "--model", str(tiny_model.int8_path), *images])
        assert e.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err

    def test_version_with_missing_metadata(self, tmp_path, capsys):
        rc = main(["version", "--model", str(tmp_path / "none.json")])
        captured = capsys.readouterr()
        assert rc == 2
        assert captured.out.startswith("skinscan-kiosk ")
        assert "model metadata not found" in captured.err


class TestShippedModel:
    """The real shipped model (models/skinscan.json) on the sample images in tests/data/samples.

    Fails until the trained model and the samples are committed: that is intended.
    """

    @pytest.fixture(autouse=True)
    def _no_override(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(METADATA_ENV, raising=False)

    def test_metadata_and_sha256(self):
        path = default_metadata_path()
        assert path == REPO / "models" / "skinscan.json"
        md = load_metadata(path)
        assert md.classes == CONDITIONS
        for variant, entry in md.files.items():
            model_file = md.model_path(variant)
            assert model_file.stat().st_size == entry.bytes
            assert sha256_of(model_file) == entry.sha256
        clf = Classifier.from_metadata()  # verifies sha256, classes, tensor shapes
        assert clf.variant == "int8"
        assert clf.input_side == md.input.height

    def test_samples_classify(self):
        samples = sorted(SAMPLES.glob("*.jpg"))
        assert samples, f"no sample images in {SAMPLES}"
        r = run_kiosk("classify", "--json", *map(str, samples))
        assert r.returncode == 0, r.stderr
        rows = parse_lines(r.stdout)
        assert len(rows) == len(samples)
        for row, sample in zip(rows, samples, strict=True):
            check_result(row, str(sample))

    def test_samples_get_their_expected_triage(self):
        """Validation-split samples (not trained on) come out as the triage a clinic expects.

        The file name starts with the true class. Cancers must be flagged urgent; the others
        must get their own label, and the nevus must not be reported as one of the six.
        """
        samples = sorted(SAMPLES.glob("*.jpg"))
        rows = parse_lines(run_kiosk("classify", "--json", *map(str, samples)).stdout)
        for row, sample in zip(rows, samples, strict=True):
            truth = next(c for c in (*CONDITIONS, "nevus") if sample.name.startswith(c))
            if truth in ("melanoma", "basal_cell_carcinoma"):
                assert row["urgency"] == "urgent", row
            elif truth == "nevus":
                assert row["label"] == "other", row
            else:
                assert row["label"] == truth and not row["abstained"], row
