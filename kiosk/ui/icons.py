"""Small vector icons drawn with pygame.draw: no image files, sharp at any scale.

They go beside words, never instead of them, so that a state is not told by colour alone.
Direction-bearing icons (back, send) are mirrored in right-to-left languages.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pygame

Color = tuple[int, int, int]


def _stroke(r: pygame.Rect) -> int:
    return max(2, round(min(r.width, r.height) / 9))


def _warning(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    pts = [(r.centerx, r.top + w), (r.right - w, r.bottom - w), (r.left + w, r.bottom - w)]
    pygame.draw.polygon(s, c, pts, w)
    x = r.centerx
    pygame.draw.line(s, c, (x, r.top + r.height * 0.38), (x, r.top + r.height * 0.66), w)
    pygame.draw.circle(s, c, (x, round(r.top + r.height * 0.78)), max(1, w * 0.7))


def _clock(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    rad = min(r.width, r.height) // 2 - w // 2
    pygame.draw.circle(s, c, r.center, rad, w)
    pygame.draw.line(s, c, r.center, (r.centerx, r.centery - rad * 0.6), w)
    pygame.draw.line(s, c, r.center, (r.centerx + rad * 0.45, r.centery), w)


def _check(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r) + 1
    pts = [
        (r.left + r.width * 0.15, r.top + r.height * 0.55),
        (r.left + r.width * 0.4, r.top + r.height * 0.8),
        (r.left + r.width * 0.88, r.top + r.height * 0.22),
    ]
    pygame.draw.lines(s, c, False, pts, w)


def _info(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    rad = min(r.width, r.height) // 2 - w // 2
    pygame.draw.circle(s, c, r.center, rad, w)
    pygame.draw.line(
        s, c, (r.centerx, r.centery - rad * 0.1), (r.centerx, r.centery + rad * 0.5), w
    )
    pygame.draw.circle(s, c, (r.centerx, round(r.centery - rad * 0.45)), max(1, w * 0.7))


def _camera(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    body = pygame.Rect(0, 0, r.width * 0.9, r.height * 0.6)
    body.center = (r.centerx, r.centery + r.height * 0.08)
    pygame.draw.rect(s, c, body, w, border_radius=w)
    bump = pygame.Rect(0, 0, r.width * 0.3, r.height * 0.14)
    bump.midbottom = (r.centerx, body.top + 1)
    pygame.draw.rect(s, c, bump)
    pygame.draw.circle(s, c, body.center, body.height * 0.3, w)


def _list(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    for i in range(3):
        y = r.top + r.height * (0.25 + 0.25 * i)
        dot_x = r.right - r.width * 0.15 if mirror else r.left + r.width * 0.15
        pygame.draw.circle(s, c, (dot_x, y), w * 0.8)
        x0, x1 = (
            (r.left + r.width * 0.05, r.right - r.width * 0.32)
            if mirror
            else (
                r.left + r.width * 0.32,
                r.right - r.width * 0.05,
            )
        )
        pygame.draw.line(s, c, (x0, y), (x1, y), w)


def _envelope(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    body = pygame.Rect(0, 0, r.width * 0.9, r.height * 0.66)
    body.center = r.center
    pygame.draw.rect(s, c, body, w)
    pygame.draw.lines(s, c, False, [body.topleft, (body.centerx, body.centery), body.topright], w)


def _gear(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    rad = min(r.width, r.height) / 2
    for i in range(8):
        a = i * math.pi / 4
        inner = (r.centerx + math.cos(a) * rad * 0.55, r.centery + math.sin(a) * rad * 0.55)
        outer = (r.centerx + math.cos(a) * rad * 0.95, r.centery + math.sin(a) * rad * 0.95)
        pygame.draw.line(s, c, inner, outer, w + 1)
    pygame.draw.circle(s, c, r.center, rad * 0.62, w)
    pygame.draw.circle(s, c, r.center, rad * 0.22, w)


def _back(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r) + 1
    sign = -1 if mirror else 1  # points toward the reading start: left in LTR, right in RTL
    tip = (r.centerx - sign * r.width * 0.35, r.centery)
    tail = (r.centerx + sign * r.width * 0.35, r.centery)
    pygame.draw.line(s, c, tip, tail, w)
    for dy in (-1, 1):
        pygame.draw.line(
            s, c, tip, (tip[0] + sign * r.width * 0.3, r.centery + dy * r.height * 0.3), w
        )


def _cloud_shape(s: pygame.Surface, r: pygame.Rect, c: tuple[int, ...], inset: float) -> None:
    """A filled cloud (three bumps on a flat base), shrunk by `inset` pixels all round."""
    base = r.top + r.height * 0.78
    bumps = ((0.3, 0.2, 0.19), (0.55, 0.34, 0.27), (0.77, 0.22, 0.17))
    for fx, up, rad in bumps:
        centre = (r.left + r.width * fx, base - r.height * up)
        pygame.draw.circle(s, c, centre, max(1.0, r.height * rad - inset))
    body = pygame.Rect(0, 0, r.width * 0.74 - 2 * inset, r.height * 0.26 - 2 * inset)
    body.bottomleft = (round(r.left + r.width * 0.12 + inset), round(base - inset))
    pygame.draw.rect(s, c, body, border_radius=max(1, round(body.height / 2)))


def _cloud(s: pygame.Surface, r: pygame.Rect, c: Color, w: int) -> None:
    # An outline of the whole silhouette: the filled cloud, then the same cloud `w` smaller
    # punched out (stroked circles crossed each other inside the old icon).
    layer = pygame.Surface(r.size, pygame.SRCALPHA)
    local = pygame.Rect((0, 0), r.size)
    _cloud_shape(layer, local, (*c, 255), 0)
    _cloud_shape(layer, local, (0, 0, 0, 0), w)
    s.blit(layer, r.topleft)


def _online(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    _cloud(s, r, c, _stroke(r))
    small = pygame.Rect(0, 0, r.width * 0.36, r.height * 0.32)
    small.center = (r.left + r.width * 0.52, r.top + r.height * 0.56)
    _check(s, small, c, mirror)


def _offline(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    _cloud(s, r, c, w)
    pygame.draw.line(
        s,
        c,
        (r.left + r.width * 0.1, r.top + r.height * 0.1),
        (r.right - r.width * 0.1, r.bottom - r.height * 0.1),
        w + 1,
    )


def _sync(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    box = r.inflate(-r.width * 0.2, -r.height * 0.2)
    pygame.draw.arc(s, c, box, math.radians(20), math.radians(160), w)
    pygame.draw.arc(s, c, box, math.radians(200), math.radians(340), w)
    for angle, dy in ((20, 1), (200, -1)):
        a = math.radians(angle)
        end = (
            box.centerx + math.cos(a) * box.width / 2,
            box.centery - math.sin(a) * box.height / 2,
        )
        pygame.draw.polygon(
            s,
            c,
            [
                end,
                (end[0] - r.width * 0.14, end[1] - dy * r.height * 0.02),
                (end[0] + r.width * 0.02, end[1] - dy * r.height * 0.16),
            ],
        )


def _lock(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    body = pygame.Rect(0, 0, r.width * 0.7, r.height * 0.5)
    body.midbottom = (r.centerx, r.bottom - r.height * 0.05)
    pygame.draw.rect(s, c, body, border_radius=w)
    shackle = pygame.Rect(0, 0, r.width * 0.46, r.height * 0.6)
    shackle.midtop = (r.centerx, r.top + r.height * 0.05)
    pygame.draw.arc(s, c, shackle, 0, math.pi, w)
    pygame.draw.line(
        s, c, (shackle.left + w / 2, shackle.centery), (shackle.left + w / 2, body.top), w
    )
    pygame.draw.line(
        s, c, (shackle.right - w / 2, shackle.centery), (shackle.right - w / 2, body.top), w
    )


def _power(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    box = r.inflate(-r.width * 0.15, -r.height * 0.15)
    pygame.draw.arc(s, c, box, math.radians(120), math.radians(420), w)
    pygame.draw.line(s, c, (r.centerx, r.top + r.height * 0.05), (r.centerx, r.centery), w)


def _globe(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    w = _stroke(r)
    rad = min(r.width, r.height) / 2 - w / 2
    pygame.draw.circle(s, c, r.center, rad, w)
    pygame.draw.ellipse(
        s, c, pygame.Rect(r.centerx - rad * 0.45, r.centery - rad, rad * 0.9, rad * 2), w
    )
    pygame.draw.line(s, c, (r.centerx - rad, r.centery), (r.centerx + rad, r.centery), w)


def _box(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    pygame.draw.rect(s, c, r.inflate(-r.width * 0.1, -r.height * 0.1), _stroke(r))


def _box_checked(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    _box(s, r, c, mirror)
    _check(s, r.inflate(-r.width * 0.25, -r.height * 0.25), c, mirror)


def _backspace(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    # Deletes the character before the cursor: points toward the reading start.
    w = _stroke(r)
    box = r.inflate(-r.width * 0.1, -r.height * 0.3)
    sign = -1 if mirror else 1
    tip_x = box.right if mirror else box.left
    tip = (tip_x, box.centery)
    shoulder = tip_x + sign * box.width * 0.3
    far = box.left if mirror else box.right
    pts = [tip, (shoulder, box.top), (far, box.top), (far, box.bottom), (shoulder, box.bottom)]
    pygame.draw.polygon(s, c, pts, w)
    cx = (shoulder + far) / 2
    d = box.height * 0.22
    pygame.draw.line(s, c, (cx - d, box.centery - d), (cx + d, box.centery + d), w)
    pygame.draw.line(s, c, (cx - d, box.centery + d), (cx + d, box.centery - d), w)


def _chevron(s: pygame.Surface, r: pygame.Rect, c: Color, up: bool) -> None:
    w = _stroke(r) + 1
    y0, y1 = (r.top + r.height * 0.68, r.top + r.height * 0.32)
    if not up:
        y0, y1 = y1, y0
    pts = [(r.left + r.width * 0.18, y0), (r.centerx, y1), (r.right - r.width * 0.18, y0)]
    pygame.draw.lines(s, c, False, pts, w)


def _up(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    _chevron(s, r, c, True)


def _down(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    _chevron(s, r, c, False)


def _steady(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    # "The result has settled": a ring with a dot, neutral on purpose (a tick read as "fine").
    w = _stroke(r)
    rad = min(r.width, r.height) // 2 - w // 2
    pygame.draw.circle(s, c, r.center, rad, w)
    pygame.draw.circle(s, c, r.center, max(2, rad * 0.38))


def _save(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    # An arrow down into a tray: keeping something, with no "all is well" tick in it.
    w = _stroke(r)
    x = r.centerx
    pygame.draw.line(s, c, (x, r.top + r.height * 0.1), (x, r.top + r.height * 0.62), w)
    for dx in (-1, 1):
        pygame.draw.line(
            s, c, (x, r.top + r.height * 0.64), (x + dx * r.width * 0.24, r.top + r.height * 0.4), w
        )
    tray = [
        (r.left + r.width * 0.1, r.top + r.height * 0.6),
        (r.left + r.width * 0.1, r.bottom - r.height * 0.1),
        (r.right - r.width * 0.1, r.bottom - r.height * 0.1),
        (r.right - r.width * 0.1, r.top + r.height * 0.6),
    ]
    pygame.draw.lines(s, c, False, tray, w)


def _review(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    # A written page: a specialist's review, whatever it says.
    w = _stroke(r)
    page = pygame.Rect(0, 0, r.width * 0.66, r.height * 0.86)
    page.center = r.center
    pygame.draw.rect(s, c, page, w, border_radius=w)
    for i in range(3):
        y = page.top + page.height * (0.3 + 0.2 * i)
        right = page.right - page.width * (0.45 if i == 2 else 0.22)
        left = page.left + page.width * 0.22
        if mirror:
            left, right = page.right - (right - page.left), page.right - page.width * 0.22
        pygame.draw.line(s, c, (left, y), (right, y), max(1, w - 1))


def _zoom(s: pygame.Surface, r: pygame.Rect, c: Color, mirror: bool) -> None:
    # A magnifier: "tap to see it bigger".
    w = _stroke(r)
    rad = min(r.width, r.height) * 0.3
    centre = (r.left + r.width * 0.42, r.top + r.height * 0.42)
    pygame.draw.circle(s, c, centre, rad, w)
    start = (centre[0] + rad * 0.7, centre[1] + rad * 0.7)
    pygame.draw.line(s, c, start, (r.right - r.width * 0.1, r.bottom - r.height * 0.1), w + 1)


ICONS: dict[str, Callable[[pygame.Surface, pygame.Rect, Color, bool], None]] = {
    "warning": _warning,
    "clock": _clock,
    "check": _check,
    "info": _info,
    "camera": _camera,
    "list": _list,
    "envelope": _envelope,
    "gear": _gear,
    "back": _back,
    "online": _online,
    "offline": _offline,
    "sync": _sync,
    "lock": _lock,
    "power": _power,
    "globe": _globe,
    "box": _box,
    "box_checked": _box_checked,
    "backspace": _backspace,
    "up": _up,
    "down": _down,
    "steady": _steady,
    "save": _save,
    "review": _review,
    "zoom": _zoom,
}


def draw_icon(
    surface: pygame.Surface, name: str, rect: pygame.Rect, color: Color, mirror: bool = False
) -> None:
    ICONS[name](surface, pygame.Rect(rect), color, mirror)
