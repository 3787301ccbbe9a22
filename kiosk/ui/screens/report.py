"""Report: the captured result with its urgency banner, advice and the screening-aid notice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.live.triage import advice_for, quality_hint
from kiosk.model.conditions import Urgency
from kiosk.ui import theme
from kiosk.ui.pictures import fit_size, to_surface
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.ui.canvas import Ui

LEFT_W = 250  # design units: picture, condition and confidence
BUTTONS_H = 66


class ReportScreen(Screen):
    name = "report"

    def __init__(self, app) -> None:
        super().__init__(app)
        self._thumb: pygame.Surface | None = None
        self._thumb_key: tuple[int, tuple[int, int]] | None = None

    def scan_again(self) -> None:
        self.app.services.pipeline.reset()
        self.app.go("scan")

    def draw(self, ui: Ui) -> None:
        capture = self.app.capture
        if capture is None or capture.verdict.decision is None:
            self.app.go("scan")
            return
        decision = capture.verdict.decision
        advice = advice_for(capture.verdict, ui.strings.language)
        urgency = Urgency(decision.urgency)
        style = theme.URGENCY_STYLES[urgency]
        urgent = urgency is Urgency.URGENT

        # The banner: colour, icon and words; an urgent one is taller and larger.
        banner_h = 92 if urgent else 70
        ui.fill(ui.rect(0, 0, ui.W, banner_h), style.background)
        icon_side = 52 if urgent else 40
        ui.icon(
            style.icon,
            ui.rect(MARGIN + 4, (banner_h - icon_side) / 2, icon_side, icon_side),
            style.text,
        )
        text_x = MARGIN + icon_side + 18
        ui.text(
            advice.urgency_banner,
            ui.rect(text_x, 6, ui.W - text_x - MARGIN, banner_h - 12),
            size=theme.TITLE if urgent else theme.HEAD,
            min_size=theme.SMALL,
            color=style.text,
            bold=True,
            valign="middle",
        )

        top = banner_h + MARGIN
        bottom = ui.H - BUTTONS_H - 2 * MARGIN
        self._draw_left(ui, capture, advice.title, top, bottom)
        self._draw_right(ui, capture, advice, top, bottom)

        y = ui.H - BUTTONS_H - MARGIN
        half = (ui.W - 3 * MARGIN) / 2
        ui.button(
            "scan_again",
            ui.rect(MARGIN, y, half, BUTTONS_H),
            ui.t("report.again"),
            self.scan_again,
            icon="camera",
        )
        ui.button(
            "save_case",
            ui.rect(2 * MARGIN + half, y, half, BUTTONS_H),
            ui.t("report.save"),
            lambda: self.app.go("save"),
            style="primary",
            icon="check",
        )

    def _draw_left(self, ui: Ui, capture, title: str, top: float, bottom: float) -> None:
        decision = capture.verdict.decision
        pic = ui.rect(MARGIN, top, LEFT_W, 150)
        ui.fill(pic, theme.OVERLAY_DARK, radius=6)
        size = fit_size(capture.image.shape, pic)
        key = (id(capture.image), size)
        if key != self._thumb_key:
            self._thumb, self._thumb_key = to_surface(capture.image, size), key
        rect = pygame.Rect((0, 0), size)
        rect.center = pic.center
        ui.surface.blit(self._thumb, rect)
        y = top + 158
        ui.text(
            title, ui.rect(MARGIN, y, LEFT_W, 82), size=theme.HEAD, min_size=theme.SMALL, bold=True
        )
        y += 86
        if not decision.abstained:
            ui.bar(ui.rect(MARGIN, y, LEFT_W, 20), decision.confidence, theme.PRIMARY)
            pct = ui.strings.percent(decision.confidence)
            ui.text(
                ui.t("report.confidence", pct=pct),
                ui.rect(MARGIN, y + 24, LEFT_W, bottom - y - 24),
                size=theme.SMALL,
            )

    def _draw_right(self, ui: Ui, capture, advice, top: float, bottom: float) -> None:
        x = 2 * MARGIN + LEFT_W + 6
        w = ui.W - x - MARGIN
        y = top
        for code in capture.hints:  # e.g. "attach the dermoscope": the result may be unreliable
            ui.icon("warning", ui.rect(x, y + 2, 26, 26), theme.DANGER)
            ui.text(
                quality_hint(code, ui.strings.language),
                ui.rect(x + 32, y, w - 32, 50),
                size=theme.SMALL,
                min_size=theme.MIN,
                bold=True,
            )
            y += 54
        notice_h = 108
        ui.text(
            advice.text,
            ui.rect(x, y, w, bottom - notice_h - 8 - y),
            size=theme.BODY,
            min_size=theme.MIN,
        )
        box = ui.rect(x, bottom - notice_h, w, notice_h)
        ui.fill(box, theme.SECONDARY, radius=6)
        ui.icon("info", ui.rect(x + 8, bottom - notice_h + 8, 26, 26), theme.TEXT)
        ui.text(
            advice.disclaimer,
            ui.rect(x + 42, bottom - notice_h + 4, w - 50, notice_h - 8),
            size=theme.SMALL,
            min_size=theme.MIN,
            color=theme.TEXT,
        )
