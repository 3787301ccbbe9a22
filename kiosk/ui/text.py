"""Text on screen: the font, Arabic shaping and ordering, wrapping, and fitting text in a box.

Arabic needs two steps SDL_ttf does not do on its own: joining letters into their contextual
forms (arabic-reshaper) and putting a line in visual order (python-bidi, which also keeps Latin
words and digits inside an Arabic line left-to-right). python-bidi's pure-Python
`bidi.algorithm.get_display` is used, not the Rust `bidi.get_display`: in python-bidi 0.6.12
only the former mirrors brackets (rule L4), without which "(ميلانوما)" shows as ")ميلانوما(".
Dates and times ("2026-11-02 14:05") are embedded left-to-right first: after Arabic letters
the bidi rules would otherwise read each group of digits as a separate Arabic number and show
02-11-2026. Both run per *line*: wrapping is done
here on the logical text, because wrapping the visual string (or SDL's `wraplength`) would put
the lines of a right-to-left paragraph in the wrong order.

Every text drawn goes through `TextPainter.draw`, which shrinks it until it fits its box (down to
a minimum size; past that it cuts the last line with "…") and returns a `TextRecord` of where
the ink really landed, so tests can check that no text spills out of its box or was cut.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import arabic_reshaper
import pygame
from bidi.algorithm import get_display

log = logging.getLogger(__name__)

# Noto Sans Arabic (OFL-1.1, PyPI fontpkg-noto-sans-arabic) has Arabic, Latin and the French
# accents in one face; the license ships in that package's folder next to the font file.
FONT_FAMILY = "Noto Sans Arabic"
ELLIPSIS = "…"
# Vertical rhythm, in multiples of the font size. The font's own line height is ~2.15× its size
# (room for Arabic marks), far looser than needed: lines are spaced by LINE_PITCH and each line's
# baseline sits BASELINE below its top; the ink checks in the tests hold these to the box.
LINE_PITCH = 1.55
BASELINE = 1.12
V = TypeVar("V")
_CACHE_LIMIT = 4000

_ARABIC_RANGES = (
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x08A0, 0x08FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
)


def font_path() -> Path | None:
    """The shipped font file; None (pygame's default font, no Arabic) if it is not installed."""
    try:
        import fontpkg

        return Path(fontpkg.path(FONT_FAMILY))
    except Exception as e:  # an install without the font package still shows Latin text
        log.warning("font %r not available (%s): Arabic will not render", FONT_FAMILY, e)
        return None


def has_arabic(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in _ARABIC_RANGES)


_NUMBER_GROUP = re.compile(r"\d+(?:[-:/.]\d+)+")
_LRE, _PDF = "\u202a", "\u202c"
# In visual order an alef that ends one letter group can sit just right of a lam that starts
# the next ("حالة" → ...ﻟﺎ...). SDL_ttf shapes with HarfBuzz, and Noto's lam-alef ligature
# rule then fuses the two into a broken glyph. A zero-width non-joiner between them stops it.
_LAM_THEN_ALEF = re.compile("([\ufedd-\ufee0])(?=[\ufe81-\ufe88\ufe8d\ufe8e])")
_ZWNJ = "\u200c"


@lru_cache(maxsize=4096)
def visual(text: str) -> str:
    """One line in the order it is drawn: shaped and reordered when it holds Arabic; the base
    direction follows the line's first strong character (Unicode rule P2)."""
    if not has_arabic(text):
        return text
    embedded = _NUMBER_GROUP.sub(lambda m: _LRE + m.group(0) + _PDF, text)
    ordered = get_display(arabic_reshaper.reshape(embedded))
    return _LAM_THEN_ALEF.sub(r"\1" + _ZWNJ, ordered)


@dataclass(frozen=True)
class TextRecord:
    """Where a text was asked to go and where its ink landed (screen pixels)."""

    text: str
    box: pygame.Rect
    ink: pygame.Rect | None  # None for blank text
    size: int  # the font size used after fitting
    truncated: bool  # cut with "…" because it did not fit even at the smallest size
    cut_ok: bool = False  # a one-line preview of longer data, where a cut is expected


@dataclass(frozen=True)
class _Fitted:
    lines: tuple[str, ...]  # visual order, one string per line
    size: int
    truncated: bool


class TextPainter:
    """Fonts by size, text fitted into boxes, rendered lines cached (the scan screen redraws
    the same texts 30 times a second)."""

    def __init__(self, path: Path | None = None, *, use_default: bool = False) -> None:
        self.path = None if use_default else (path or font_path())
        self._fonts: dict[tuple[int, bool], pygame.font.Font] = {}
        self._fits: dict[tuple[str, int, int, int, int, bool, int], _Fitted] = {}
        self._surfaces: dict[tuple[str, int, bool, tuple[int, ...]], pygame.Surface] = {}

    def font(self, size: int, bold: bool = False) -> pygame.font.Font:
        key = (size, bold)
        found = self._fonts.get(key)
        if found is None:
            found = pygame.font.Font(str(self.path) if self.path else None, size)
            found.bold = bold  # synthetic bold: the variable font's default instance is Regular
            self._fonts[key] = found
        return found

    def width(self, text: str, size: int, bold: bool = False) -> int:
        return self.font(size, bold).size(visual(text))[0]

    # ---- fitting --------------------------------------------------------------------------

    def fit(
        self,
        text: str,
        width: int,
        height: int,
        size: int,
        min_size: int,
        bold: bool = False,
        max_lines: int = 0,
    ) -> _Fitted:
        return _cached(
            self._fits,
            (text, width, height, size, min_size, bold, max_lines),
            lambda: self._fit(text, width, height, size, min_size, bold, max_lines),
        )

    def _fit(
        self,
        text: str,
        width: int,
        height: int,
        size: int,
        min_size: int,
        bold: bool,
        max_lines: int,
    ) -> _Fitted:
        size = max(size, 1)
        min_size = max(1, min(min_size, size))
        s = size
        while True:
            lines = self.wrap(text, width, s, bold)
            room = max(1, int((height - (BASELINE + 0.45 - LINE_PITCH) * s) // (LINE_PITCH * s)))
            if max_lines:
                room = min(room, max_lines)
            if len(lines) <= room:
                return _Fitted(tuple(visual(line) for line in lines), s, False)
            if s <= min_size:
                return self._cut(lines[:room], width, s, bold)
            s = max(min_size, int(s * 0.92))

    def _cut(self, lines: list[str], width: int, size: int, bold: bool) -> _Fitted:
        """The lines that fit, the last one ending in an ellipsis."""
        font = self.font(size, bold)
        last = lines[-1]
        while last and font.size(visual(last + ELLIPSIS))[0] > width:
            last = last[:-1].rstrip()
        return _Fitted(tuple(visual(x) for x in [*lines[:-1], last + ELLIPSIS]), size, True)

    def wrap(self, text: str, width: int, size: int, bold: bool = False) -> list[str]:
        """Greedy word wrap of the *logical* text; explicit newlines start new lines."""
        font = self.font(size, bold)

        def fits(s: str) -> bool:
            return font.size(visual(s))[0] <= width

        out: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split():
                candidate = f"{line} {word}" if line else word
                if fits(candidate):
                    line = candidate
                    continue
                if line:
                    out.append(line)
                line = word
                while not fits(line) and len(line) > 1:  # a word wider than the box: split it
                    cut = len(line) - 1
                    while cut > 1 and not fits(line[:cut]):
                        cut -= 1
                    out.append(line[:cut])
                    line = line[cut:]
            out.append(line)
        return out

    # ---- drawing --------------------------------------------------------------------------

    def line_surface(
        self, line: str, size: int, bold: bool, color: tuple[int, ...]
    ) -> pygame.Surface:
        return _cached(
            self._surfaces,
            (line, size, bold, color),
            lambda: self.font(size, bold).render(line, True, color),
        )

    def draw(
        self,
        surface: pygame.Surface,
        text: str,
        box: pygame.Rect,
        *,
        size: int,
        color: tuple[int, ...],
        min_size: int | None = None,
        bold: bool = False,
        align: str = "left",  # left | right | center (callers resolve start/end for RTL)
        valign: str = "top",  # top | middle
        max_lines: int = 0,
        cut_ok: bool = False,
    ) -> TextRecord:
        box = pygame.Rect(box)
        if not text.strip():
            return TextRecord(text, box, None, size, False, cut_ok)
        fitted = self.fit(text, box.width, box.height, size, min_size or size, bold, max_lines)
        s = fitted.size
        font = self.font(s, bold)
        pitch = round(LINE_PITCH * s)
        block = (len(fitted.lines) - 1) * pitch + round((BASELINE + 0.45) * s)
        top = box.top if valign == "top" else box.top + (box.height - block) // 2
        ink: pygame.Rect | None = None
        for i, line in enumerate(fitted.lines):
            rendered = self.line_surface(line, s, bold, color)
            w = rendered.get_width()
            if align == "right":
                x = box.right - w
            elif align == "center":
                x = box.left + (box.width - w) // 2
            else:
                x = box.left
            y = top + i * pitch + round(BASELINE * s) - font.get_ascent()
            surface.blit(rendered, (x, y))
            bounds = rendered.get_bounding_rect().move(x, y)
            if bounds.width and bounds.height:
                ink = bounds if ink is None else ink.union(bounds)
        return TextRecord(text, box, ink, s, fitted.truncated, cut_ok)


def _cached(cache: dict[Any, V], key: Any, make: Callable[[], V]) -> V:
    """`cache[key]`, made on first use; the cache starts over past _CACHE_LIMIT entries (the
    texts on screen change slowly, so a reset costs one frame of re-rendering)."""
    found = cache.get(key)
    if found is None:
        found = make()
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[key] = found
    return found
