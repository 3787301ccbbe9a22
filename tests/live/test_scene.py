"""The averaging window restarts at a new scene, a guide-box move and a lens change (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.live.camera import clip_segments
from kiosk.live.frames import Frame
from kiosk.live.imaging import square_resize
from kiosk.live.pipeline import LivePipeline
from kiosk.live.scene import SceneWatch
from kiosk.live.triage import Triage
from kiosk.model.classifier import Classifier
from tests.live.test_live import NoSource, clip_frames, with_vignette


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata()


def test_every_cut_of_the_demo_clip_and_nothing_else_is_a_new_scene():
    frames = clip_frames()
    segments = clip_segments()
    blurred = {i for s in segments for i in s.blurred}
    watch = SceneWatch()
    new = [
        i
        for i, f in enumerate(frames)
        if i not in blurred and watch.changed(square_resize(f.image, 224))
    ]
    assert new == [s.start for s in segments[1:]]


def test_a_hand_held_wobble_is_the_same_scene():
    rng = np.random.default_rng(1)
    base = square_resize(clip_frames()[125].image, 224).astype(np.float32)
    watch = SceneWatch()
    for _ in range(30):
        shift = rng.integers(-2, 3, 2)
        moved = np.roll(base, tuple(shift), axis=(0, 1)) * rng.uniform(0.98, 1.02)
        noisy = np.clip(moved + rng.normal(0, 2, moved.shape), 0, 255).astype(np.uint8)
        assert not watch.changed(noisy)


def frames_used(pipeline: LivePipeline) -> int:
    return pipeline.snapshot().evidence.verdict.frames_used


def test_the_window_restarts_when_the_box_moves_or_the_lens_changes(classifier):
    melanoma = clip_frames()[125]
    pipeline = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens="clinical")
    for n in range(5):
        pipeline.process(Frame(melanoma.image, n / 15, n))
    assert frames_used(pipeline) == 5
    pipeline.guide = pipeline.guide.at(0.45, 0.5)  # the operator tapped the preview
    pipeline.process(Frame(melanoma.image, 6 / 15, 6))
    assert frames_used(pipeline) == 1

    auto = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens="auto")
    lens_on = with_vignette(melanoma.image)  # the same spot through a clip-on dermoscope
    t = 0.0
    for n in range(4):
        auto.process(Frame(melanoma.image, t, n))
        t += 0.3  # past LENS_CHECK_EVERY_S: every frame is looked at for the lens
    assert str(auto.snapshot().picture_kind) == "clinical"
    assert frames_used(auto) == 4
    auto.process(Frame(lens_on, t, 4))  # the dermoscope clipped on: another crop, a new window
    assert str(auto.snapshot().picture_kind) == "dermoscopic"
    assert frames_used(auto) == 1


def test_a_second_cut_right_after_the_first_is_a_new_scene_too(classifier):
    """Spot A for a while, spot B for one frame, then spot C: C is not averaged with B (the
    frame that started B's scene is what C is compared with)."""
    segments = clip_segments()
    a, b, c = (clip_frames()[s.start + 3] for s in segments[:3])
    pipeline = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens="off")
    for n in range(5):
        pipeline.process(Frame(a.image, n / 15, n))
    pipeline.process(Frame(b.image, 5 / 15, 5))
    assert frames_used(pipeline) == 1
    pipeline.process(Frame(c.image, 6 / 15, 6))
    assert frames_used(pipeline) == 1
