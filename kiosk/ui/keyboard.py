"""The on-screen keyboard: a full-screen overlay with big keys (≥ 60 units; gloves).

Latin letters follow the language's usual layout (QWERTY, or AZERTY with the French accents),
and an Arabic page is one key away. `allowed` filters what may be typed (the patient
reference takes letters, digits, spaces and '-' only); keys it refuses are shown disabled, and
a tap on one says why (`refusal`) instead of doing nothing. Shift works like caps lock: it stays
on until it is pressed again (one letter at a time gave references like "Cl-0412"); `upper`
types capitals only (references). Keys are at least 12 units apart: gloves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.ui import theme
from kiosk.ui.canvas import Ui

# At most 13 keys a row: with 12-unit gaps each key stays wider than a 48 px target.
DIGITS_ROW = "1234567890-.,"
LATIN_ROWS: dict[str, tuple[str, ...]] = {
    "en": ("qwertyuiop", "asdfghjkl'?", "zxcvbnm"),
    "fr": ("azertyuiop", "qsdfghjklm?", "wxcvbnéèàç"),
}
ARABIC_ROWS: tuple[str, ...] = ("ضصثقفغعهخحجد", "شسيبلاتنمكط؟", "ذئءؤرىةوزظ")
MARGIN = 8
GAP = 12


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
    shift: bool = False  # caps lock: stays on until pressed again
    upper: bool = False  # capitals only (patient references); no Shift key
    refusal: str = ""  # said when a refused key is tapped; empty: the keyboard's own words
    note: str = ""  # what the last refused tap said, shown until the next key

    def __post_init__(self) -> None:
        if not self.page:
            self.page = "arabic" if self.language == "ar" else "latin"

    # ---- editing --------------------------------------------------------------------------

    def type(self, ch: str) -> None:
        ch = self._cased(ch)
        if len(self.text) < self.max_len and self.allowed(ch):
            self.text += ch
            self.note = ""

    def _cased(self, ch: str) -> str:
        return ch.upper() if self.shift or self.upper else ch

    def toggle_shift(self) -> None:
        self.shift = not self.shift

    def refuse(self, ch: str, ui: Ui) -> None:
        """A tap on a greyed-out key: say why rather than nothing."""
        if len(self.text) >= self.max_len:
            self.note = ui.t("keyboard.full")
        else:
            self.note = self.refusal or ui.t("keyboard.not_allowed")

    def backspace(self) -> None:
        self.text = self.text[:-1]
        self.note = ""

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
            self.note or self.title,
            ui.rect(MARGIN, 6, W - 2 * MARGIN, 32),
            size=theme.SMALL,
            min_size=theme.MIN,
            valign="middle",
            color=theme.DANGER if self.note else theme.MUTED,
            bold=bool(self.note),
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
                ui.button(
                    f"key:{ch}",
                    ui.rect(x, y, key_w, row_h, mirror=False),
                    self._cased(ch),
                    lambda ch=ch: self.type(ch),
                    style="key",
                    enabled=self.allowed(self._cased(ch)) and len(self.text) < self.max_len,
                    size=theme.HEAD,
                    refused=lambda ch=ch: self.refuse(ch, ui),
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
        if self.page == "latin" and not self.upper:
            ui.button(
                "key:shift",
                ui.rect(x, y, widths["shift"], h, mirror=False),
                ui.t("keyboard.shift"),
                self.toggle_shift,
                style="selected" if self.shift else "secondary",
                size=theme.SMALL,
            )
        if not self.upper:  # capitals only: no Shift, a wider space bar
            x += widths["shift"] + GAP
        space_w = W - MARGIN - widths["done"] - GAP - x
        ui.button(
            "key:space",
            ui.rect(x, y, space_w, h, mirror=False),
            ui.t("keyboard.space"),
            lambda: self.type(" "),
            enabled=self.allowed(" ") and len(self.text) < self.max_len,
            refused=lambda: self.refuse(" ", ui),
        )
        ui.button(
            "key:done",
            ui.rect(W - MARGIN - widths["done"], y, widths["done"], h, mirror=False),
            ui.t("keyboard.done"),
            lambda: self.on_done(self.text),
            style="primary",
            icon="check",
        )
