"""The live scan loop: camera → gate → model → triage, on two threads, never blocking the consumer.

Capture runs on its own thread inside `ResilientSource`, which keeps only the newest frame: when
the model is slower than the camera, stale frames are dropped, never queued, so the verdict
always describes what the camera sees now. Inference runs on a second thread, here. The
consumer (the touchscreen UI, or the headless printer of `kiosk scan`) reads
`LivePipeline.snapshot()` at its own pace and is never blocked by either.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.cases.provenance import Provenance
from kiosk.live.camera import ResilientSource, SourceStatus, source_kind
from kiosk.live.evidence import Evidence
from kiosk.live.frames import Frame
from kiosk.live.scene import SceneWatch
from kiosk.live.triage import Triage, Verdict
from kiosk.live.vision import (
    DermoscopeField,
    GuideBox,
    PictureKind,
    QualityReport,
    assess_quality,
    crop_rect,
    dermoscope_field,
    field_rect,
    to_model_input,
)
from kiosk.model.classifier import Classifier
from kiosk.model.conditions import DERMOSCOPIC_CONDITIONS

STAGES = ("wait", "crop", "gate", "lens", "preprocess", "invoke", "smoothing")

# How the pipeline learns whether the dermoscope lens is on: "auto" looks for its dark circular
# field in every frame, "dermoscopic" / "clinical" are set by the operator, "off" never asks
# (replayed clips, whose pictures are cropped inside the dermoscope's field).
LENS_MODES = ("auto", "dermoscopic", "clinical", "off")
# One crop rule for live frames and still pictures (issue 13). With the dermoscope (detected,
# or set by the operator) the model reads the dermoscope's field, framed as the training
# pictures are: the square inside its circle, or the centre square when no vignette shows.
# Without it (clinical) it reads the guide box the operator aims. "off" (replays, the demo
# clip: pictures already framed as training pictures are) takes the centre square, the rule
# `kiosk classify` documents for still files.
# A vignette seen this recently counts: a frame or two without it (a finger, glare) is not
# "the lens came off".
LENS_MEMORY_S = 1.0
# The lens cannot come off faster than this; looking every frame would cost ~1 ms of each.
LENS_CHECK_EVERY_S = 0.2
ATTACH_DERMOSCOPE = "attach_dermoscope"


class StageTimes:
    """Recent durations per pipeline stage, in milliseconds (thread-safe)."""

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=keep) for s in STAGES}
        self._frame: deque[float] = deque(maxlen=keep)

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples[stage].append(ms)

    def add_frame(self, ms: float) -> None:
        with self._lock:
            self._frame.append(ms)

    def medians(self) -> dict[str, float]:
        with self._lock:
            out = {s: statistics.median(v) for s, v in self._samples.items() if v}
            if self._frame:
                out["frame"] = statistics.median(self._frame)
            return out


@dataclass(frozen=True)
class Snapshot:
    """What a consumer shows: the verdict, the latest frame and the camera's state."""

    verdict: Verdict | None
    frame: Frame | None
    source: SourceStatus
    frames_seen: int  # frames the inference thread processed (gated or not)
    frames_gated: int  # of those, frames that passed the quality gate and reached the model
    picture_kind: PictureKind | None = None  # None when the lens mode is "off"
    hints: tuple[str, ...] = ()  # advice codes beyond the gate's, e.g. "attach_dermoscope"
    # The newest classified frame of the current scene with the verdict of that scene: what a
    # capture stores (None while the current scene has no classified frame).
    evidence: Evidence | None = None
    quality: QualityReport | None = None  # the gate's report on the latest frame
    source_kind: str = ""  # picamera2 | opencv | replay | demo (kiosk.live.camera.source_kind)

    @property
    def demo(self) -> bool:
        return self.source_kind == "demo"


@dataclass
class _Counters:
    seen: int = 0
    gated: int = 0
    dropped: int = 0  # frames the camera delivered that inference never saw (sequence gaps)
    last_sequence: int | None = None


class LivePipeline:
    def __init__(
        self,
        source: ResilientSource,
        classifier: Classifier,
        triage: Triage,
        guide: GuideBox | None = None,
        on_verdict: Callable[[Verdict, Frame], None] | None = None,
        lens: str = "auto",
    ) -> None:
        if lens not in LENS_MODES:
            raise ValueError(f"lens mode must be one of {LENS_MODES}, got {lens!r}")
        self.lens = lens
        self._dermoscope_seen_at: float | None = None
        self._lens_checked_at: float | None = None
        self._picture_kind: PictureKind | None = None
        self.source = source
        self.classifier = classifier
        self.triage = triage
        self.guide = guide or GuideBox()
        self.on_verdict = on_verdict
        self.times = StageTimes()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._verdict: Verdict | None = None
        self._frame: Frame | None = None
        self._counts = _Counters()
        self._thread: threading.Thread | None = None
        self._scene = SceneWatch()
        self._scene_key: tuple[object, ...] | None = None  # crop box and lens state
        self._field: tuple[int, int, int, int] | None = None  # dermoscope field, when seen
        self._evidence: Evidence | None = None
        self._quality: QualityReport | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> LivePipeline:
        self._stop.clear()
        self.source.open()
        self._thread = threading.Thread(target=self._inference_loop, name="inference", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.source.close()

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- reading ------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                verdict=self._verdict,
                frame=self._frame,
                source=self.source.status,
                frames_seen=self._counts.seen,
                frames_gated=self._counts.gated,
                picture_kind=self._picture_kind,
                hints=self._hints(self._verdict),
                evidence=self._evidence,
                quality=self._quality,
                source_kind=source_kind(getattr(self.source, "name", "") or ""),
            )

    def _hints(self, verdict: Verdict | None) -> tuple[str, ...]:
        """A lesion verdict on a picture taken without the dermoscope asks for the lens: those
        conditions were learned from dermoscopic pictures only."""
        if (
            verdict is not None
            and self._picture_kind == PictureKind.CLINICAL
            and verdict.label in DERMOSCOPIC_CONDITIONS
        ):
            return (ATTACH_DERMOSCOPE,)
        return ()

    def _update_picture_kind(self, frame: Frame) -> None:
        if self.lens in ("off", "clinical"):
            self._picture_kind = None if self.lens == "off" else PictureKind.CLINICAL
            return
        # "auto" and "dermoscopic" look for the field: auto to know whether the lens is on,
        # both to crop to it.
        due = (
            self._lens_checked_at is None
            or frame.timestamp - self._lens_checked_at >= LENS_CHECK_EVERY_S
        )
        if due:
            self._lens_checked_at = frame.timestamp
            found = dermoscope_field(frame.image)
            if found.detected:
                self._dermoscope_seen_at = frame.timestamp
                if self._field is None:  # kept while the lens stays on: a steady crop
                    self._field = field_rect(found, frame.image.shape[1], frame.image.shape[0])
        recent = (
            self._dermoscope_seen_at is not None
            and frame.timestamp - self._dermoscope_seen_at <= LENS_MEMORY_S
        )
        if not recent:
            self._field = None
        if self.lens == "dermoscopic":
            self._picture_kind = PictureKind.DERMOSCOPIC
        else:
            self._picture_kind = PictureKind.DERMOSCOPIC if recent else PictureKind.CLINICAL

    def crop_box(self, frame: Frame) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the part of `frame.image` the model reads (the crop rule above)."""
        h, w = frame.image.shape[:2]
        if self._picture_kind == PictureKind.CLINICAL:
            return self.guide.rect(w, h)
        if self._field is not None:
            return self._field
        return field_rect(_NO_FIELD, w, h)  # no vignette: the whole picture is field

    @property
    def dropped_frames(self) -> int:
        return self._counts.dropped

    def reset(self) -> None:
        """A new scan (new patient or new spot): forget the smoothed evidence."""
        with self._lock:
            self._new_scene()

    def _new_scene(self, restart_watch: bool = True) -> None:
        """Forget the smoothed evidence (the caller holds self._lock). `restart_watch=False`
        when the scene watch itself saw the cut: the cut frame is already its new anchor, and
        forgetting it would let a second cut right after the first go unseen."""
        self.triage.reset()
        if restart_watch:
            self._scene.restart()
        self._verdict = None
        self._evidence = None

    def replace_classifier(self, classifier: Classifier) -> None:
        """Take a newly installed model release without stopping the camera. The smoothing
        starts over: the old model's probabilities are not evidence for the new one."""
        with self._lock:
            self.classifier = classifier
            self.triage = Triage(classifier.thresholds, self.triage.config)
            self._new_scene()

    # ---- threads ------------------------------------------------------------------------

    def _inference_loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            frame = self.source.read(timeout=0.5)
            if frame is None:  # reconnecting or timed out: the source status says why
                continue
            self.times.add("wait", (time.perf_counter() - t0) * 1000)
            last = self._counts.last_sequence
            if last is not None and frame.sequence > last + 1:
                self._counts.dropped += frame.sequence - last - 1
            self._counts.last_sequence = frame.sequence
            self.process(frame)

    def process(self, frame: Frame) -> Verdict:
        """Crop, gate, classify and smooth one frame (the inference thread's work, callable
        alone). The averaging window restarts when the crop box or the lens state changes and
        when the scene changes (kiosk.live.scene), so a verdict never mixes two spots."""
        mark = time.perf_counter()
        start = mark

        def lap(stage: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            self.times.add(stage, (now - mark) * 1000)
            mark = now

        self._update_picture_kind(frame)
        lap("lens")
        box = self.crop_box(frame)
        crop = crop_rect(frame.image, box)
        lap("crop")
        classifier = self.classifier  # one model for the whole frame, even mid-swap
        image = to_model_input(crop, classifier.input_side)
        lap("preprocess")
        quality = assess_quality(image)  # judged on what the model reads: resolution-free
        lap("gate")
        key = (box, self._picture_kind, classifier)
        with self._lock:
            if key != self._scene_key:  # the guide box moved, the lens changed, a new model
                self._scene_key = key
                self._new_scene()
        if quality.ok:
            with self._lock:
                if self._scene.changed(image):
                    self._new_scene(restart_watch=False)
            prediction = classifier.predict(image)
            lap("invoke")
            with self._lock:
                if classifier is self.classifier:
                    verdict = self.triage.update(
                        prediction.probabilities, timestamp=frame.timestamp
                    )
                    evidence: Evidence | None = Evidence(
                        frame=frame,
                        crop_box=box,
                        model_input=image,
                        quality=quality,
                        verdict=verdict,
                        provenance=self._provenance(frame, box, quality, verdict, classifier),
                    )
                else:  # the model changed during this frame: its answer is not evidence
                    verdict = self.triage.skip(("model_changed",), timestamp=frame.timestamp)
                    evidence = None
            lap("smoothing")
        else:
            with self._lock:
                verdict = self.triage.skip(
                    tuple(str(i) for i in quality.issues), timestamp=frame.timestamp
                )
                # The evidence stays while the window does (a blurry frame or two mid-scan);
                # once the triage starts afresh, so does the evidence.
                evidence = self._evidence if self.triage.frames_in_window else None
        if quality.ok:  # the cost of a classified frame; a rejected one stops at the gate
            self.times.add_frame((time.perf_counter() - start) * 1000)
        with self._lock:
            self._verdict, self._frame = verdict, frame
            self._evidence, self._quality = evidence, quality
            self._counts.seen += 1
            if quality.ok:
                self._counts.gated += 1
        if self.on_verdict is not None:
            self.on_verdict(verdict, frame)
        return verdict

    def _provenance(
        self,
        frame: Frame,
        box: tuple[int, int, int, int],
        quality: QualityReport,
        verdict: Verdict,
        classifier: Classifier,
    ) -> Provenance:
        metadata = getattr(classifier, "metadata", None)
        return Provenance(
            source=source_kind(getattr(self.source, "name", "") or ""),
            lens=self.lens,
            picture_kind=str(self._picture_kind) if self._picture_kind is not None else "",
            quality=dict(quality.measures),
            reasons=tuple(str(i) for i in quality.issues),
            crop_box=box,
            frame_size=(int(frame.image.shape[1]), int(frame.image.shape[0])),
            frames_averaged=verdict.frames_used,
            model_version=str(getattr(metadata, "version", "") or ""),
        )


_NO_FIELD = DermoscopeField(detected=False, score=0.0, radius=1.0, dark_fraction=0.0)
