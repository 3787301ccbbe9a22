"""Touch and mouse events as one stream of presses and releases, in window pixels.

A touchscreen makes SDL send each touch twice: as a finger event and as a synthesised mouse
event (flagged `touch`). Only one must count, or every tap would fire twice: finger events are
used, and mouse events are used only when they come from a real mouse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pygame

DOWN, UP = "down", "up"


@dataclass(frozen=True)
class Press:
    kind: str  # DOWN or UP
    pos: tuple[int, int]  # window pixels


def presses(events: Iterable[pygame.event.Event], size: tuple[int, int]) -> list[Press]:
    w, h = size
    out: list[Press] = []
    for e in events:
        if e.type in (pygame.FINGERDOWN, pygame.FINGERUP):
            # Finger positions are fractions of the window.
            pos = (min(w - 1, int(e.x * w)), min(h - 1, int(e.y * h)))
            out.append(Press(DOWN if e.type == pygame.FINGERDOWN else UP, pos))
        elif e.type in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            if getattr(e, "touch", False) or e.button != 1:
                continue
            out.append(Press(DOWN if e.type == pygame.MOUSEBUTTONDOWN else UP, tuple(e.pos)))
    return out
