"""Model v2 on the kiosk side: fine-grained outputs summed into `other`, the declared tensor
types checked against the interpreter, and the soon tier of the referral rule."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from kiosk.errors import ModelError
from kiosk.model.classifier import Classifier, load_metadata, merge_logits, softmax
from kiosk.model.conditions import CONDITIONS, Urgency
from kiosk.model.decision import (
    CANCER_NOT_RULED_OUT,
    CONDITION,
    UNSURE,
    Thresholds,
    decide,
)
from tests.conftest import TinyModel, sha256_of

SIX = [c for c in CONDITIONS if c != "other"]


# --------------------------------------------------------------------------- outputs metadata


def test_merge_logits_softmax_is_the_sum_of_the_group():
    z = np.array([[0.3, -1.0, 2.0, 0.5, 0.0, 1.5, 0.7, -0.2, 1.1]])
    plan = [[i] for i in range(6)] + [[6, 7, 8]]
    merged = merge_logits(z, plan)
    fine = softmax(z)[0]
    np.testing.assert_allclose(softmax(merged)[0][:6], fine[:6], atol=1e-6)
    np.testing.assert_allclose(softmax(merged)[0][6], fine[6:].sum(), atol=1e-6)


def _fine_names() -> list[str]:
    # The tiny model has 7 outputs: put melanoma first and call the last one "nevus".
    return ["melanoma", *[c for c in SIX if c != "melanoma"], "nevus"]


def test_outputs_are_mapped_by_name(model_copy: TinyModel):
    raw = Interpreter(model_path=str(model_copy.float_path))
    raw.allocate_tensors()
    model_copy.edit_metadata(outputs=_fine_names(), other_outputs=["nevus"])
    clf = Classifier(load_metadata(model_copy.metadata_path), "float")
    img = model_copy.images[0]
    x = ((img.astype(np.float32) - 127.0) / 128.0)[None]
    raw.set_tensor(raw.get_input_details()[0]["index"], x)
    raw.invoke()
    fine = softmax(raw.get_tensor(raw.get_output_details()[0]["index"])[0], clf.temperature)
    p = clf.predict(img).as_dict()
    assert p["melanoma"] == pytest.approx(fine[0], abs=1e-5)
    assert p["other"] == pytest.approx(fine[6], abs=1e-5)
    assert p["acne"] == pytest.approx(fine[1], abs=1e-5)


@pytest.mark.parametrize(
    ("outputs", "other", "message"),
    [
        (_fine_names(), ["mole"], "other_outputs names mole, which 'outputs' does not list"),
        (_fine_names(), ["nevus", "melanoma"], "a condition cannot be summed into other"),
        (_fine_names(), [], "output nevus is neither a condition nor listed in other_outputs"),
        ([*SIX[:-1], "nevus", "non_skin"], ["nevus", "non_skin"], "'outputs' lacks melanoma"),
        ([*SIX, "nevus", "nevus"], ["nevus"], "'outputs' names nevus more than once"),
    ],
)
def test_bad_outputs_metadata_is_one_clear_error(model_copy: TinyModel, outputs, other, message):
    model_copy.edit_metadata(outputs=outputs, other_outputs=other)
    with pytest.raises(ModelError, match=message.replace("(", r"\(")):
        load_metadata(model_copy.metadata_path)


def test_output_count_must_match_the_outputs_list(model_copy: TinyModel):
    model_copy.edit_metadata(
        outputs=[*SIX, "nevus", "non_skin"], other_outputs=["nevus", "non_skin"]
    )
    with pytest.raises(ModelError, match="does not match the 8 outputs"):
        Classifier(load_metadata(model_copy.metadata_path), "int8")


# --------------------------------------------------------------------------- tensor types


def test_float_model_in_the_int8_slot_is_refused(model_copy: TinyModel):
    """Same sha256 and size as listed, but the metadata says uint8 input and output."""
    data = model_copy.metadata()
    data["files"]["int8"]["path"] = model_copy.float_path.name
    data["files"]["int8"]["sha256"] = sha256_of(model_copy.float_path)
    data["files"]["int8"]["bytes"] = model_copy.float_path.stat().st_size
    del data["files"]["float"]
    model_copy.write_metadata(data)
    with pytest.raises(
        ModelError, match="float32 input but the metadata's 'int8' entry says uint8"
    ):
        Classifier(load_metadata(model_copy.metadata_path), "int8")


def test_explicit_dtypes_are_checked_too(model_copy: TinyModel):
    data = model_copy.metadata()
    data["files"]["int8"] |= {"input_dtype": "uint8", "output_dtype": "int8"}
    model_copy.write_metadata(data)
    with pytest.raises(ModelError, match="uint8 output but the metadata's 'int8' entry says int8"):
        Classifier(load_metadata(model_copy.metadata_path), "int8")


def test_unknown_quantization_text_needs_explicit_dtypes(model_copy: TinyModel):
    data = model_copy.metadata()
    data["files"]["int8"]["quantization"] = "something new"
    model_copy.write_metadata(data)
    with pytest.raises(ModelError, match="give input_dtype and output_dtype"):
        load_metadata(model_copy.metadata_path)


# --------------------------------------------------------------------------- soon tier


def _probs(mel: float, bcc: float = 0.0, top: str = "other") -> dict[str, float]:
    p = dict.fromkeys(CONDITIONS, 0.0)
    p["melanoma"], p["basal_cell_carcinoma"] = mel, bcc
    p[top] += 1.0 - mel - bcc
    return p


TIERS = Thresholds(abstain_below=0.4, urgent_at=0.3, soon_at=0.1)


@pytest.mark.parametrize(
    ("probs", "urgency", "reason"),
    [
        (_probs(0.2, 0.1), Urgency.URGENT, CANCER_NOT_RULED_OUT),  # sum 0.3 = urgent_at
        (_probs(0.15, 0.1), Urgency.SOON, CANCER_NOT_RULED_OUT),  # in [soon_at, urgent_at)
        (_probs(0.1), Urgency.SOON, CANCER_NOT_RULED_OUT),  # exactly soon_at
        (_probs(0.09), Urgency.NONE, CONDITION),  # below both: "other"
        (_probs(0.05, top="acne"), Urgency.ROUTINE, CONDITION),
    ],
)
def test_soon_tier(probs, urgency, reason):
    d = decide(probs, TIERS)
    assert (d.urgency, d.reason) == (urgency, reason)


def test_top1_melanoma_stays_urgent_below_urgent_at():
    tiers = Thresholds(abstain_below=0.2, urgent_at=0.5, soon_at=0.1)
    p = dict.fromkeys(CONDITIONS, 0.0) | {"melanoma": 0.29, "acne": 0.27, "eczema": 0.44}
    d = decide(p, tiers)
    assert d.label == "eczema" and (d.urgency, d.reason) == (Urgency.SOON, CANCER_NOT_RULED_OUT)
    p |= {"melanoma": 0.45, "eczema": 0.28}
    d = decide(p, tiers)
    assert d.label == "melanoma" and (d.urgency, d.reason) == (Urgency.URGENT, CONDITION)


def test_without_soon_at_the_old_rule_holds():
    old = Thresholds(abstain_below=0.4, urgent_at=0.3)
    assert old.soon_at is None
    assert decide(_probs(0.2), old).urgency is Urgency.NONE
    mixed = decide(_probs(0.2, top="acne") | {"acne": 0.35, "other": 0.45}, old)
    assert (mixed.abstained, mixed.urgency, mixed.reason) == (False, Urgency.NONE, CONDITION)
    p = dict.fromkeys(CONDITIONS, 1 / 7)
    d = decide(p, old)
    assert (d.abstained, d.urgency, d.reason) == (True, Urgency.SOON, UNSURE)


@pytest.mark.parametrize("soon_at", [0.0, 0.31, -0.1, True])
def test_soon_at_must_lie_in_0_urgent_at(soon_at):
    with pytest.raises(ValueError, match="soon_at"):
        Thresholds(abstain_below=0.4, urgent_at=0.3, soon_at=soon_at)


def test_soon_at_read_from_metadata(model_copy: TinyModel):
    model_copy.edit_metadata(thresholds={"abstain_below": 0.5, "urgent_at": 0.3, "soon_at": 0.12})
    assert load_metadata(model_copy.metadata_path).thresholds.soon_at == 0.12
    model_copy.edit_metadata(thresholds={"abstain_below": 0.5, "urgent_at": 0.3, "soon_at": 0.5})
    with pytest.raises(ModelError, match="soon_at"):
        load_metadata(model_copy.metadata_path)
