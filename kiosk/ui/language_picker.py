"""The language choice on the Scan screen: anyone may switch it, no PIN (a patient who reads
Arabic should not need the administrator to read the result). Each language is named in its
own script, so the choice is readable whatever language is on screen now."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.ui import theme
from kiosk.ui.i18n import Strings, ui_languages

if TYPE_CHECKING:
    from kiosk.ui.app import App
    from kiosk.ui.canvas import Ui

BUTTON_W, BUTTON_H = 168, 52  # the globe button over the preview's top corner


class LanguagePicker:
    def __init__(self, app: App) -> None:
        self.app = app
        self.open = False

    def toggle(self) -> None:
        self.open = not self.open

    def choose(self, code: str) -> None:
        self.app.set_language(code)
        self.open = False

    def draw_button(self, ui: Ui, x: float, y: float) -> None:
        """The globe and the current language's name (design units, start corner at x, y)."""
        ui.button(
            "language",
            ui.rect(x, y, BUTTON_W, BUTTON_H),
            ui.strings.name,
            self.toggle,
            icon="globe",
            size=theme.SMALL,
        )

    def draw(self, ui: Ui, x: float, y: float, w: float, h: float) -> None:
        """The choice, filling the given area (design units)."""
        ui.fill(ui.rect(x, y, w, h), theme.PANEL, radius=8)
        ui.fill(ui.rect(x, y, w, h), theme.LINE, radius=8, width=max(1, ui.px(1)))
        ui.icon("globe", ui.rect(x + 16, y + 16, 34, 34), theme.TEXT)
        ui.text(
            ui.t("language.choose"),
            ui.rect(x + 60, y + 12, w - 76, 42),
            size=theme.HEAD,
            bold=True,
            valign="middle",
        )
        languages = ui_languages()
        gap = 12
        top = y + 70
        row_h = min(72.0, (h - 70 - 16 - 68 - gap * len(languages)) / len(languages))
        for i, code in enumerate(languages):
            chosen = code == ui.strings.language
            ui.button(
                f"language:{code}",
                ui.rect(x + 16, top + i * (row_h + gap), w - 32, row_h),
                Strings.for_language(code).name,
                lambda code=code: self.choose(code),
                style="selected" if chosen else "secondary",
                icon="check" if chosen else None,
            )
        close = ui.rect(x + w - 16 - 200, y + h - 16 - 56, 200, 56)
        ui.button("language:close", pygame.Rect(close), ui.t("nav.close"), self.toggle)
