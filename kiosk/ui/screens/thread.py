"""One case's thread: its picture and results, the specialist's review, the messages, a reply.

Opening the thread marks the case's review and messages read. The reply is typed on the
on-screen keyboard and queued in the store; the sync sends it when the kiosk is online.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pygame

from kiosk.cases.case_code import case_code
from kiosk.cases.store import MAX_MESSAGE_CHARS
from kiosk.ui import theme
from kiosk.ui.keyboard import Keyboard
from kiosk.ui.pictures import fit_size
from kiosk.ui.screens.base import MARGIN, Screen, when
from kiosk.ui.text import LINE_PITCH

if TYPE_CHECKING:
    from kiosk.cases.store import Case, Message
    from kiosk.ui.canvas import Ui

log = logging.getLogger(__name__)

LEFT_W = 220
MAX_BUBBLE_LINES = 6


class ThreadScreen(Screen):
    name = "thread"
    tab = "inbox"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.case: Case | None = None
        self.messages: list[Message] = []
        self.offset = 0  # how many of the newest messages are scrolled out below
        self._thumb: pygame.Surface | None = None

    def enter(self, **options: object) -> None:
        case_id = str(options["case_id"])
        store = self.app.services.store
        store.mark_read(case_id)
        self.app.refresh_counts()
        self.case = store.get(case_id)
        self.messages = store.messages(case_id)
        self.offset = 0
        self._thumb = self._load_thumb(self.case)

    @staticmethod
    def _load_thumb(case: Case) -> pygame.Surface | None:
        if case.image_path is None:
            return None  # the retention rule removed the local copy after upload
        try:
            return pygame.image.load(str(case.image_path))
        except (pygame.error, OSError, FileNotFoundError) as e:
            log.warning("case picture unreadable: %s", type(e).__name__)
            return None

    def reply(self) -> None:
        assert self.case is not None
        case_id = self.case.case_id

        def send(text: str) -> None:
            self.app.close_keyboard()
            if not text.strip():
                return
            try:
                self.app.services.store.add_message(case_id, text)
            except ValueError as e:
                self.app.notify(self.app.strings.t("thread.failed", error=str(e)))
                return
            self.messages = self.app.services.store.messages(case_id)
            self.offset = 0
            self.app.refresh_counts()
            self.app.notify(self.app.strings.t("thread.sent"))

        self.app.open_keyboard(
            Keyboard(
                title=self.app.strings.t("thread.reply"),
                on_done=send,
                on_cancel=self.app.close_keyboard,
                max_len=MAX_MESSAGE_CHARS,
                language=self.app.strings.language,
            )
        )

    def draw(self, ui: Ui) -> None:
        case = self.case
        if case is None:
            self.app.go("inbox")
            return
        W = ui.W  # noqa: N806
        bottom = self.content_height(ui) - MARGIN
        ui.button(
            "back",
            ui.rect(MARGIN, MARGIN, 140, 54),
            ui.t("nav.back"),
            lambda: self.app.go("inbox"),
            icon="back",
        )
        title = ui.t("thread.title", code=case_code(case.case_id), when=when(case.created_at))
        if case.patient_ref:
            title += f"  ·  {case.patient_ref}"
        ui.text(
            title,
            ui.rect(MARGIN + 152, MARGIN, W - 2 * MARGIN - 152, 54),
            size=theme.HEAD,
            min_size=theme.SMALL,
            bold=True,
            valign="middle",
        )

        top = MARGIN + 62
        pic = ui.rect(MARGIN, top, LEFT_W, 150)
        ui.fill(pic, theme.OVERLAY_DARK, radius=6)
        if self._thumb is not None:
            size = fit_size((self._thumb.get_height(), self._thumb.get_width()), pic)
            rect = pygame.Rect((0, 0), size)
            rect.center = pic.center
            ui.surface.blit(pygame.transform.smoothscale(self._thumb, size), rect)
        result = case.on_device
        own = (
            ui.advice("abstained.title") if result.abstained else ui.strings.condition(result.label)
        )
        ui.text(
            ui.t("thread.on_device", title=own),
            ui.rect(MARGIN, top + 156, LEFT_W, bottom - top - 156 - 64),
            size=theme.SMALL,
        )
        ui.button(
            "reply",
            ui.rect(MARGIN, bottom - 58, LEFT_W, 58),
            ui.t("thread.reply"),
            self.reply,
            style="primary",
            icon="envelope",
        )

        x = 2 * MARGIN + LEFT_W
        w = W - x - MARGIN
        y = top
        if case.review is not None:
            box_h = 118
            ui.fill(ui.rect(x, y, w, box_h), theme.PANEL, radius=6)
            # A page, or a warning when it names a possible cancer: never a green tick.
            urgent = case.review.urgent
            ui.icon(
                "warning" if urgent else "review",
                ui.rect(x + 8, y + 8, 26, 26),
                theme.DANGER if urgent else theme.TEXT,
            )
            head = ui.t("thread.review", title=ui.strings.condition(case.review.label))
            ui.text(head, ui.rect(x + 40, y + 4, w - 48, 32), size=theme.SMALL, bold=True)
            ui.text(
                case.review.recommendation,
                ui.rect(x + 10, y + 38, w - 20, box_h - 42),
                size=theme.SMALL,
                min_size=theme.MIN,
            )
            y += box_h + 8
        self._draw_messages(ui, x, y, w, bottom)

    def _draw_messages(self, ui: Ui, x: float, top: float, w: float, bottom: float) -> None:
        if not self.messages:
            ui.text(
                ui.t("thread.none"), ui.rect(x, top, w, 34), size=theme.SMALL, color=theme.MUTED
            )
            return
        bubble_w = w * 0.8 - 64  # room for the scroll buttons at the end side
        pitch = LINE_PITCH * theme.SMALL
        shown: list[tuple[Message, float]] = []
        space = bottom - top
        newest = len(self.messages) - 1 - self.offset
        for message in reversed(self.messages[: newest + 1]):
            lines = len(ui.painter.wrap(message.body, ui.px(bubble_w - 20), ui.px(theme.SMALL)))
            h = 30 + min(lines, MAX_BUBBLE_LINES) * pitch + 8
            if shown and h > space:
                break
            shown.append((message, h))
            space -= h + 6
        y = top
        for message, h in reversed(shown):
            mine = message.outgoing
            bx = x + (w - 64 - bubble_w if mine else 0)  # mine on the end side
            ui.fill(ui.rect(bx, y, bubble_w, h), (220, 234, 250) if mine else theme.PANEL, radius=8)
            who = ui.t("thread.you") if mine else (message.author_name or ui.t("thread.specialist"))
            ui.text(
                f"{who} · {when(message.created_at)}",
                ui.rect(bx + 10, y + 2, bubble_w - 20, 28),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=theme.MUTED,
            )
            ui.text(
                message.body,
                ui.rect(bx + 10, y + 30, bubble_w - 20, h - 34),
                size=theme.SMALL,
                max_lines=MAX_BUBBLE_LINES,
                cut_ok=True,
            )
            y += h + 6
        older = newest + 1 - len(shown) > 0
        ui.button(
            "thread_up",
            ui.rect(x + w - 56, top, 56, 56),
            "",
            lambda: self._scroll(1),
            icon="up",
            enabled=older,
        )
        ui.button(
            "thread_down",
            ui.rect(x + w - 56, top + 62, 56, 56),
            "",
            lambda: self._scroll(-1),
            icon="down",
            enabled=self.offset > 0,
        )

    def _scroll(self, delta: int) -> None:
        self.offset = max(0, min(len(self.messages) - 1, self.offset + delta))
