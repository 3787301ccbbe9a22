"""The live loop as seen by the fleet: TelemetryState from a LivePipeline, verdict counts as
events, and the camera command. Used by `kiosk scan`; `kiosk run` can use it the same way.

Counted per settled verdict: a label counts once when the verdict becomes stable on it, not once
per frame. Only class names and counts leave the kiosk.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from kiosk.fleet.mqtt import Telemetry, TelemetryState

if TYPE_CHECKING:
    from kiosk.live.pipeline import LivePipeline, Snapshot


class LiveTelemetry:
    def __init__(
        self,
        pipeline: LivePipeline,
        telemetry: Telemetry,
        *,
        model_version: str | None,
        app_version: str | None,
    ) -> None:
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.model_version = model_version
        self.app_version = app_version
        self.counts: Counter[str] = Counter()
        self._last_label: str | None = None
        self._fps_lock = threading.Lock()
        self._fps_mark: tuple[float, int] | None = None  # (time, frames_seen) at the last poll
        telemetry.on_command("restart_camera", self.restart_camera)

    def state(self) -> TelemetryState:
        """The state provider (called on the telemetry thread)."""
        snap = self.pipeline.snapshot()
        now = time.monotonic()
        with self._fps_lock:
            mark, self._fps_mark = self._fps_mark, (now, snap.frames_seen)
        fps = None
        if mark is not None and now > mark[0]:
            fps = (snap.frames_seen - mark[1]) / (now - mark[0])
        status = snap.source
        camera = status.state if status is not None else None
        errors = (status.message,) if status is not None and status.state != "live" else ()
        # The running model: a release installed since start-up replaces the classifier.
        metadata = getattr(self.pipeline.classifier, "metadata", None)
        return TelemetryState(
            app_version=self.app_version,
            model_version=getattr(metadata, "version", self.model_version),
            fps=fps,
            camera=camera,
            errors=errors,
        )

    def observe(self, snapshot: Snapshot) -> None:
        """Call from the consumer loop with each snapshot; publishes the counts when a verdict
        settles on a new label (cheap otherwise)."""
        v = snapshot.verdict
        label = v.label if v is not None and v.stable else None
        if label is not None and label != self._last_label:
            self.counts[label] += 1
            self.counts["total"] += 1
            self.telemetry.publish_event(dict(self.counts))
        self._last_label = label

    def restart_camera(self) -> str:
        """Close and reopen the camera (a stuck driver is the usual reason to ask)."""
        self.pipeline.source.close()
        self.pipeline.source.open()
        return "camera reopened"
