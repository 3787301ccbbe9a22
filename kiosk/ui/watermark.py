"""The DEMO watermark: while the demo clip runs, no screen can be mistaken for a patient's.

Drawn by the app over every screen (and the keyboard) after the screen itself: a large
translucent word across the middle, with what it means in a line under it, which no photograph
of the screen can crop away. It is translucent so the screen stays readable and usable
beneath, and it only draws: touches go through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.ui import theme
from kiosk.ui.text import visual

if TYPE_CHECKING:
    from kiosk.ui.canvas import Ui

WATERMARK_ALPHA = 80  # of 255
WATERMARK_ANGLE = 20.0  # degrees: a slanted word is not taken for part of the layout
WORD_SIZE = 110  # design units
NOTICE_SIZE = 28
MAX_WIDTH = 0.7  # of the screen's width, before the slant


def watermark_surface(ui: Ui) -> pygame.Surface:
    """The word and its notice, one above the other, slanted and translucent."""
    word = ui.painter.font(ui.px(WORD_SIZE), bold=True).render(
        visual(ui.t("demo.watermark")), True, theme.DANGER
    )
    notice = ui.painter.font(ui.px(NOTICE_SIZE), bold=True).render(
        visual(ui.t("demo.notice")), True, theme.DANGER
    )
    gap = ui.px(4)
    w = max(word.get_width(), notice.get_width())
    block = pygame.Surface((w, word.get_height() + gap + notice.get_height()), pygame.SRCALPHA)
    block.blit(word, ((w - word.get_width()) // 2, 0))
    block.blit(notice, ((w - notice.get_width()) // 2, word.get_height() + gap))
    # A long word (Arabic's is two) is shrunk to stay on the screen, slant included.
    room = MAX_WIDTH * ui.surface.get_width()
    if block.get_width() > room:
        scale = room / block.get_width()
        block = pygame.transform.smoothscale(
            block, (round(block.get_width() * scale), round(block.get_height() * scale))
        )
    block = pygame.transform.rotate(block, WATERMARK_ANGLE)
    # Per-pixel alpha and a surface alpha combine only through a copy scaled by hand.
    block.fill((255, 255, 255, WATERMARK_ALPHA), special_flags=pygame.BLEND_RGBA_MULT)
    return block


# Built once per language and window size: rendering, scaling and rotating it costs about 1 ms,
# which a Pi would otherwise pay on every frame of the demo.
_cache: dict[tuple[str, tuple[int, int]], pygame.Surface] = {}


def draw_watermark(ui: Ui) -> None:
    key = (ui.strings.language, ui.surface.get_size())
    mark = _cache.get(key)
    if mark is None:
        _cache.clear()  # one window, one language at a time
        mark = _cache[key] = watermark_surface(ui)
    ui.surface.blit(mark, mark.get_rect(center=ui.surface.get_rect().center))
