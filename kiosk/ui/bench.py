"""The UI's cost per frame, for `kiosk bench`: the Scan screen drawn offscreen at 800×480.

Every frame gets a new camera picture (as at camera rate), so the preview is scaled each
time; the case store is a throwaway one in a temporary folder.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import pygame

from kiosk.cases.store import CaseStore
from kiosk.cases.sync_status import SyncStatus
from kiosk.config import KioskConfig
from kiosk.live.pipeline import Snapshot
from kiosk.ui import demo
from kiosk.ui.app import App, Services
from kiosk.ui.launch import quiet_audio

WARMUP = 10  # first frames fill the font and text caches


def ui_frame_ms(
    snapshot: Snapshot | None = None, frames: int = 120, size: tuple[int, int] = (800, 480)
) -> float:
    """Median milliseconds of `App.step` on the Scan screen (events, update, draw)."""
    quiet_audio()  # offscreen and silent: no sound device is probed
    pygame.init()
    snap = (
        snapshot
        if snapshot is not None and snapshot.frame is not None
        else demo.snapshot(demo.verdict_for("eczema", 0.8))
    )
    with tempfile.TemporaryDirectory(prefix="skinscan-bench-") as tmp:
        config = KioskConfig(data_dir=Path(tmp), kiosk_id="kiosk-bench")
        with CaseStore.open(config) as store:
            pipeline = demo.StaticPipeline(snap)
            services = Services(
                pipeline, store, lambda: SyncStatus.offline(), lambda: None, "bench"
            )
            app = App(services, config, pygame.Surface(size))
            try:
                for i in range(WARMUP + frames):
                    frame = replace(snap.frame, sequence=i + 1, image=snap.frame.image.copy())
                    pipeline.snap = replace(snap, frame=frame)
                    app.step()
            finally:
                app.tasks.close()
    return statistics.median(list(app.frame_ms)[WARMUP:])
