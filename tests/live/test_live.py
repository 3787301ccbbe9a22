"""The live loop end to end: demo clip → gate → shipped model → triage, threads and CLI."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kiosk.errors import CameraError
from kiosk.live.camera import ReplaySource, ResilientSource, clip_segments, demo_clip_path
from kiosk.live.frames import Frame
from kiosk.live.pipeline import LivePipeline
from kiosk.live.triage import Triage
from kiosk.model.classifier import Classifier
from tests.kiosk_cli import run_kiosk as kiosk_process

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata()


def clip_frames() -> list[Frame]:
    source = ReplaySource(demo_clip_path(), fps=None, loop=False)
    source.open()
    frames = []
    try:
        while True:
            frames.append(source.read())
    except CameraError:  # EndOfStream
        pass
    finally:
        source.close()
    return frames


class NoSource:
    """The pipeline's `process` needs no camera; this satisfies the constructor."""

    status = None

    def open(self) -> None: ...

    def close(self) -> None: ...


# Demo segments the shipped model is not sure of (see the test below and models/MODEL_CARD.md).
UNSURE_SEGMENTS = ("actinic_keratosis",)


@pytest.mark.parametrize("segment", clip_segments(), ids=lambda s: s.label)
def test_each_demo_segment_settles_on_its_triage(classifier, segment):
    frames = clip_frames()[segment.start : segment.end]
    # As the kiosk replays the demo clip: lens "off", the centre square (framed as a still).
    pipeline = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens="off")
    verdicts = [pipeline.process(f) for f in frames]
    gated = [v for v in verdicts if not v.quality]
    assert len(gated) >= 10, "the quality gate rejected most of a sharp, well-lit clip"
    if segment.label in UNSURE_SEGMENTS:
        # Model v2 (2026.12.01) is unsure of this sample under the clip's zoom and pan (top-1
        # below the abstain threshold), so it never settles; what must hold is that it is never
        # an all-clear: a precancer with cancer mass is "soon" or "urgent", and its top-1 stays
        # its own class on most frames.
        assert not any(v.stable for v in gated)
        assert all(str(v.urgency) in ("soon", "urgent") for v in gated)
        assert sum(v.label == segment.label for v in gated) > len(gated) // 2
        return
    settled_at = next(i for i, v in enumerate(gated) if v.stable)
    assert settled_at < 10, f"verdict settled only after {settled_at + 1} gated frames"
    final = gated[-1]
    if segment.label in ("melanoma", "basal_cell_carcinoma"):
        assert str(final.urgency) == "urgent"
    else:
        assert final.label == segment.label
    # No flicker: once settled, the stable label does not change within the segment.
    stable_labels = {v.label for v in gated[settled_at:] if v.stable}
    assert len(stable_labels) == 1, stable_labels


def test_blurred_frames_are_rejected_with_a_reason(classifier):
    pipeline = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds))
    frames = clip_frames()
    blurred = [frames[i] for seg in clip_segments() for i in seg.blurred]
    assert blurred
    reasons = [pipeline.process(f).quality for f in blurred]
    assert sum("blurry" in r for r in reasons) >= len(blurred) // 2, reasons


class FlakyReplay:
    """A replay camera that dies after `fail_after` frames; reopening works again."""

    opened = 0

    def __init__(self, fail_after: int) -> None:
        self.inner = ReplaySource(demo_clip_path(), fps=60)
        self.fail_after = fail_after
        self.name = "flaky"
        self.count = 0

    def open(self) -> None:
        FlakyReplay.opened += 1
        self.inner.open()

    def read(self) -> Frame:
        self.count += 1
        if FlakyReplay.opened == 1 and self.count > self.fail_after:
            raise CameraError("camera unplugged")
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def test_camera_lost_mid_stream_recovers_and_nothing_crashes(classifier):
    FlakyReplay.opened = 0
    source = ResilientSource(
        lambda: FlakyReplay(fail_after=20), backoff_initial=0.2, backoff_max=1.0, name="flaky"
    )
    pipeline = LivePipeline(source, classifier, Triage(classifier.thresholds))
    states = []
    with pipeline:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            snap = pipeline.snapshot()
            states.append(snap.source.state)
            if FlakyReplay.opened >= 2 and snap.frames_seen > 40:
                break
            time.sleep(0.02)
    assert "reconnecting" in states
    assert states[-1] == "live"
    assert pipeline.snapshot().frames_seen > 40
    assert all(t.name != "inference" or not t.is_alive() for t in threading.enumerate())


def run_kiosk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return kiosk_process(*args, timeout=timeout)


def test_scan_headless_prints_verdict_changes_and_a_summary():
    # At the camera's pace (not --fps 0), so inference sees every segment of the clip even on
    # a loaded machine; 90 frames = 6 s = the first three samples.
    r = run_kiosk("scan", "--headless", "--source", "demo", "--fps", "15", "--frames", "90")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    summary = rows[-1]["summary"]
    changes = rows[:-1]
    assert summary["frames"] >= 90
    assert summary["gated"] > 0
    assert {"label", "confidence", "urgency", "abstained", "quality", "stable"} <= changes[
        -1
    ].keys()
    labels = {r["label"] for r in changes if r["stable"]}
    assert labels & {"acne", "actinic_keratosis", "basal_cell_carcinoma"}, labels
    for row in changes:
        assert row["urgency"] in (None, "urgent", "soon", "routine", "none")


def test_scan_with_a_bad_source_fails_clearly():
    r = run_kiosk("scan", "--headless", "--source", "replay:/nonexistent/clip.avi", "--frames", "1")
    assert r.returncode == 2
    assert "kiosk: error:" in r.stderr and "Traceback" not in r.stderr


def test_bench_reports_the_contract_keys():
    r = run_kiosk(
        "bench", "--json", "--frames", "60", "--invokes", "10", "--rounds", "2", timeout=300
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for key in (
        "frame_ms",
        "invoke_ms",
        "float_invoke_ms",
        "fps",
        "cold_start_s",
        "peak_rss_mb",
        "frame_predecoded_ms",
    ):
        assert isinstance(result[key], float) and result[key] > 0, key
    # Medians of interleaved rounds, each round's figures kept beside them.
    assert result["rounds"] == 2
    assert len(result["frame_ms_rounds"]) == len(result["invoke_ms_rounds"]) == 2
    lo, hi = sorted(result["invoke_ms_rounds"])
    assert lo <= result["invoke_ms"] <= hi
    assert np.isfinite(result["replay_share_of_gap"])
    assert {"crop", "gate", "preprocess", "invoke", "smoothing", "capture"} <= result[
        "stage_ms"
    ].keys()
    assert np.isfinite(result["frame_over_invoke"])


def with_vignette(image: np.ndarray) -> np.ndarray:
    """The frame as a 4:3 camera sees it through a clip-on dermoscope: the picture inside a
    circle inscribed in the frame's height, black around it."""
    h, w = image.shape[:2]
    frame = np.zeros((h, w * 4 // 3, 3), np.uint8)
    left = (frame.shape[1] - w) // 2
    frame[:, left : left + w] = image
    yy, xx = np.mgrid[:h, : frame.shape[1]]
    frame[np.hypot(yy - h / 2, xx - frame.shape[1] / 2) > 0.49 * h] = 0
    return frame


def melanoma_frames() -> list[Frame]:
    seg = next(s for s in clip_segments() if s.label == "melanoma")
    return [
        f for i, f in enumerate(clip_frames()) if seg.start <= i < seg.end and i not in seg.blurred
    ]


def run_lens(classifier, frames: list[Frame], lens: str):
    pipeline = LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens=lens)
    pipeline.source.status = None
    for f in frames:
        pipeline.process(f)
    return pipeline.snapshot()


def test_a_mole_without_the_dermoscope_asks_for_the_lens(classifier):
    snap = run_lens(classifier, melanoma_frames(), "auto")
    assert str(snap.picture_kind) == "clinical"
    assert snap.hints == ("attach_dermoscope",)


def test_the_dermoscope_vignette_is_recognised(classifier):
    frames = [Frame(with_vignette(f.image), f.timestamp, f.sequence) for f in melanoma_frames()]
    snap = run_lens(classifier, frames, "auto")
    assert str(snap.picture_kind) == "dermoscopic"
    assert snap.hints == ()


def test_lens_off_and_operator_modes(classifier):
    frames = melanoma_frames()
    assert run_lens(classifier, frames, "off").hints == ()
    assert run_lens(classifier, frames, "off").picture_kind is None
    assert run_lens(classifier, frames, "dermoscopic").hints == ()
    assert run_lens(classifier, frames, "clinical").hints == ("attach_dermoscope",)
    with pytest.raises(ValueError, match="lens mode"):
        LivePipeline(NoSource(), classifier, Triage(classifier.thresholds), lens="maybe")
