"""One crop rule for live frames and still pictures (issue 13), on the six sample pictures.

With the lens off (replays) or the dermoscope set, a live frame of a picture is cropped as
`kiosk classify` crops the file (its centre square), so the verdicts agree; with the
dermoscope's vignette in the frame, the crop is the square inside the field; in clinical mode,
the guide box. In every mode the captured picture is what was classified: `kiosk classify` on
the stored crop gives the live label.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from kiosk.cli.classify import classify_one
from kiosk.live.frames import Frame
from kiosk.live.imaging import load_rgb
from kiosk.live.pipeline import LivePipeline
from kiosk.live.triage import Triage
from kiosk.live.vision import GuideBox, centre_square_rect
from kiosk.model.classifier import Classifier
from kiosk.ui.capture import capture_from
from tests.live.test_live import with_vignette

SAMPLES = sorted((Path(__file__).resolve().parents[1] / "data" / "samples").glob("*.jpg"))


class Replay:
    name = "replay:samples"

    class status:  # noqa: N801 - stands in for a SourceStatus
        state = "live"

    def open(self) -> None: ...

    def close(self) -> None: ...


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata()


def run(classifier, image, lens):
    pipeline = LivePipeline(Replay(), classifier, Triage(classifier.thresholds), lens=lens)
    for n in range(6):
        pipeline.process(Frame(image, timestamp=n / 15.0, sequence=n))
    return pipeline, capture_from(pipeline.snapshot())


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("lens", ["off", "dermoscopic", "auto", "clinical"])
def test_live_equals_still(classifier, tmp_path, path, lens):
    picture = load_rgb(path)
    h, w = picture.shape[:2]
    pipeline, capture = run(classifier, picture, lens)
    box = pipeline.crop_box(Frame(picture, 0.0, 0))
    if lens in ("off", "dermoscopic"):
        assert box == centre_square_rect(w, h)
        assert capture is not None, "no verdict for a sample picture cropped as a still"
        assert capture.verdict.label == classify_one(classifier, str(path))["label"]
    else:  # auto finds no vignette: a clinical photo, aimed with the guide box
        assert box == GuideBox().rect(w, h)
    if capture is None:  # the guide box of an upscaled 200×150 HAM picture can be soft
        assert pipeline.snapshot().quality.issues == ("blurry",)
        return
    assert capture.provenance.crop_box == box
    stored = tmp_path / "capture.png"  # lossless: the crop exactly as it would be kept
    cv2.imwrite(str(stored), cv2.cvtColor(capture.image, cv2.COLOR_RGB2BGR))
    assert classify_one(classifier, str(stored))["label"] == capture.verdict.label


@pytest.mark.parametrize("path", SAMPLES[1:], ids=lambda p: p.stem)  # the dermoscopic ones
def test_the_dermoscope_field_is_the_crop(classifier, tmp_path, path):
    frame = with_vignette(load_rgb(path))
    pipeline, capture = run(classifier, frame, "auto")
    assert str(pipeline.snapshot().picture_kind) == "dermoscopic"
    x, y, side, _ = pipeline.crop_box(Frame(frame, 0.0, 0))
    h, w = frame.shape[:2]
    radius = 0.49 * h  # with_vignette's circle
    # The square inside the circle (a little within it), centred: no vignette in the crop.
    assert 0.85 * radius * 2**0.5 <= side <= radius * 2**0.5
    assert abs(x + side / 2 - w / 2) <= 1 and abs(y + side / 2 - h / 2) <= 1
    crop = frame[y : y + side, x : x + side]
    assert (crop.max(axis=2) < 20).mean() < 0.01, "the dark vignette is in the crop"
    if capture is None:  # as above: a soft upscaled picture, zoomed in
        assert pipeline.snapshot().quality.issues == ("blurry",)
        return
    assert capture.provenance.crop_box == (x, y, side, side)
    stored = tmp_path / "capture.png"
    cv2.imwrite(str(stored), cv2.cvtColor(capture.image, cv2.COLOR_RGB2BGR))
    assert classify_one(classifier, str(stored))["label"] == capture.verdict.label
