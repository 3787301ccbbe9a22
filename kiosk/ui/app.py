"""The kiosk app: screens, navigation, touch handling, one frame at a time.

`App.step(events)` handles the events, lets the current screen read its data and draws one
frame; `App.run()` is that in a loop at the screen's rate. The app never waits for the model,
the camera or the network: it reads the pipeline's latest snapshot (a lock and a copy),
reads the local SQLite store (milliseconds), and hands anything slower to `Tasks`.

Collaborators come in as `Services`, so tests and the screenshot renderer pass their own
(a fixed snapshot, a store in a temporary folder, a fixed sync status).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pygame

from kiosk.ui import theme
from kiosk.ui.canvas import Button, Ui
from kiosk.ui.capture import Capture
from kiosk.ui.geometry import TAB_H
from kiosk.ui.i18n import Strings
from kiosk.ui.keyboard import Keyboard
from kiosk.ui.pointer import DOWN, presses
from kiosk.ui.tasks import Tasks
from kiosk.ui.text import TextPainter
from kiosk.ui.watermark import draw_watermark

if TYPE_CHECKING:
    from kiosk.cases.store import CaseStore
    from kiosk.cases.sync_status import SyncStatus
    from kiosk.config import KioskConfig
    from kiosk.live.pipeline import Snapshot
    from kiosk.ui.screens.base import Screen

COUNTS_EVERY_S = 2.0  # badge counts (unread, waiting) are re-read this often
IDLE_LOCK_S = 90.0  # settings lock themselves after this long untouched
TOAST_S = 3.0
LANGUAGE_KEY = "ui.language"  # kept in the store's key-value table, so it survives restarts
CAMERA_KEY = "ui.camera"


class SnapshotSource(Protocol):
    """What the UI needs from the live pipeline (kiosk.live.pipeline.LivePipeline fits)."""

    def snapshot(self) -> Snapshot: ...

    def reset(self) -> None: ...


@dataclass
class Services:
    pipeline: SnapshotSource
    store: CaseStore
    sync_status: Callable[[], SyncStatus]
    request_sync: Callable[[], None]
    model_version: str
    # Rebuilds the camera (slow: it opens a device); run on the task thread. None: fixed camera.
    switch_camera: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Counts:
    unread: int = 0
    waiting: int = 0
    urgent: int = 0  # of the unread: reviews that name a possible cancer


class App:
    def __init__(
        self,
        services: Services,
        config: KioskConfig,
        surface: pygame.Surface,
        *,
        clock: Callable[[], float] = time.monotonic,
        painter: TextPainter | None = None,
    ) -> None:
        from kiosk.ui.screens import SCREENS

        self.services = services
        self.config = config
        self.surface = surface
        self.clock = clock
        self.painter = painter or TextPainter()
        self.tasks = Tasks()
        saved = services.store.get_value(LANGUAGE_KEY)
        self.strings = Strings.for_language(saved or config.language)
        self.camera = services.store.get_value(CAMERA_KEY) or config.camera
        self.screens: dict[str, Screen] = {cls.name: cls(self) for cls in SCREENS}
        self.screen: Screen = self.screens["scan"]
        self.modal: Keyboard | None = None
        self.capture: Capture | None = None
        self.running = True
        self.pressed: str | None = None
        self.last_ui: Ui | None = None
        self._toast: tuple[str, float] | None = None
        self._counts = Counts()
        self._counts_at: float | None = None
        self.last_input = clock()
        self.shown_at = clock()  # when the current screen was entered
        self.frame_ms: deque[float] = deque(maxlen=600)

    # ---- navigation and state -------------------------------------------------------------

    def go(self, name: str, **options: object) -> None:
        self.modal = None
        self.pressed = None
        self.screen = self.screens[name]
        self.shown_at = self.clock()
        self.screen.enter(**options)

    def open_keyboard(self, keyboard: Keyboard) -> None:
        self.modal = keyboard
        self.pressed = None

    def close_keyboard(self) -> None:
        self.modal = None
        self.pressed = None

    def notify(self, text: str) -> None:
        self._toast = (text, self.clock() + TOAST_S)

    def set_language(self, code: str) -> None:
        self.strings = Strings.for_language(code)
        self.services.store.set_value(LANGUAGE_KEY, self.strings.language)

    def set_camera(self, spec: str) -> None:
        self.camera = spec
        self.services.store.set_value(CAMERA_KEY, spec)
        switch = self.services.switch_camera
        if switch is not None:
            self.tasks.submit(lambda: switch(spec))

    def counts(self) -> Counts:
        """Badge counts, re-read every COUNTS_EVERY_S (the tab bar draws them every frame)."""
        now = self.clock()
        if self._counts_at is None or now - self._counts_at >= COUNTS_EVERY_S:
            self.refresh_counts()
        return self._counts

    def refresh_counts(self) -> None:
        store = self.services.store
        self._counts = Counts(
            unread=store.unread_count(),
            waiting=store.queue_depth(),
            urgent=store.unread_urgent_count(),
        )
        self._counts_at = self.clock()

    # ---- one frame ------------------------------------------------------------------------

    def step(self, events: Iterable[pygame.event.Event] = ()) -> bool:
        """Handle `events`, then draw one frame. Returns False once the app should exit."""
        started = time.perf_counter()
        self.tasks.poll()
        events = list(events)
        for e in events:
            if e.type == pygame.QUIT:
                self.running = False
        for press in presses(events, self.surface.get_size()):
            self.last_input = self.clock()
            self._handle(press.kind, press.pos)
        if self.screen.locks_when_idle and self.clock() - self.last_input > IDLE_LOCK_S:
            self.go("scan")
        # May leave the screen: the screen then on show reads its data before it is drawn.
        self.screen.idle(self.untouched_s())
        self.screen.update()
        self.draw()
        self.frame_ms.append((time.perf_counter() - started) * 1000)
        return self.running

    def untouched_s(self) -> float:
        """How long the current screen has been on show without a touch."""
        return self.clock() - max(self.last_input, self.shown_at)

    def draw(self) -> Ui:
        ui = Ui(self.surface, self.painter, self.strings, self.pressed)
        self.surface.fill(theme.BACKGROUND)
        if self.modal is not None:
            self.modal.draw(ui)
        else:
            self.screen.draw(ui)
            if self.screen.tab is not None:
                self._tab_bar(ui)
            self._draw_toast(ui)
        if self.demo_mode():
            draw_watermark(ui)
        self.last_ui = ui
        return ui

    def demo_mode(self) -> bool:
        """The demo clip is the camera, or the capture on screen came from it."""
        capture = self.capture
        if capture is not None and capture.demo and self.screen.name in ("report", "save"):
            return True
        return bool(getattr(self.services.pipeline.snapshot(), "demo", False))

    def _handle(self, kind: str, pos: tuple[int, int]) -> None:
        button = self.button_at(pos)
        if kind == DOWN:
            answers = button is not None and (button.enabled or button.refused is not None)
            self.pressed = button.name if answers else None
            return
        pressed, self.pressed = self.pressed, None
        if button is not None and button.name == pressed:
            # A press counts only if it is released on the same button; a greyed-out one
            # says why it is greyed out instead of doing nothing.
            if button.action is not None:
                button.action()
            elif button.refused is not None:
                button.refused()
        elif pressed is None and button is None and self.modal is None:
            self.screen.tap(pos)

    def button_at(self, pos: tuple[int, int]) -> Button | None:
        if self.last_ui is None:
            return None
        for button in reversed(self.last_ui.buttons):  # the last drawn is on top
            if button.rect.collidepoint(pos):
                return button
        return None

    def button(self, name: str) -> Button:
        """A button of the last frame by name (tests find where to tap)."""
        assert self.last_ui is not None, "no frame drawn yet"
        for button in self.last_ui.buttons:
            if button.name == name:
                return button
        raise KeyError(f"no button {name!r} on {self.screen.name}")

    def _tab_bar(self, ui: Ui) -> None:
        counts = self.counts()
        top = ui.H - TAB_H
        ui.fill(ui.rect(0, top, ui.W, TAB_H), theme.PANEL)
        ui.fill(ui.rect(0, top, ui.W, 1), theme.LINE)
        # An unread urgent review turns the Inbox tab red with a warning sign instead of the
        # envelope: the health worker sees it from any screen, and a patient sees no details.
        urgent = counts.urgent > 0
        tabs = (
            ("scan", "nav.scan", "camera", 0),
            ("cases", "nav.cases", "list", counts.waiting),
            ("inbox", "nav.inbox", "warning" if urgent else "envelope", counts.unread),
            ("settings", "nav.settings", "gear", 0),
        )
        gap = 6
        w = (ui.W - gap * (len(tabs) + 1)) / len(tabs)
        for i, (tab, key, icon, badge) in enumerate(tabs):
            ui.button(
                f"tab:{tab}",
                ui.rect(gap + i * (w + gap), top + 5, w, TAB_H - 10),
                ui.t(key),
                lambda tab=tab: self.open_tab(tab),
                style=self._tab_style(tab, urgent),
                icon=icon,
                badge=badge,
            )

    def _tab_style(self, tab: str, urgent_review: bool) -> str:
        if self.screen.tab == tab:
            return "selected"
        return "danger" if tab == "inbox" and urgent_review else "secondary"

    def open_tab(self, tab: str) -> None:
        target = {"scan": "scan", "cases": "queue", "inbox": "inbox", "settings": "pin"}[tab]
        if tab == "settings" and self.screen.tab == "settings":
            return  # already unlocked or entering the PIN: stay
        self.go(target)

    def _draw_toast(self, ui: Ui) -> None:
        if self._toast is None:
            return
        text, until = self._toast
        if self.clock() > until:
            self._toast = None
            return
        box = _toast_box(ui)
        ui.fill(box, theme.OVERLAY_DARK, radius=10)
        ui.text(
            text,
            box.inflate(-ui.px(20), -ui.px(6)),
            size=theme.BODY,
            color=(255, 255, 255),
            align="center",
            valign="middle",
        )

    # ---- running --------------------------------------------------------------------------

    def run(self, fps: float = 30.0, observe: Callable[[], None] | None = None) -> None:
        """Step and show frames until the app is asked to exit. `observe` runs once a frame
        (the systemd watchdog and telemetry read the pipeline there)."""
        timer = pygame.time.Clock()
        try:
            while self.running:
                self.step(pygame.event.get())
                pygame.display.flip()
                if observe is not None:
                    observe()
                timer.tick(fps)
        finally:
            self.tasks.close()

    def render_ms(self) -> float | None:
        """Median time of recent frames (events, screen update and drawing), milliseconds."""
        return statistics.median(self.frame_ms) if self.frame_ms else None


def _toast_box(ui: Ui) -> pygame.Rect:
    """Where a toast goes: above the tab bar, at the top or in the middle, whichever covers
    the fewest buttons of this frame, then the least text (a toast over "Sync now" hid the
    button it answered)."""
    w, h = 520, 58
    tops = (ui.H - TAB_H - h - 12, 12, (ui.H - TAB_H - h) / 2)
    boxes = [ui.rect(ui.W / 2 - w / 2, top, w, h) for top in tops]

    def covered(box: pygame.Rect) -> tuple[int, int]:
        buttons = sum(1 for b in ui.buttons if box.colliderect(b.rect))
        ink = [r.ink.clip(box) for r in ui.texts if r.ink is not None]
        return buttons, sum(c.width * c.height for c in ink)

    return min(boxes, key=covered)  # ties keep the first: above the tab bar
