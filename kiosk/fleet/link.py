"""What a long-running live command owes its supervisors: systemd's READY / WATCHDOG / STOPPING,
MQTT fleet status when configured, and a clean stop on SIGTERM (systemd's way of stopping).

    with FleetLink(config, pipeline) as fleet:
        ...  # call each of fleet.observers with every snapshot the consumer loop reads

SIGTERM only sets a flag; the next observer call raises KeyboardInterrupt, inside the consumer
loop, which already stops cleanly on Ctrl-C. Raising from the signal handler itself could land
anywhere (half-way through starting a thread) and leave the inference thread running while the
interpreter shuts down.

Neither link can stop the kiosk: a telemetry set-up error is one warning on stderr and the kiosk
runs without MQTT.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiosk.config import KioskConfig, resolve_kiosk_id
from kiosk.fleet.sdnotify import FrameWatchdog

if TYPE_CHECKING:
    from kiosk.cases.sync import SyncService
    from kiosk.fleet.live_bridge import LiveTelemetry
    from kiosk.fleet.mqtt import CommandHandler, Telemetry, TelemetryState
    from kiosk.live.pipeline import LivePipeline, Snapshot


class FleetLink:
    """`sync` (the in-process SyncService) adds queue, last sync and online to the state and
    answers `sync_now`; `reload_model` answers the command of that name."""

    def __init__(
        self,
        config: KioskConfig,
        pipeline: LivePipeline,
        sync: SyncService | None = None,
        reload_model: CommandHandler | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.sync = sync
        self.reload_model = reload_model
        self.watchdog = FrameWatchdog()
        self.telemetry: Telemetry | None = None
        self.live: LiveTelemetry | None = None
        self.observers: list[Callable[[Snapshot], None]] = [self._watch]
        self.stop_requested = threading.Event()
        self._old_sigterm: Any = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop_requested.set()

    def _watch(self, snapshot: Snapshot) -> None:
        if self.stop_requested.is_set():
            raise KeyboardInterrupt
        state = snapshot.source.state if snapshot.source is not None else None
        self.watchdog.frames(snapshot.frames_seen, state)

    def __enter__(self) -> FleetLink:
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        if self.config.mqtt.enabled:
            self._start_telemetry()
        return self

    def _start_telemetry(self) -> None:
        from kiosk.cli.common import package_version
        from kiosk.fleet.live_bridge import LiveTelemetry
        from kiosk.fleet.mqtt import Telemetry, TelemetryError

        try:
            config = resolve_kiosk_id(self.config)
            telemetry = Telemetry(config, lambda: self._state(live))
        except (TelemetryError, OSError) as e:
            print(f"kiosk: warning: fleet telemetry off: {e}", file=sys.stderr, flush=True)
            return
        metadata = getattr(self.pipeline.classifier, "metadata", None)
        live = LiveTelemetry(
            self.pipeline,
            telemetry,
            model_version=getattr(metadata, "version", None),
            app_version=package_version(),
        )
        if self.sync is not None:
            sync = self.sync
            telemetry.on_command("sync_now", lambda: ask_for_sync(sync))
        if self.reload_model is not None:
            telemetry.on_command("reload_model", self.reload_model)
        self.telemetry, self.live = telemetry.start(), live
        self.observers.append(live.observe)

    def _state(self, live: LiveTelemetry) -> TelemetryState:
        state = live.state()
        if self.sync is None:
            return state
        return with_sync_status(state, self.sync)

    def __exit__(self, *exc: object) -> None:
        self.watchdog.stopping()
        if self.telemetry is not None:
            self.telemetry.stop()
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)


def ask_for_sync(sync: SyncService) -> str:
    sync.request_sync()
    return "sync requested"


def with_sync_status(state: TelemetryState, sync: SyncService) -> TelemetryState:
    """The state with what the sync service knows (queue, last sync, online, its error)."""
    from dataclasses import replace

    status = sync.status()
    errors = state.errors + ((status.last_error,) if status.last_error else ())
    return replace(
        state,
        queue_depth=status.pending,
        last_sync=status.last_sync,
        online=status.online,
        errors=errors,
        unverified_items=status.unverified_items,
        model_rejected=status.model_rejected,
    )
