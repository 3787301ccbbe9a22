"""Bar charts as inline SVG, drawn on the server: no JavaScript, no chart library, and they
print. Each chart has a text title for screen readers; the page also shows the numbers in a
table."""

from __future__ import annotations

from markupsafe import Markup, escape

_BAR = "#2b6cb0"
_BAR2 = "#c05621"


def column_chart(title: str, points: list[tuple[str, int]], width: int = 640) -> Markup:
    """Vertical bars, one per (label, value), e.g. cases per day."""
    height, top, bottom, left = 180, 16, 40, 28
    peak = max((v for _, v in points), default=0) or 1
    step = (width - left) / max(len(points), 1)
    bar = max(step * 0.7, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text x="0" y="{top}" class="axis">{peak}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#666"/>',
    ]
    span = height - top - bottom
    for i, (label, value) in enumerate(points):
        h = span * value / peak
        x = left + i * step
        parts.append(
            f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}" fill="{_BAR}"><title>{escape(label)}: {value}</title></rect>'
        )
        if len(points) <= 16 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" class="axis" '
                f'text-anchor="middle">{escape(label[-5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def paired_bar_chart(
    title: str, rows: list[tuple[str, int, int]], names: tuple[str, str], width: int = 640
) -> Markup:
    """Horizontal bar pairs, one pair per row, e.g. kiosk label vs review label counts."""
    row_h, label_w = 34, 170
    height = row_h * len(rows) + 28
    peak = max((max(a, b) for _, a, b in rows), default=0) or 1
    span = width - label_w - 40
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<rect x="{label_w}" y="2" width="12" height="10" fill="{_BAR}"/>'
        f'<text x="{label_w + 16}" y="11" class="axis">{escape(names[0])}</text>'
        f'<rect x="{label_w + 160}" y="2" width="12" height="10" fill="{_BAR2}"/>'
        f'<text x="{label_w + 176}" y="11" class="axis">{escape(names[1])}</text>',
    ]
    for i, (label, a, b) in enumerate(rows):
        y = 24 + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" class="axis" text-anchor="end">'
            f"{escape(label.replace('_', ' '))}</text>"
        )
        for j, (value, colour) in enumerate(((a, _BAR), (b, _BAR2))):
            w = span * value / peak
            yy = y + j * 13
            parts.append(
                f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="11" fill="{colour}">'
                f"<title>{escape(label)} {escape(names[j])}: {value}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{yy + 10}" class="axis">{value}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
