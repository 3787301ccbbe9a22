"""The shipped model v2: fine-grained outputs summed into `other`, tensor types as declared, and
the shipped float32 training checkpoint computing what the shipped int8 model computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloud.training.lite0_torch import Lite0, normalise
from kiosk.live.imaging import load_rgb, square_resize
from kiosk.model.classifier import (
    Classifier,
    default_metadata_path,
    load_metadata,
    merge_logits,
    softmax,
)
from kiosk.model.conditions import CONDITIONS

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "tests" / "data" / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def metadata():
    return load_metadata(default_metadata_path())


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.stack([square_resize(load_rgb(p), 224) for p in SAMPLES])


def test_shipped_metadata_declares_fine_outputs_and_tensor_types(metadata):
    assert set(CONDITIONS) - {"other"} <= set(metadata.outputs)
    assert set(metadata.other_outputs) == {
        "nevus",
        "benign_keratosis",
        "vascular_lesion",
        "healthy_skin",
        "non_skin",
    }
    int8, flt = metadata.model_file("int8"), metadata.model_file("float")
    assert (int8.input_dtype, int8.output_dtype) == ("uint8", "uint8")
    assert (flt.input_dtype, flt.output_dtype) == ("float32", "float32")
    th = metadata.thresholds
    assert th.soon_at is not None and 0 < th.soon_at <= th.urgent_at


def test_other_is_the_sum_of_the_fine_outputs(metadata, samples):
    """The kiosk's `other` logit is the log-sum-exp of the five fine outputs (so at T = 1 its
    probability is their summed softmax), computed from the raw interpreter output."""
    from ai_edge_litert.interpreter import Interpreter

    clf = Classifier(metadata, "float")
    raw = Interpreter(model_path=str(metadata.model_path("float")))
    raw.allocate_tensors()
    idx = [metadata.outputs.index(o) for o in metadata.other_outputs]
    for img in samples:
        raw.set_tensor(raw.get_input_details()[0]["index"], normalise_nhwc(img))
        raw.invoke()
        fine = raw.get_tensor(raw.get_output_details()[0]["index"])[0].astype(np.float64)
        merged = clf.logits(img)
        p_fine = softmax(fine)
        assert softmax(merged)[CONDITIONS.index("other")] == pytest.approx(
            p_fine[idx].sum(), abs=1e-5
        )
        mel = metadata.outputs.index("melanoma")
        assert softmax(merged)[CONDITIONS.index("melanoma")] == pytest.approx(p_fine[mel], abs=1e-5)


def normalise_nhwc(img: np.ndarray) -> np.ndarray:
    return ((img.astype(np.float32) - 127.0) / 128.0)[None]


def test_checkpoint_and_int8_model_agree_on_the_samples(metadata, samples):
    ckpt = metadata.path.parent / "skinscan_checkpoint.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = Lite0(len(metadata.outputs))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    with torch.no_grad():
        fine = model(normalise(torch.from_numpy(samples))).numpy()
    int8 = Classifier(metadata, "int8")
    plan = [[metadata.outputs.index(c)] for c in CONDITIONS if c != "other"]
    plan.append([metadata.outputs.index(o) for o in metadata.other_outputs])
    ref = softmax(merge_logits(fine, plan), metadata.calibration.temperature)
    got = np.stack([int8.predict(img).probabilities for img in samples])
    assert (ref.argmax(1) == got.argmax(1)).all()
    assert np.abs(ref - got).max() < 0.15  # int8 rounding of an 11-output head
