"""A full-screen notice for a problem the kiosk must not work around: the case records need
repair (kiosk.cases.store.StoreNeedsRecoveryError).

Scanning on would save new cases into a store that cannot show the old ones, and exiting would
make systemd restart the kiosk into the same error every few seconds with a blank screen. So the
touchscreen says what happened in the user's language — nothing was deleted, who can fix it and
how — and stays there, telling systemd it is alive (READY, then WATCHDOG) until it is stopped.
"""

from __future__ import annotations

import time

import pygame

from kiosk.fleet.sdnotify import Notifier
from kiosk.ui import theme
from kiosk.ui.i18n import Strings
from kiosk.ui.text import TextPainter

REPAIR_COMMAND = "kiosk cases recover"


def draw_store_problem(surface: pygame.Surface, strings: Strings, painter: TextPainter) -> list:
    """Draw the notice; returns the text records (the render tests check they fit)."""
    w, h = surface.get_size()
    scale = min(w / 800, h / 480)
    surface.fill(theme.BACKGROUND)
    pad = round(40 * scale)
    align = "right" if strings.rtl else "left"
    records = []
    band = pygame.Rect(0, 0, w, round(116 * scale))
    surface.fill(theme.DANGER, band)
    records.append(
        painter.draw(
            surface,
            strings.t("problem.store.title"),
            band.inflate(-2 * pad, -round(16 * scale)),
            size=round(28 * scale),
            min_size=round(20 * scale),
            color=theme.PRIMARY_TEXT,
            bold=True,
            align=align,
            valign="middle",
            max_lines=2,
        )
    )
    body = pygame.Rect(pad, band.bottom + pad // 2, w - 2 * pad, round(230 * scale))
    text = painter.draw(
        surface,
        strings.t("problem.store.body"),
        body,
        size=round(24 * scale),
        min_size=round(16 * scale),
        color=theme.TEXT,
        align=align,
    )
    records.append(text)
    top = (text.ink.bottom if text.ink else body.bottom) + pad // 2
    command = pygame.Rect(pad, top, w - 2 * pad, round(60 * scale))
    pygame.draw.rect(surface, theme.PANEL, command, border_radius=round(8 * scale))
    records.append(
        painter.draw(
            surface,
            REPAIR_COMMAND,
            command.inflate(-pad, 0),
            size=round(26 * scale),
            color=theme.TEXT,
            bold=True,
            align="center",
            valign="middle",
        )
    )
    return records


def show_store_problem(surface: pygame.Surface, strings: Strings) -> int:
    """Show the notice until the window closes or the process is stopped; returns 2."""
    notifier = Notifier()
    notifier.ready(status="case records need repair: run `kiosk cases recover`")
    painter = TextPainter()
    draw_store_problem(surface, strings, painter)
    pygame.display.flip()
    try:
        while True:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    return 2
            notifier.watchdog()
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into it
        return 2
    finally:
        notifier.stopping()
        notifier.close()
