"""The report's picture on the whole screen: what the kiosk read, big enough to look at with the
patient. Opened by tapping the picture on the report; Close goes back to the report as it was."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pygame

from kiosk.ui import theme
from kiosk.ui.pictures import fit_size, to_surface
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.ui.canvas import Ui

BAR_H = 68  # design units: the title and Close along the top


class PictureScreen(Screen):
    name = "picture"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.image: np.ndarray | None = None
        self.back = "report"
        self._surface: pygame.Surface | None = None
        self._key: tuple[int, tuple[int, int]] | None = None

    def enter(self, **options: object) -> None:
        image = options.get("image")
        self.image = image if isinstance(image, np.ndarray) else None
        self.back = str(options.get("back", "report"))
        self._key = None

    def close(self) -> None:
        self.app.go(self.back)

    def draw(self, ui: Ui) -> None:
        if self.image is None:
            self.close()
            return
        ui.surface.fill(theme.OVERLAY_DARK)
        ui.text(
            ui.t("picture.title"),
            ui.rect(MARGIN, MARGIN, ui.W - 3 * MARGIN - 160, BAR_H - 2 * MARGIN),
            size=theme.BODY,
            min_size=theme.MIN,
            color=(255, 255, 255),
            valign="middle",
        )
        ui.button(
            "picture:close",
            ui.rect(ui.W - MARGIN - 160, MARGIN, 160, BAR_H - 2 * MARGIN),
            ui.t("nav.close"),
            self.close,
            icon="back",
        )
        area = ui.rect(MARGIN, BAR_H, ui.W - 2 * MARGIN, ui.H - BAR_H - MARGIN)
        size = fit_size(self.image.shape, area)
        key = (id(self.image), size)
        if key != self._key or self._surface is None:
            self._surface, self._key = to_surface(self.image, size), key
        rect = pygame.Rect((0, 0), size)
        rect.center = area.center
        ui.surface.blit(self._surface, rect)
        # The whole picture is a target too: tapping it again closes, as people expect.
        ui.hotspot("picture:image", rect, self.close)
