"""kiosk.model.classifier: quantization arithmetic, metadata validation, and the Classifier on a
tiny real TFLite model (int8 and float variants) built by conftest.py."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from kiosk.errors import ModelError, RuntimeUnavailableError
from kiosk.model.classifier import (
    METADATA_ENV,
    Category,
    Classifier,
    Prediction,
    default_metadata_path,
    dequantize,
    find_metadata_for,
    load_metadata,
    quantize,
    softmax,
)
from kiosk.model.conditions import CONDITIONS
from tests.conftest import MEAN, STD, TEMPERATURE, TinyModel, sha256_of

# --------------------------------------------------------------------------- pure arithmetic


class TestQuantizationArithmetic:
    def test_dequantize_uint8(self):
        q = np.array([0, 128, 255, 130], dtype=np.uint8)
        out = dequantize(q, 0.5, 128)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, [-64.0, 0.0, 63.5, 1.0])

    def test_dequantize_int8(self):
        q = np.array([-128, -5, 0, 127], dtype=np.int8)
        np.testing.assert_allclose(dequantize(q, 0.25, -5), [-30.75, 0.0, 1.25, 33.0])

    def test_dequantize_does_not_wrap_uint8(self):
        # q - zero_point must be computed in float, not in uint8 (which would wrap around).
        q = np.array([3], dtype=np.uint8)
        assert dequantize(q, 1.0, 10)[0] == -7.0

    def test_quantize_rounds_half_away_from_zero_and_clips(self):
        x = np.array([0.5, -0.5, 1.5, -1.5, 1000.0, -1000.0])
        np.testing.assert_array_equal(quantize(x, 1.0, 0, np.int8), [1, -1, 2, -2, 127, -128])
        np.testing.assert_array_equal(
            quantize(np.array([-1.0, 0.0, 1000.0]), 1.0, 10, np.uint8), [9, 10, 255]
        )

    def test_round_trip_error_is_at_most_half_a_step(self):
        scale, zp = 0.0371, 121
        x = np.linspace(-4.4, 4.9, 1001)
        back = dequantize(quantize(x, scale, zp, np.uint8), scale, zp)
        assert np.max(np.abs(back - x)) <= scale / 2 + 1e-6

    def test_image_normalisation_is_identity_for_scale_1_over_std(self):
        # uint8 pixel x means (x - 127) / 128; a uint8 input with scale 1/128 and zero point 127
        # therefore takes the raw pixel unchanged.
        levels = np.arange(256, dtype=np.float64)
        q = quantize((levels - 127.0) / 128.0, 1 / 128, 127, np.uint8)
        np.testing.assert_array_equal(q, np.arange(256, dtype=np.uint8))

    def test_softmax_sums_to_one_and_is_stable(self):
        p = softmax(np.array([1000.0, 999.0, -1000.0]))
        assert np.isfinite(p).all()
        assert p.sum() == pytest.approx(1.0)
        assert p[0] == pytest.approx(1 / (1 + np.exp(-1)))

    def test_softmax_temperature(self):
        logits = np.array([2.0, 1.0, 0.1, -3.0])
        t = 1.7
        expected = np.exp(logits / t) / np.exp(logits / t).sum()
        np.testing.assert_allclose(softmax(logits, t), expected, rtol=1e-12)
        # A temperature above 1 softens the distribution without changing the order.
        assert softmax(logits, t).max() < softmax(logits).max()
        assert np.argmax(softmax(logits, t)) == np.argmax(logits)

    @pytest.mark.parametrize("t", [0.0, -1.0, float("nan")])
    def test_softmax_rejects_bad_temperature(self, t):
        with pytest.raises(ValueError, match="temperature"):
            softmax(np.zeros(3), t)


# --------------------------------------------------------------------------- metadata


class TestMetadata:
    def test_load(self, tiny_model: TinyModel):
        md = load_metadata(tiny_model.metadata_path)
        assert md.classes == CONDITIONS
        assert md.input.height == md.input.width == 224
        assert (md.input.mean, md.input.std) == (MEAN, STD)
        assert md.calibration.temperature == TEMPERATURE
        assert md.thresholds.abstain_below == 0.5
        assert md.thresholds.urgent_at == 0.3
        assert md.model_path("int8") == tiny_model.int8_path
        assert md.model_path("float") == tiny_model.float_path
        assert md.files["int8"].sha256 == sha256_of(tiny_model.int8_path)
        assert md.variant_of(tiny_model.float_path.name) == "float"
        with pytest.raises(dataclasses.FrozenInstanceError):
            md.version = "x"  # type: ignore[misc]

    def test_missing_file(self, tmp_path: Path):
        with pytest.raises(ModelError, match="model metadata not found"):
            load_metadata(tmp_path / "nope.json")

    def test_invalid_json(self, tmp_path: Path):
        p = tmp_path / "m.json"
        p.write_text("{not json")
        with pytest.raises(ModelError, match="not valid JSON"):
            load_metadata(p)

    def test_missing_key_is_named(self, model_copy: TinyModel):
        data = model_copy.metadata()
        del data["input"]["std"]
        model_copy.write_metadata(data)
        with pytest.raises(ModelError, match=r"missing key 'input\.std'"):
            load_metadata(model_copy.metadata_path)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"output": "probabilities"}, 'must be "logits"'),
            ({"calibration": {"temperature": 0, "fitted_on": "x"}}, "temperature must be positive"),
            ({"thresholds": {"abstain_below": 1.5, "urgent_at": 0.3}}, "between 0 and 1"),
            ({"classes": "acne"}, "list of class names"),
            ({"files": {}}, "lists no model file"),
        ],
    )
    def test_invalid_values(self, model_copy: TinyModel, change, message):
        model_copy.edit_metadata(**change)
        with pytest.raises(ModelError, match=message):
            load_metadata(model_copy.metadata_path)

    def test_model_path_must_be_beside_the_json(self, model_copy: TinyModel):
        data = model_copy.metadata()
        data["files"]["int8"]["path"] = "../elsewhere/model.tflite"
        model_copy.write_metadata(data)
        with pytest.raises(ModelError, match="file name beside the JSON"):
            load_metadata(model_copy.metadata_path)

    def test_non_square_input_rejected(self, model_copy: TinyModel):
        data = model_copy.metadata()
        data["input"]["width"] = 192
        model_copy.write_metadata(data)
        with pytest.raises(ModelError, match="must be square"):
            load_metadata(model_copy.metadata_path)

    def test_default_metadata_path(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
        monkeypatch.delenv(METADATA_ENV, raising=False)
        repo = Path(__file__).resolve().parents[2]
        assert default_metadata_path() == repo / "models" / "skinscan.json"
        monkeypatch.setenv(METADATA_ENV, str(tmp_path / "other.json"))
        assert default_metadata_path() == tmp_path / "other.json"

    def test_find_metadata_for_model_file(self, tiny_model: TinyModel):
        md, variant = find_metadata_for(tiny_model.float_path)
        assert variant == "float"
        assert md.path == tiny_model.metadata_path

    def test_find_metadata_ignores_unrelated_json(self, model_copy: TinyModel):
        (model_copy.dir / "aaa.json").write_text("[1, 2, 3]")
        (model_copy.dir / "bbb.json").write_text("{broken")
        _, variant = find_metadata_for(model_copy.int8_path)
        assert variant == "int8"


# --------------------------------------------------------------------------- classifier


def raw_interpreter(path: Path) -> Interpreter:
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def run_raw(interpreter: Interpreter, tensor: np.ndarray) -> np.ndarray:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].copy()


@pytest.fixture(scope="module")
def int8_classifier(tiny_model: TinyModel) -> Classifier:
    return Classifier.from_metadata(tiny_model.metadata_path, "int8")


@pytest.fixture(scope="module")
def float_classifier(tiny_model: TinyModel) -> Classifier:
    return Classifier.from_metadata(tiny_model.metadata_path, "float", num_threads=1)


class TestClassifierArithmetic:
    def test_quantization_read_from_interpreter(self, tiny_model, int8_classifier):
        raw = raw_interpreter(tiny_model.int8_path)
        inp, out = raw.get_input_details()[0], raw.get_output_details()[0]
        assert inp["dtype"] == np.uint8
        assert out["dtype"] == np.uint8
        assert int8_classifier.input_dtype == np.uint8
        assert int8_classifier.input_quantization == pytest.approx(inp["quantization"])
        assert int8_classifier.output_quantization == pytest.approx(out["quantization"])
        # This tiny model was calibrated over the full 0..255 range: scale 1/128, zero point 127.
        assert inp["quantization"] == pytest.approx((1 / 128, 127))

    def test_int8_logits_are_hand_dequantized_raw_output(self, tiny_model, int8_classifier):
        raw = raw_interpreter(tiny_model.int8_path)
        scale, zero_point = raw.get_output_details()[0]["quantization"]
        for image in tiny_model.images[:6]:
            q = run_raw(raw, image)  # the uint8 image goes in as it is
            assert q.dtype == np.uint8
            by_hand = (q.astype(np.float64) - zero_point) * scale
            np.testing.assert_allclose(int8_classifier.logits(image), by_hand, rtol=1e-6)

    def test_float_logits_use_metadata_mean_std(self, tiny_model, float_classifier):
        raw = raw_interpreter(tiny_model.float_path)
        assert float_classifier.input_quantization is None
        assert float_classifier.output_quantization is None
        for image in tiny_model.images[:4]:
            expected = run_raw(raw, ((image.astype(np.float32) - MEAN) / STD))
            np.testing.assert_allclose(float_classifier.logits(image), expected, rtol=1e-5)

    def test_int8_and_float_agree(self, tiny_model, int8_classifier, float_classifier):
        agree = 0
        for image in tiny_model.images:
            a = int8_classifier.logits(image)
            b = float_classifier.logits(image)
            agree += int(np.argmax(a) == np.argmax(b))
        assert agree >= 0.9 * len(tiny_model.images)

    def test_tiny_model_learned_its_classes(self, tiny_model, int8_classifier):
        # Sanity check of the fixture, so agreement above is not trivially one constant class.
        top = [int(np.argmax(int8_classifier.logits(x))) for x in tiny_model.images]
        assert np.mean(np.array(top) == tiny_model.labels) >= 0.8

    def test_probabilities_are_temperature_scaled_softmax(self, tiny_model, int8_classifier):
        p = int8_classifier.predict(tiny_model.images[0])
        z = p.logits.astype(np.float64) / TEMPERATURE
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(p.probabilities, expected, rtol=1e-9)
        assert p.probabilities.sum() == pytest.approx(1.0)
        # Calibration changes confidence, not the ranking.
        assert np.argmax(p.probabilities) == np.argmax(p.logits)
        assert p.probabilities.max() < softmax(p.logits).max()

    def test_prediction_shape_and_accessors(self, tiny_model, int8_classifier):
        p = int8_classifier.predict(tiny_model.images[1])
        assert isinstance(p, Prediction)
        assert p.logits.shape == p.probabilities.shape == (len(CONDITIONS),)
        assert p.invoke_ms > 0
        top = p.top_k(3)
        assert [c.score for c in top] == sorted((c.score for c in top), reverse=True)
        assert isinstance(p.top, Category)
        assert p.top == top[0]
        assert p.top.label == CONDITIONS[int(np.argmax(p.probabilities))]
        assert list(p.as_dict()) == list(CONDITIONS)
        assert int8_classifier.classify(tiny_model.images[1], k=2) == top[:2]
        with pytest.raises(ValueError):
            p.probabilities[0] = 1.0  # read-only
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.invoke_ms = 0.0  # type: ignore[misc]

    def test_interpreter_reused_and_deterministic(self, tiny_model, int8_classifier):
        interpreter = int8_classifier._interpreter
        first = int8_classifier.logits(tiny_model.images[2])
        second = int8_classifier.logits(tiny_model.images[2])
        np.testing.assert_array_equal(first, second)
        assert int8_classifier._interpreter is interpreter
        assert int8_classifier.num_threads == 2

    @pytest.mark.parametrize(
        "image",
        [
            np.zeros((224, 224, 3), dtype=np.float32),
            np.zeros((225, 224, 3), dtype=np.uint8),
            np.zeros((224, 224), dtype=np.uint8),
            np.zeros((1, 224, 224, 3), dtype=np.uint8),
        ],
    )
    def test_bad_image_argument(self, int8_classifier, image):
        with pytest.raises(ValueError, match="image"):
            int8_classifier.predict(image)

    def test_requantizes_when_input_mapping_is_not_identity(self, model_copy: TinyModel):
        # With std 256 the model should see (x - 127) / 256; the int8 input (scale 1/128,
        # zero point 127) needs q = round((x - 127) / 2) + 127, not the raw pixel.
        data = model_copy.metadata()
        data["input"]["std"] = 256.0
        model_copy.write_metadata(data)
        clf = Classifier.from_metadata(model_copy.metadata_path, "int8")
        raw = raw_interpreter(model_copy.int8_path)
        scale, zp = raw.get_input_details()[0]["quantization"]
        out_scale, out_zp = raw.get_output_details()[0]["quantization"]
        image = model_copy.images[3]
        q_in = quantize((image.astype(np.float64) - 127.0) / 256.0, scale, zp, np.uint8)
        assert not np.array_equal(q_in, image)
        expected = (run_raw(raw, q_in).astype(np.float64) - out_zp) * out_scale
        np.testing.assert_allclose(clf.logits(image), expected, rtol=1e-6)


class TestModelChecks:
    def test_from_model_file(self, tiny_model: TinyModel):
        clf = Classifier.from_model_file(tiny_model.float_path)
        assert clf.variant == "float"
        assert clf.model_path == tiny_model.float_path
        assert clf.input_dtype == np.float32
        assert clf.runtime == "ai_edge_litert"

    def test_from_model_file_without_metadata(self, tiny_model: TinyModel, tmp_path: Path):
        lone = tmp_path / "lone.tflite"
        lone.write_bytes(tiny_model.int8_path.read_bytes())
        with pytest.raises(ModelError, match=r"no model metadata \(\*\.json\) in .* lists lone"):
            Classifier.from_model_file(lone)

    def test_missing_model_file(self, model_copy: TinyModel):
        model_copy.int8_path.unlink()
        with pytest.raises(ModelError, match="model file not found"):
            Classifier.from_metadata(model_copy.metadata_path)
        with pytest.raises(ModelError, match="not found"):
            Classifier.from_model_file(model_copy.int8_path)

    def test_unknown_variant(self, tiny_model: TinyModel):
        with pytest.raises(ModelError, match="no 'fp16' model; it lists: int8, float"):
            Classifier.from_metadata(tiny_model.metadata_path, "fp16")

    def test_sha256_mismatch(self, model_copy: TinyModel):
        content = bytearray(model_copy.int8_path.read_bytes())
        content[len(content) // 2] ^= 0xFF  # same size, one byte flipped
        model_copy.int8_path.write_bytes(bytes(content))
        with pytest.raises(ModelError, match=r"sha256 .* does not match metadata") as e:
            Classifier.from_metadata(model_copy.metadata_path)
        assert "corrupt or replaced" in str(e.value)
        assert str(model_copy.int8_path) in str(e.value)

    def test_truncated_file(self, model_copy: TinyModel):
        content = model_copy.int8_path.read_bytes()
        model_copy.int8_path.write_bytes(content[: len(content) // 2])
        with pytest.raises(ModelError, match=r"metadata says .*truncated or replaced"):
            Classifier.from_metadata(model_copy.metadata_path)

    @pytest.mark.parametrize(
        "content",
        [b"this is not a flatbuffer" * 10, None],  # None: a truncated real model
        ids=["garbage", "truncated"],
    )
    def test_corrupt_flatbuffer_with_matching_sha(self, model_copy: TinyModel, content):
        # The metadata agrees with the file, so only the interpreter can tell it is broken.
        if content is None:
            content = model_copy.int8_path.read_bytes()[:3000]
        model_copy.int8_path.write_bytes(content)
        data = model_copy.metadata()
        data["files"]["int8"]["sha256"] = sha256_of(model_copy.int8_path)
        data["files"]["int8"]["bytes"] = len(content)
        model_copy.write_metadata(data)
        with pytest.raises(ModelError, match="cannot be loaded by ai_edge_litert"):
            Classifier.from_metadata(model_copy.metadata_path)

    def test_wrong_class_order(self, model_copy: TinyModel):
        classes = list(CONDITIONS)
        classes[2], classes[5] = classes[5], classes[2]
        model_copy.edit_metadata(classes=classes)
        with pytest.raises(ModelError, match="classes differ") as e:
            Classifier.from_metadata(model_copy.metadata_path)
        assert "#2 is 'melanoma', expected 'basal_cell_carcinoma'" in str(e.value)

    def test_wrong_class_count(self, model_copy: TinyModel):
        model_copy.edit_metadata(classes=list(CONDITIONS[:6]))
        with pytest.raises(ModelError, match="lists 6 classes; this kiosk needs 7"):
            Classifier.from_metadata(model_copy.metadata_path)

    def test_wrong_input_shape(self, model_copy: TinyModel):
        data = model_copy.metadata()
        data["input"]["height"] = data["input"]["width"] = 192
        model_copy.write_metadata(data)
        with pytest.raises(ModelError, match=r"input shape \(1, 224, 224, 3\) does not match"):
            Classifier.from_metadata(model_copy.metadata_path)

    def test_input_normalisation_incompatible_with_quantization(self, model_copy: TinyModel):
        # mean 0 / std 1 would need inputs up to 255, far outside the int8 input's [-1, 1].
        data = model_copy.metadata()
        data["input"].update(mean=0.0, std=1.0)
        model_copy.write_metadata(data)
        with pytest.raises(ModelError, match=r"input\.mean/std do not match"):
            Classifier.from_metadata(model_copy.metadata_path)

    @pytest.mark.parametrize("threads", [0, -1, 1.5, True])
    def test_bad_num_threads(self, tiny_model: TinyModel, threads):
        with pytest.raises(ValueError, match="num_threads"):
            Classifier.from_metadata(tiny_model.metadata_path, num_threads=threads)

    def test_runtime_unavailable(self, tiny_model: TinyModel, monkeypatch: pytest.MonkeyPatch):
        # A None entry in sys.modules makes the import raise ImportError.
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
        monkeypatch.setitem(sys.modules, "tflite_runtime", None)
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
        with pytest.raises(RuntimeUnavailableError) as e:
            Classifier.from_metadata(tiny_model.metadata_path)
        message = str(e.value)
        assert "pip install ai-edge-litert" in message
        assert "pip install tflite-runtime" in message

    def test_metadata_json_is_what_conftest_wrote(self, tiny_model: TinyModel):
        # Guard against a test editing the shared session model in place.
        data = json.loads(tiny_model.metadata_path.read_text())
        assert data["files"]["int8"]["sha256"] == sha256_of(tiny_model.int8_path)
