"""Layout in design units: screens are laid out for 800×480 and scaled to the real window.

Screens place things in *units* of an 800×480 design; `Layout` turns them into pixels with one
scale factor (the smaller of the two ratios, so nothing leaves the screen), and `W`/`H` give the
window's size in units so wider screens use their extra room instead of letterboxing. In a
right-to-left language every rectangle is mirrored about the vertical centre line, so a layout
written once for English reads naturally in Arabic.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

DESIGN_W, DESIGN_H = 800, 480
TAB_H = 64  # the tab bar's height in design units (the app draws it, screens stop above it)
MIN_TARGET_PX = 48  # smallest touch target (about 9 mm on the 7" screen; gloves)


@dataclass(frozen=True)
class Layout:
    width: int  # window pixels
    height: int
    rtl: bool = False

    @property
    def scale(self) -> float:
        return min(self.width / DESIGN_W, self.height / DESIGN_H)

    @property
    def W(self) -> float:  # noqa: N802 - the window's width in design units
        return self.width / self.scale

    @property
    def H(self) -> float:  # noqa: N802 - the window's height in design units
        return self.height / self.scale

    def px(self, units: float) -> int:
        return max(1, round(units * self.scale))

    def rect(self, x: float, y: float, w: float, h: float, mirror: bool = True) -> pygame.Rect:
        """A rectangle given in units, left-to-right; mirrored when the language is RTL (unless
        `mirror` is False: a keyboard keeps its physical layout in every language)."""
        if self.rtl and mirror:
            x = self.W - x - w
        s = self.scale
        left, top = round(x * s), round(y * s)
        return pygame.Rect(left, top, round((x + w) * s) - left, round((y + h) * s) - top)

    def to_units(self, pos: tuple[float, float]) -> tuple[float, float]:
        """A pixel position in units, un-mirrored (the inverse of `rect` for a point)."""
        x, y = pos[0] / self.scale, pos[1] / self.scale
        return (self.W - x if self.rtl else x), y
