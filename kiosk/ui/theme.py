"""Colours and type sizes. High contrast on a light background: clinics are bright rooms."""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.model.conditions import Urgency

Color = tuple[int, int, int]

BACKGROUND: Color = (244, 245, 247)
PANEL: Color = (255, 255, 255)
TEXT: Color = (22, 26, 30)
MUTED: Color = (84, 92, 102)
LINE: Color = (200, 205, 212)
PRIMARY: Color = (0, 84, 166)
PRIMARY_TEXT: Color = (255, 255, 255)
SECONDARY: Color = (222, 227, 234)
DISABLED: Color = (205, 208, 213)
DISABLED_TEXT: Color = (120, 126, 134)
PRESSED: Color = (255, 214, 102)
DANGER: Color = (176, 18, 28)
OK: Color = (24, 120, 64)
WARN: Color = (214, 130, 0)
OVERLAY_DARK: Color = (16, 18, 22)
GUIDE: Color = (255, 255, 255)

# Type sizes in design units (scaled with the layout). The smallest text anywhere is MIN.
TITLE = 30
HEAD = 24
BODY = 20
BUTTON = 22
SMALL = 17
MIN = 15


@dataclass(frozen=True)
class UrgencyStyle:
    background: Color
    text: Color
    icon: str  # never colour alone: every urgency has its own icon and words


URGENCY_STYLES: dict[Urgency, UrgencyStyle] = {
    Urgency.URGENT: UrgencyStyle(DANGER, (255, 255, 255), "warning"),
    Urgency.SOON: UrgencyStyle((250, 178, 40), TEXT, "clock"),
    Urgency.ROUTINE: UrgencyStyle(OK, (255, 255, 255), "check"),
    Urgency.NONE: UrgencyStyle((64, 84, 104), (255, 255, 255), "info"),
}
