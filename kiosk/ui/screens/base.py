"""What every screen has: a name, the tab it belongs to, and the per-frame hooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from kiosk.ui.geometry import TAB_H

if TYPE_CHECKING:
    from kiosk.ui.app import App
    from kiosk.ui.canvas import Ui

MARGIN = 10  # design units around the screen's content


class Screen:
    name: ClassVar[str] = ""
    tab: ClassVar[str | None] = None  # the highlighted tab; None: a flow screen, no tab bar
    locks_when_idle: ClassVar[bool] = False  # return to Scan when left untouched (admin screens)

    def __init__(self, app: App) -> None:
        self.app = app

    def enter(self, **options: object) -> None:
        """Called each time the screen is shown."""

    def idle(self, untouched_s: float) -> None:
        """Called every frame before `update` with how long the screen has been on show without
        a touch (a screen that must not stay up unattended leaves or hides itself here)."""

    def update(self) -> None:
        """Called every frame before drawing (read the data the frame shows)."""

    def draw(self, ui: Ui) -> None:
        raise NotImplementedError

    def tap(self, pos: tuple[int, int]) -> None:
        """A tap that hit no button (window pixels)."""

    def content_height(self, ui: Ui) -> float:
        return ui.H - (TAB_H if self.tab is not None else 0)


def when(t: datetime | None) -> str:
    """A moment in the kiosk's local time, with digits only (no month names to translate)."""
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone().strftime("%Y-%m-%d %H:%M")
