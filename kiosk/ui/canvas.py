"""The drawing context screens use each frame (an immediate-mode UI).

A screen's `draw(ui)` is called every frame and *declares* what is on screen: texts, icons and
buttons, in design units. Buttons are re-declared every frame with the action a tap runs, so
there is no widget tree to keep in sync with the data. What was drawn is recorded
(`ui.buttons`, `ui.texts`): the app hit-tests taps against the last frame's buttons, and the
tests check sizes and overflow on the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pygame

from kiosk.ui import theme
from kiosk.ui.geometry import Layout
from kiosk.ui.i18n import Strings
from kiosk.ui.icons import draw_icon
from kiosk.ui.text import TextPainter, TextRecord

Color = tuple[int, int, int]

STYLES: dict[str, tuple[Color, Color]] = {  # background, text
    "primary": (theme.PRIMARY, theme.PRIMARY_TEXT),
    "secondary": (theme.SECONDARY, theme.TEXT),
    "danger": (theme.DANGER, (255, 255, 255)),
    "selected": (theme.TEXT, (255, 255, 255)),
    "key": (theme.PANEL, theme.TEXT),
}
LABEL_PAD = 10  # design units between a button's side and its words
WIDE_BUTTON = 100  # design units: narrower keys hold one glyph and keep a padding of 8


@dataclass(frozen=True)
class Button:
    name: str  # stable id, for tests and the pressed highlight
    rect: pygame.Rect  # pixels
    label: str
    action: Callable[[], None] | None
    enabled: bool = True
    # A disabled button still answers a tap with this (e.g. says why it is greyed out).
    refused: Callable[[], None] | None = None


class Ui:
    def __init__(
        self,
        surface: pygame.Surface,
        painter: TextPainter,
        strings: Strings,
        pressed: str | None = None,
    ) -> None:
        self.surface = surface
        self.painter = painter
        self.strings = strings
        self.layout = Layout(surface.get_width(), surface.get_height(), strings.rtl)
        self.pressed = pressed
        self.buttons: list[Button] = []
        self.texts: list[TextRecord] = []

    # ---- shorthands -----------------------------------------------------------------------

    @property
    def rtl(self) -> bool:
        return self.layout.rtl

    @property
    def W(self) -> float:  # noqa: N802 - width in design units
        return self.layout.W

    @property
    def H(self) -> float:  # noqa: N802 - height in design units
        return self.layout.H

    def t(self, key: str, **values: object) -> str:
        return self.strings.t(key, **values)

    def advice(self, key: str) -> str:
        return self.strings.advice(key)

    def rect(self, x: float, y: float, w: float, h: float, mirror: bool = True) -> pygame.Rect:
        return self.layout.rect(x, y, w, h, mirror)

    def px(self, units: float) -> int:
        return self.layout.px(units)

    # ---- drawing --------------------------------------------------------------------------

    def fill(self, rect: pygame.Rect, color: Color, radius: float = 0, width: int = 0) -> None:
        pygame.draw.rect(
            self.surface, color, rect, width, border_radius=self.px(radius) if radius else 0
        )

    def text(
        self,
        text: str,
        rect: pygame.Rect,
        *,
        size: float = theme.BODY,
        color: Color = theme.TEXT,
        min_size: float | None = None,
        bold: bool = False,
        align: str = "start",  # start | end | center: start is the reading side
        valign: str = "top",
        max_lines: int = 0,
        cut_ok: bool = False,
    ) -> TextRecord:
        side = {"start": "right" if self.rtl else "left", "end": "left" if self.rtl else "right"}
        record = self.painter.draw(
            self.surface,
            text,
            rect,
            size=self.px(size),
            min_size=self.px(min_size if min_size is not None else max(theme.MIN, size * 0.75)),
            color=color,
            bold=bold,
            align=side.get(align, align),
            valign=valign,
            max_lines=max_lines,
            cut_ok=cut_ok,
        )
        self.texts.append(record)
        return record

    def icon(self, name: str, rect: pygame.Rect, color: Color = theme.TEXT) -> None:
        draw_icon(self.surface, name, rect, color, mirror=self.rtl)

    def bar(self, rect: pygame.Rect, fraction: float, color: Color) -> None:
        """A progress or confidence bar that fills from the reading side."""
        self.fill(rect, theme.SECONDARY, radius=4)
        w = round(rect.width * max(0.0, min(1.0, fraction)))
        if w:
            part = pygame.Rect(rect.right - w if self.rtl else rect.left, rect.top, w, rect.height)
            self.fill(part, color, radius=4)
        self.fill(rect, theme.LINE, radius=4, width=1)

    def button(
        self,
        name: str,
        rect: pygame.Rect,
        label: str,
        action: Callable[[], None] | None,
        *,
        style: str = "secondary",
        icon: str | None = None,
        enabled: bool = True,
        size: float = theme.BUTTON,
        badge: int = 0,
        refused: Callable[[], None] | None = None,
    ) -> Button:
        bg, fg = STYLES[style]
        if not enabled:
            bg, fg = theme.DISABLED, theme.DISABLED_TEXT
        elif self.pressed == name:
            bg, fg = theme.PRESSED, theme.TEXT
        self.fill(rect, bg, radius=8)
        if style in ("secondary", "key"):
            self.fill(rect, theme.LINE, radius=8, width=max(1, self.px(1)))
        pad = self.px(8)
        # Words keep a clear margin from the button's sides (they looked stuck to the edge);
        # a key too narrow for that keeps the old 8 (one glyph, centred).
        side_pad = self.px(LABEL_PAD) if rect.width >= self.px(WIDE_BUTTON) else pad
        inner = rect.inflate(-2 * side_pad, -pad)
        if badge and not icon:  # keep the words clear of the count's dot on the end side
            room = self.px(24)
            inner = pygame.Rect(
                inner.left + (room if self.rtl else 0), inner.top, inner.width - room, inner.height
            )
        if icon:
            side = min(inner.height, self.px(30))
            box = pygame.Rect(0, 0, side, side)
            box.center = inner.center
            if label:  # the icon on the reading side, the words after it
                overhang = self.px(6) if badge else 0  # the count's dot past the icon
                rest = inner.width - side - pad - overhang
                if self.rtl:
                    box.right = inner.right
                    inner = pygame.Rect(inner.left, inner.top, rest, inner.height)
                else:
                    box.left = inner.left
                    inner = pygame.Rect(box.right + pad + overhang, inner.top, rest, inner.height)
            self.icon(icon, box, fg)
        if label:
            self.text(label, inner, size=size, color=fg, align="center", valign="middle", bold=True)
        if badge and icon:
            # On the icon's corner, as phones do: the words keep their room ("Messages" with a
            # count shrank and ran into the dot in French).
            self._badge(box.inflate(self.px(26), self.px(14)), badge, small=True)
        elif badge:
            self._badge(rect, badge)
        button = Button(
            name, pygame.Rect(rect), label, action if enabled else None, enabled, refused
        )
        self.buttons.append(button)
        return button

    def hotspot(self, name: str, rect: pygame.Rect, action: Callable[[], None]) -> Button:
        """A tappable area drawn by the caller (a picture): a button with no face of its own."""
        button = Button(name, pygame.Rect(rect), "", action)
        self.buttons.append(button)
        return button

    def _badge(self, rect: pygame.Rect, count: int, small: bool = False) -> None:
        """A count in a red dot on the end corner of `rect` (the number is the signal)."""
        d = self.px(22 if small else 26)
        inset = 0 if small else self.px(3)
        dot = pygame.Rect(0, 0, d, d)
        dot.top = rect.top + inset
        if self.rtl:
            dot.left = rect.left + inset
        else:
            dot.right = rect.right - inset
        # A white ring keeps the dot visible on a red (urgent) button too.
        pygame.draw.ellipse(self.surface, (255, 255, 255), dot.inflate(self.px(4), self.px(4)))
        pygame.draw.ellipse(self.surface, theme.DANGER, dot)
        label = str(count) if count < 100 else "99+"
        self.text(
            label,
            dot,
            size=15,
            min_size=10,
            color=(255, 255, 255),
            align="center",
            valign="middle",
            bold=True,
        )
