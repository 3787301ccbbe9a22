"""The on-screen keyboard: a full-screen overlay with big keys (≥ 60 units; gloves).

Latin letters follow the language's usual layout (QWERTY, or AZERTY with the French accents),
and an Arabic page is one key away. `allowed` filters what may be typed (the patient
reference takes letters, digits, spaces and '-' only); keys it refuses are shown disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.ui import theme
from kiosk.ui.canvas import Ui

DIGITS_ROW = "1234567890-.,?"
LATIN_ROWS: dict[str, tuple[str, ...]] = {
    "en": ("qwertyuiop", "asdfghjkl'", "zxcvbnm"),
    "fr": ("azertyuiop", "qsdfghjklm", "wxcvbnéèàç"),
}
ARABIC_ROWS: tuple[str, ...] = ("ضصثقفغعهخحجد", "شسيبلاتنمكط", "ذئءؤرىةوزظ")
MARGIN = 8
GAP = 6


@dataclass
class Keyboard:
    title: str
    on_done: Callable[[str], None]
    on_cancel: Callable[[], None]
    text: str = ""
    max_len: int = 200
    allowed: Callable[[str], bool] = field(default=lambda ch: True)
    language: str = "en"
    page: str = ""  # "latin" or "arabic"; empty: the language's own script
    shift: bool = False

    def __post_init__(self) -> None:
        if not self.page:
            self.page = "arabic" if self.language == "ar" else "latin"

    # ---- editing --------------------------------------------------------------------------

    def type(self, ch: str) -> None:
        if self.shift:
            ch = ch.upper()
            self.shift = False
        if len(self.text) < self.max_len and self.allowed(ch):
            self.text += ch

    def backspace(self) -> None:
        self.text = self.text[:-1]

    def toggle_page(self) -> None:
        self.page = "latin" if self.page == "arabic" else "arabic"

    def rows(self) -> tuple[str, ...]:
        if self.page == "arabic":
            return ARABIC_ROWS
        return LATIN_ROWS.get(self.language, LATIN_ROWS["en"])

    # ---- drawing --------------------------------------------------------------------------

    def draw(self, ui: Ui) -> None:
        W, H = ui.W, ui.H  # noqa: N806 - design units
        ui.surface.fill(theme.BACKGROUND)
        ui.text(
            self.title, ui.rect(MARGIN, 4, W - 2 * MARGIN, 34), size=theme.SMALL, color=theme.MUTED
        )
        field_rect = ui.rect(MARGIN, 40, W - 2 * MARGIN, 70)
        ui.fill(field_rect, theme.PANEL, radius=6)
        ui.fill(field_rect, theme.PRIMARY, radius=6, width=ui.px(2))
        shown = self.text if len(self.text) <= 90 else "…" + self.text[-89:]
        ui.text(
            shown + "|",
            field_rect.inflate(-ui.px(16), -ui.px(6)),
            size=theme.BODY,
            min_size=theme.MIN,
            valign="middle",
            max_lines=2,
        )
        top, bottom = 118, H - MARGIN
        row_h = (bottom - top - 4 * GAP) / 5
        rows = (DIGITS_ROW, *self.rows())
        for i, row in enumerate(rows):
            y = top + i * (row_h + GAP)
            # The last letter row ends with backspace, one and a half keys wide.
            extra = 1.5 if i == len(rows) - 1 else 0.0
            n = len(row) + extra
            key_w = min(76.0, (W - 2 * MARGIN - GAP * (len(row) + (1 if extra else 0) - 1)) / n)
            used = key_w * n + GAP * (len(row) + (1 if extra else 0) - 1)
            x = (W - used) / 2
            for ch in row:
                label = ch.upper() if self.shift else ch
                ui.button(
                    f"key:{ch}",
                    ui.rect(x, y, key_w, row_h, mirror=False),
                    label,
                    lambda ch=ch: self.type(ch),
                    style="key",
                    enabled=self.allowed(ch) and len(self.text) < self.max_len,
                    size=theme.HEAD,
                )
                x += key_w + GAP
            if extra:
                ui.button(
                    "key:backspace",
                    ui.rect(x, y, key_w * extra, row_h, mirror=False),
                    "",
                    self.backspace,
                    icon="backspace",
                    enabled=bool(self.text),
                )
        self._bottom_row(ui, top + 4 * (row_h + GAP), row_h)

    def _bottom_row(self, ui: Ui, y: float, h: float) -> None:
        W = ui.W  # noqa: N806
        x = MARGIN
        widths = {"cancel": 140.0, "page": 96.0, "shift": 96.0, "done": 150.0}
        ui.button(
            "key:cancel",
            ui.rect(x, y, widths["cancel"], h, mirror=False),
            ui.t("keyboard.cancel"),
            self.on_cancel,
        )
        x += widths["cancel"] + GAP
        page_label = ui.t("keyboard.letters" if self.page == "arabic" else "keyboard.arabic")
        ui.button(
            "key:page", ui.rect(x, y, widths["page"], h, mirror=False), page_label, self.toggle_page
        )
        x += widths["page"] + GAP
        if self.page == "latin":
            ui.button(
                "key:shift",
                ui.rect(x, y, widths["shift"], h, mirror=False),
                ui.t("keyboard.shift"),
                lambda: setattr(self, "shift", not self.shift),
                style="selected" if self.shift else "secondary",
                size=theme.SMALL,
            )
        x += widths["shift"] + GAP
        space_w = W - MARGIN - widths["done"] - GAP - x
        ui.button(
            "key:space",
            ui.rect(x, y, space_w, h, mirror=False),
            ui.t("keyboard.space"),
            lambda: self.type(" "),
            enabled=self.allowed(" ") and len(self.text) < self.max_len,
        )
        ui.button(
            "key:done",
            ui.rect(W - MARGIN - widths["done"], y, widths["done"], h, mirror=False),
            ui.t("keyboard.done"),
            lambda: self.on_done(self.text),
            style="primary",
            icon="check",
        )
