"""Report: the captured result with its urgency banner, advice and the screening-aid notice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.cases.case_code import case_code
from kiosk.live.triage import advice_for, quality_hint
from kiosk.model.conditions import Urgency
from kiosk.ui import theme
from kiosk.ui.pictures import fit_size, to_surface
from kiosk.ui.reasons import cancer_not_ruled_out, is_none_found
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
        self._shown: object = None  # the picture array on screen: the full-screen view shows it

    def scan_again(self) -> None:
        self.app.services.pipeline.reset()
        self.app.go("scan")

    def enlarge(self) -> None:
        self.app.go("picture", image=self._shown, back="report")

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
        # "Not sure" and not urgent: the banner says what the text says (retake, or show a
        # health worker), and Retake is the main action, not Save.
        unsure = decision.abstained and not urgent and not cancer_not_ruled_out(decision)
        banner = ui.t("report.unsure_banner") if unsure else advice.urgency_banner

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
            banner,
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
        start, end = (
            ui.rect(MARGIN, y, half, BUTTONS_H),
            ui.rect(2 * MARGIN + half, y, half, BUTTONS_H),
        )
        # The main action sits on the end side, in the primary colour.
        ui.button(
            "scan_again",
            end if unsure else start,
            ui.t("report.retake" if unsure else "report.again"),
            self.scan_again,
            style="primary" if unsure else "secondary",
            icon="camera",
        )
        ui.button(
            "save_case",
            start if unsure else end,
            ui.t("report.save"),
            lambda: self.app.go("save"),
            style="secondary" if unsure else "primary",
            icon="save",  # no tick: a tick beside "possible melanoma" read as an all-clear
        )

    def _draw_left(self, ui: Ui, capture, title: str, top: float, bottom: float) -> None:
        decision = capture.verdict.decision
        escalated = cancer_not_ruled_out(decision)
        pic_h = 118 if escalated else 150  # room for the reason under the label
        pic = ui.rect(MARGIN, top, LEFT_W, pic_h)
        size = fit_size(capture.image.shape, pic)  # on the page, not in black letterbox bars
        key = (id(capture.image), size)
        if key != self._thumb_key:
            self._thumb, self._thumb_key = to_surface(capture.image, size), key
        rect = pygame.Rect((0, 0), size)
        rect.center = pic.center
        ui.surface.blit(self._thumb, rect)
        self._shown = capture.image
        # The picture is a button: tapped, it fills the screen.
        ui.hotspot("picture", pic, self.enlarge)
        pygame.draw.rect(ui.surface, theme.LINE, rect, max(1, ui.px(1)))
        badge = pygame.Rect(0, 0, ui.px(34), ui.px(34))
        inset = ui.px(4)
        if ui.rtl:
            badge.bottomleft = (rect.left + inset, rect.bottom - inset)
        else:
            badge.bottomright = (rect.right - inset, rect.bottom - inset)
        ui.fill(badge, theme.OVERLAY_DARK, radius=6)
        ui.icon("zoom", badge.inflate(-ui.px(6), -ui.px(6)), (255, 255, 255))
        y = top + pic_h + 8
        record = ui.text(
            title,
            ui.rect(MARGIN, y, LEFT_W, 56 if escalated else 82),
            size=theme.HEAD,
            min_size=theme.SMALL,
            bold=True,
        )
        if escalated:
            # The urgency comes from the cancer probability, not this label: say so here,
            # next to the label, or the screen contradicts itself.
            y = (record.ink.bottom / ui.layout.scale if record.ink else y) + 4
            ui.icon("warning", ui.rect(MARGIN, y + 2, 24, 24), theme.DANGER)
            ui.text(
                ui.t("report.not_ruled_out"),
                ui.rect(MARGIN + 30, y, LEFT_W - 30, 50),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=theme.DANGER,
                bold=True,
            )
            y += 52
        else:
            y = (record.ink.bottom / ui.layout.scale if record.ink else y + 30) + 12
        if not decision.abstained and not is_none_found(decision):
            ui.bar(ui.rect(MARGIN, y, LEFT_W, 20), decision.confidence, theme.PRIMARY)
            pct = ui.strings.percent(decision.confidence)
            ui.text(
                ui.t("report.confidence", pct=pct),
                ui.rect(MARGIN, y + 24, LEFT_W, 30),
                size=theme.SMALL,
                min_size=theme.MIN,
            )
            y += 58
        # The code the health worker reads out and writes on the card, before saving too.
        ui.text(
            ui.t("report.case_code", code=case_code(capture.case_id)),
            ui.rect(MARGIN, min(y, bottom - 26), LEFT_W, 26),
            size=theme.SMALL,
            min_size=theme.MIN,
            color=theme.MUTED,
            bold=True,
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
