"""Inbox: specialists' reviews and messages, newest first; unread ones say "New", and unread
reviews that name a possible cancer say "Urgent" and come first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.cases.case_code import case_code
from kiosk.ui import theme
from kiosk.ui.screens.base import MARGIN, Screen, when

if TYPE_CHECKING:
    from kiosk.cases.store import InboxItem
    from kiosk.ui.canvas import Ui

ROW_H = 76
REFRESH_S = 2.0


class InboxScreen(Screen):
    name = "inbox"
    tab = "inbox"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.items: list[InboxItem] = []
        self.page = 0
        self._read_at: float | None = None

    def enter(self, **options: object) -> None:
        self._read_at = None

    def update(self) -> None:
        now = self.app.clock()
        if self._read_at is None or now - self._read_at >= REFRESH_S:
            self.items = self.app.services.store.inbox()
            self._read_at = now

    def open(self, case_id: str) -> None:
        self.app.go("thread", case_id=case_id)

    def draw(self, ui: Ui) -> None:
        W = ui.W  # noqa: N806
        bottom = self.content_height(ui) - MARGIN
        ui.text(
            ui.t("inbox.title"),
            ui.rect(MARGIN, MARGIN, W - 2 * MARGIN, 36),
            size=theme.HEAD,
            bold=True,
        )
        if not self.items:
            ui.text(
                ui.t("inbox.empty"),
                ui.rect(MARGIN, 60, W - 2 * MARGIN, 40),
                size=theme.BODY,
                color=theme.MUTED,
            )
            return
        top = MARGIN + 42
        per_page = max(1, int((bottom - top - 60) // (ROW_H + 6)))
        pages = (len(self.items) + per_page - 1) // per_page
        self.page = min(self.page, pages - 1)
        start = self.page * per_page
        y = top
        for i, item in enumerate(self.items[start : start + per_page], start):
            self._draw_item(ui, i, item, y)
            y += ROW_H + 6
        if pages > 1:
            half = 160
            ui.button(
                "older",
                ui.rect(W - MARGIN - half, bottom - 56, half, 56),
                "",
                lambda: self._turn(1),
                icon="down",
                enabled=self.page < pages - 1,
            )
            ui.button(
                "newer",
                ui.rect(MARGIN, bottom - 56, half, 56),
                "",
                lambda: self._turn(-1),
                icon="up",
                enabled=self.page > 0,
            )
            ui.text(
                f"{self.page + 1} / {pages}",
                ui.rect(MARGIN + half, bottom - 56, W - 2 * (MARGIN + half), 56),
                size=theme.BODY,
                align="center",
                valign="middle",
            )

    def _turn(self, delta: int) -> None:
        self.page = max(0, self.page + delta)

    def _draw_item(self, ui: Ui, index: int, item: InboxItem, y: float) -> None:
        W = ui.W  # noqa: N806
        x, w = MARGIN, W - 2 * MARGIN
        ui.button(
            f"item:{index}",
            ui.rect(x, y, w, ROW_H),
            "",
            lambda: self.open(item.case_id),
            style="key",
        )
        # The tag is as wide as the longer of its two words ("Nouveau" filled a fixed pill).
        words = (ui.t("inbox.urgent"), ui.t("inbox.new"))
        widest = max(ui.painter.width(t, ui.px(theme.SMALL), True) for t in words)
        tag_w = widest / ui.layout.scale + 20
        if not item.read:
            # An urgent review says so in words and colour (never colour alone).
            colour = theme.DANGER if item.urgent else theme.PRIMARY
            ui.fill(ui.rect(x, y, 8, ROW_H), colour, radius=3)
            ui.fill(ui.rect(x + 18, y + 8, tag_w, 28), colour, radius=6)
            ui.text(
                words[0] if item.urgent else words[1],
                ui.rect(x + 20, y + 9, tag_w - 4, 26),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=(255, 255, 255),
                bold=True,
                align="center",
                valign="middle",
            )
        head_x = x + 18 + tag_w + 10
        kind = ui.t("inbox.review" if item.kind == "review" else "inbox.message")
        if item.kind == "review" and item.case.review is not None:
            kind = f"{kind}: {ui.strings.condition(item.case.review.label)}"
        elif item.author_name:
            kind = f"{kind} · {item.author_name}"
        # A review's sign is a page, never a tick: a tick beside "possible melanoma" read as
        # an all-clear.
        ui.icon(
            "warning" if item.urgent else "review" if item.kind == "review" else "envelope",
            ui.rect(head_x, y + 8, 26, 26),
            theme.DANGER if item.urgent else theme.TEXT,
        )
        ui.text(
            kind,
            ui.rect(head_x + 34, y + 6, x + w * 0.62 - head_x - 38, 30),
            size=theme.SMALL,
            min_size=theme.MIN,
            bold=not item.read,
        )
        # The case by its code first (a time alone does not say which patient it was).
        stamp = f"{case_code(item.case_id)}  ·  {when(item.at)}"
        if item.case.patient_ref:
            stamp += f"  ·  {item.case.patient_ref}"
        ui.text(
            stamp,
            ui.rect(x + w * 0.62, y + 6, w * 0.38 - 12, 30),
            size=theme.SMALL,
            color=theme.MUTED,
            align="end",
        )
        ui.text(
            item.body,
            ui.rect(x + 18, y + 40, w - 30, 32),
            size=theme.SMALL,
            max_lines=1,
            color=theme.TEXT,
            cut_ok=True,
        )
