"""What is saved is what was classified: captures around a cut between two spots (issue 13).

A replay cuts from a melanoma to healthy skin and back. A capture is taken after every frame
around both cuts, the way the scan screen takes it (kiosk.ui.capture.capture_from on the
pipeline's snapshot), and saved the way the save screen saves it. Every saved case's label must
be what `kiosk classify` says of its stored picture: real shipped model, real pipeline, real
store, 100 of 100, in the replay lens mode (centre square) and in clinical mode (guide box).

The healthy-skin picture is a real one from the training data (../shared/data beside the
checkout, or $SKINSCAN_TRAINING_DATA); the test fails loudly without it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from kiosk.cases.store import CaseStore, OnDeviceResult
from kiosk.cli.classify import classify_one
from kiosk.live.frames import Frame
from kiosk.live.imaging import load_rgb
from kiosk.live.pipeline import LivePipeline
from kiosk.live.triage import Triage
from kiosk.model.classifier import Classifier
from kiosk.ui.capture import MIN_FRAMES, capture_from
from tests.live.test_live import NoSource

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SKINSCAN_TRAINING_DATA", REPO.parent / "shared" / "data"))
MELANOMA = REPO / "tests" / "data" / "samples" / "melanoma_ISIC_0024545.jpg"
HEALTHY = DATA / "skin_extra" / "healthy_skin" / "normal_Hand_0000002.jpg"
FRAME = (640, 480)  # a webcam's frame
SEGMENT = 60  # frames per spot: melanoma, healthy skin, melanoma
AROUND = 25  # captures on each side of each cut: 2 cuts x 50 = 100


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata()


def camera_picture(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, FRAME, interpolation=cv2.INTER_AREA)


def healthy_skin() -> np.ndarray:
    if not HEALTHY.is_file():
        raise FileNotFoundError(f"{HEALTHY} missing: the training data must be beside the checkout")
    hand = load_rgb(HEALTHY)
    h, w = hand.shape[:2]
    # The back of the hand, without the studio's white background around it.
    return hand[int(h * 0.3) : int(h * 0.7), int(w * 0.3) : int(w * 0.7)]


def replay(rng: np.random.Generator) -> list[Frame]:
    """melanoma | healthy skin | melanoma, each frame with its own sensor noise."""
    spots = [camera_picture(load_rgb(MELANOMA)), camera_picture(healthy_skin())]
    frames = []
    for n in range(3 * SEGMENT):
        base = spots[(n // SEGMENT) % 2].astype(np.float32)
        noisy = np.clip(base + rng.normal(0.0, 2.0, base.shape), 0, 255).astype(np.uint8)
        frames.append(Frame(noisy, timestamp=n / 15.0, sequence=n))
    return frames


@pytest.mark.parametrize("lens", ["off", "clinical"])
def test_every_capture_around_a_cut_stores_its_own_verdict(classifier, tmp_path, lens):
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", "kiosk-test")
    pipeline = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens=lens)
    pipeline.source.status = type("Live", (), {"state": "live"})()
    cuts = (SEGMENT, 2 * SEGMENT)
    capture_at = {c + k for c in cuts for k in range(-AROUND, AROUND)}
    saved = []
    waiting: list[int] = []  # presses not taken yet: the scene has no steady verdict yet
    for frame in replay(np.random.default_rng(0)):
        pipeline.process(frame)
        if frame.sequence in capture_at:
            waiting.append(frame.sequence)
        capture = capture_from(pipeline.snapshot()) if waiting else None
        if capture is None:
            continue
        for pressed in waiting:  # each waiting press is taken now, as the scan screen does
            assert frame.sequence - pressed <= MIN_FRAMES, "Capture waited too long"
            on_device = OnDeviceResult.from_decision(capture.verdict.decision, "shipped")
            case = store.save_case(capture.image, on_device, provenance=capture.provenance)
            saved.append((pressed, case))
        waiting = []
    assert len(saved) == 100 and not waiting
    labels = set()
    mismatches = []
    for at, case in saved:
        still = classify_one(classifier, str(case.image_path))
        labels.add(case.on_device.label)
        if still["label"] != case.on_device.label:
            mismatches.append((at, case.on_device.label, still["label"]))
        # The stored picture is the crop at camera resolution, not a thumbnail.
        assert case.provenance is not None
        _, _, w, h = case.provenance.crop_box
        assert cv2.imread(str(case.image_path)).shape[:2] == (h, w)
        assert case.provenance.frame_size == FRAME
    assert not mismatches, f"{len(mismatches)} of 100 saved another scene's verdict: {mismatches}"
    # Both spots were captured, and the melanoma as urgent: the test saw the cut both ways.
    assert labels == {"melanoma", "other"}, labels
    store.close()


def test_captures_from_the_running_threads_store_their_own_verdict(classifier, tmp_path):
    """The same, with the pipeline's own threads: a replay folder at camera pace, and a
    consumer that captures whenever it likes, as the touchscreen does."""
    from kiosk.live.camera import ReplaySource, ResilientSource

    folder = tmp_path / "replay"
    folder.mkdir()
    spots = [camera_picture(load_rgb(MELANOMA)), camera_picture(healthy_skin())]
    for n in range(80):  # cuts every 10 frames: many captures fall near one
        rgb = spots[(n // 10) % 2]
        cv2.imwrite(str(folder / f"{n:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    source = ResilientSource(lambda: ReplaySource(folder, fps=30), name="replay:cuts")
    store = CaseStore(tmp_path / "cases.sqlite3", tmp_path / "images", "kiosk-test")
    pipeline = LivePipeline(source, classifier, Triage(classifier.thresholds), lens="off")
    saved = []
    with pipeline:
        deadline = time.monotonic() + 60
        while len(saved) < 40 and time.monotonic() < deadline:
            time.sleep(0.023)  # not in step with the camera
            capture = capture_from(pipeline.snapshot())
            if capture is None:
                continue
            on_device = OnDeviceResult.from_decision(capture.verdict.decision, "shipped")
            saved.append(store.save_case(capture.image, on_device, provenance=capture.provenance))
    assert len(saved) == 40
    labels = [c.on_device.label for c in saved]
    assert {"melanoma", "other"} <= set(labels), labels
    for case in saved:
        assert classify_one(classifier, str(case.image_path))["label"] == case.on_device.label
        assert case.provenance.source == "replay"
    store.close()
