"""`kiosk run`: the touchscreen kiosk, wired to the real camera, model, case store and sync.

The window is fullscreen when the config says so (on the Pi with no desktop SDL uses KMS/DRM).
The camera pipeline and the sync service run on their own threads; the UI only reads them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.errors import CameraError, ModelError, RuntimeUnavailableError

if TYPE_CHECKING:
    from kiosk.cases.store import CaseStore
    from kiosk.cases.sync import SyncService
    from kiosk.config import KioskConfig
    from kiosk.live.camera import ResilientSource
    from kiosk.live.frames import Frame
    from kiosk.live.pipeline import LivePipeline, Snapshot
    from kiosk.live.vision import GuideBox
    from kiosk.model.classifier import Classifier

log = logging.getLogger(__name__)

WINDOW = (800, 480)  # the official 7" touchscreen; a fullscreen window takes the display's size


def quiet_audio(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """The kiosk makes no sound: SDL gets its null audio driver (unless one is set), so it never
    probes ALSA, which prints a screen of errors on a Pi without a sound card."""
    environ.setdefault("SDL_AUDIODRIVER", "dummy")


@dataclass
class SwitchablePipeline:
    """The live pipeline behind a lock, so Settings can swap the camera while the UI reads.

    `build(spec)` makes a new, unstarted pipeline; `switch` runs on the UI's task thread
    because opening a camera takes seconds."""

    build: Callable[[str], LivePipeline]
    current: LivePipeline
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self.current.snapshot()

    def reset(self) -> None:
        with self._lock:
            self.current.reset()

    def crop_box(self, frame: Frame) -> tuple[int, int, int, int]:
        """What the model reads of `frame` (the scan screen marks it on the preview)."""
        with self._lock:
            return self.current.crop_box(frame)

    # What telemetry reads, always from the camera in use now (Settings may switch it).
    @property
    def classifier(self) -> Classifier:
        return self.current.classifier

    @property
    def source(self) -> ResilientSource:
        return self.current.source

    @property
    def guide(self) -> GuideBox:
        return self.current.guide

    @guide.setter
    def guide(self, value: GuideBox) -> None:
        self.current.guide = value

    def switch(self, spec: str) -> None:
        fresh = self.build(spec)  # raises CameraError for a bad spec: the old one stays
        fresh.guide = self.current.guide
        fresh.start()
        with self._lock:
            old, self.current = self.current, fresh
        old.stop()

    def stop(self) -> None:
        self.current.stop()


def _show_store_problem(config: KioskConfig, args: argparse.Namespace) -> int:
    import pygame

    from kiosk.ui.i18n import Strings
    from kiosk.ui.problem_screen import show_store_problem

    surface = open_display(config, args)
    try:
        return show_store_problem(surface, Strings.for_language(config.language))
    finally:
        pygame.quit()


def open_display(config: KioskConfig, args: argparse.Namespace):
    """The kiosk's window: fullscreen with no pointer on a touchscreen, else 800×480. Display
    and fonts only: the mixer is never started (nothing here plays a sound)."""
    import pygame

    quiet_audio()
    pygame.display.init()
    pygame.font.init()
    flags = pygame.FULLSCREEN if config.fullscreen and not getattr(args, "windowed", False) else 0
    surface = pygame.display.set_mode((0, 0) if flags else WINDOW, flags)
    pygame.display.set_caption("Skinscan")
    if flags:
        pygame.mouse.set_visible(False)  # a touchscreen: no pointer on top of the picture
    return surface


def run_ui(args: argparse.Namespace) -> int:
    import pygame

    from kiosk.cases.model_updates import active_metadata_path, open_active_classifier
    from kiosk.cases.store import CaseStore, CaseStoreError, StoreNeedsRecoveryError
    from kiosk.cli.common import default_lens
    from kiosk.config import ConfigError, load_config, resolve_kiosk_id
    from kiosk.live.camera import resilient_source
    from kiosk.live.pipeline import LivePipeline
    from kiosk.live.triage import Triage
    from kiosk.model.classifier import Classifier
    from kiosk.ui.app import CAMERA_KEY, App, Services

    try:
        config = resolve_kiosk_id(load_config(getattr(args, "config", None)))
        store = CaseStore.open(config)
        classifier, active = open_active_classifier(
            config, getattr(args, "model", None), num_threads=args.threads
        )
        log.info("model %s running (%s)", active.version, active.source)
    except StoreNeedsRecoveryError as e:
        # Not an exit: systemd would restart into the same error behind a blank screen.
        print(f"kiosk: error: {e}", file=sys.stderr)
        return _show_store_problem(config, args)
    except (ConfigError, ModelError, RuntimeUnavailableError, CaseStoreError) as e:
        print(f"kiosk: error: {e}", file=sys.stderr)
        return 2

    fps = getattr(args, "fps", None) or None  # 0 on the command line: as fast as it goes

    running = {"classifier": classifier}  # replaced when a model release is installed

    def build(spec: str) -> LivePipeline:
        source = resilient_source(spec, fps=fps)
        lens = getattr(args, "lens", None) or default_lens(spec)
        model = running["classifier"]
        return LivePipeline(source, model, Triage(model.thresholds), lens=lens)

    # A --source on the command line wins; else the camera chosen in Settings, else the config.
    spec = getattr(args, "source", None)
    if not spec or spec == "auto":
        spec = store.get_value(CAMERA_KEY) or config.camera
    try:
        pipeline = SwitchablePipeline(build, build(spec))
    except CameraError as e:
        print(f"kiosk: error: {e}", file=sys.stderr)
        return 2

    def take_new_model(metadata_path: Path) -> None:
        # Called on the sync thread after a verified release is installed: the camera keeps
        # running and the next frame uses the new model.
        try:
            fresh = Classifier.open(metadata_path, num_threads=args.threads)
        except (ModelError, RuntimeUnavailableError) as e:
            log.error("installed model does not load, keeping the running one: %s", e)
            return
        running["classifier"] = fresh
        pipeline.current.replace_classifier(fresh)
        services.model_version = fresh.metadata.version

    sync = _sync_service(config, store, take_new_model)

    surface = open_display(config, args)
    services = Services(
        pipeline=pipeline,
        store=store,
        sync_status=sync.status,
        request_sync=sync.request_sync,
        model_version=classifier.metadata.version,
        switch_camera=pipeline.switch,
    )
    app = App(services, config, surface)
    pipeline.current.start()
    sync.start()
    try:
        from kiosk.fleet.link import FleetLink

        # systemd (READY, WATCHDOG while frames flow) and MQTT, each a no-op when not set up.
        def reload_model() -> str:
            take_new_model(active_metadata_path(config))
            return f"model {services.model_version} running"

        # The switchable pipeline, not the current one: telemetry follows a camera switch.
        with FleetLink(config, pipeline, sync=sync, reload_model=reload_model) as fleet:  # type: ignore[arg-type]

            def observe() -> None:
                snapshot = pipeline.snapshot()
                for watch in fleet.observers:
                    watch(snapshot)

            app.run(observe=observe)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the fleet link
        pass
    finally:
        sync.stop()
        pipeline.stop()
        store.close()
        pygame.quit()
    return 0


def _sync_service(
    config: KioskConfig, store: CaseStore, on_model_installed: Callable[[Path], None]
) -> SyncService:
    from kiosk.cases.sync import SyncService
    from kiosk.cli.common import package_version

    return SyncService(
        config, store, on_model_installed=on_model_installed, app_version=package_version()
    )


def run_arguments(parser: argparse.ArgumentParser) -> None:
    from kiosk.cli.common import (
        add_config_argument,
        add_model_argument,
        add_source_arguments,
        add_threads_argument,
    )

    add_source_arguments(parser)
    parser.add_argument(
        "--lens",
        choices=("auto", "dermoscopic", "clinical", "off"),
        help="dermoscope lens: detect it (auto), say it is on or off, or never ask (off)",
    )
    parser.add_argument("--windowed", action="store_true", help="a window, not fullscreen")
    parser.add_argument(
        "--screenshots",
        metavar="DIR",
        help="save every screen in every language as PNG under DIR (made-up data) and exit",
    )
    add_model_argument(parser)
    add_threads_argument(parser)
    add_config_argument(parser)


def run_command(args: argparse.Namespace) -> int:
    if getattr(args, "screenshots", None):
        from kiosk.ui.render import render_all_screens

        shots = render_all_screens(Path(args.screenshots))
        print(f"{len(shots)} screens saved under {args.screenshots}", flush=True)
        return 0
    return run_ui(args)
