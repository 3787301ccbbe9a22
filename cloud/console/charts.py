"""Bar charts as inline SVG, drawn on the server: no chart library, and they print. Each chart
has a text title for screen readers, and the page shows the same numbers in a table.

Sizes are in the SVG's own units, scaled to the page width: the viewBoxes are narrow enough
that labels stay at least ~14 px on a 768 px tablet and a 1280 px screen.
"""

from __future__ import annotations

from markupsafe import Markup, escape

# Colours with at least 4.5:1 contrast against white, and told apart by a legend in words.
URGENCY_COLOURS = {
    "urgent": "#b91c1c",
    "soon": "#b45309",
    "routine": "#1d4ed8",
    "none": "#4b5563",
}
KIOSK_COLOUR = "#1d4ed8"
CLOUD_COLOUR = "#7c2d12"


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )


def stacked_columns(
    title: str, labels: list[str], series: list[tuple[str, str, list[int]]], width: int = 560
) -> Markup:
    """One column per label (e.g. a day), stacked by series (name, colour, values)."""
    height, top, bottom, left, legend = 260, 34, 34, 34, 22
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    step = (width - left) / max(len(labels), 1)
    bar = max(step * 0.72, 1)
    span = height - top - bottom
    parts = [_svg_open(width, height, title)]
    x = 0.0
    for name, colour, _ in series:
        parts.append(
            f'<rect x="{x:.0f}" y="4" width="14" height="14" fill="{colour}"/>'
            f'<text x="{x + 18:.0f}" y="16" class="axis">{escape(name)}</text>'
        )
        x += 18 + 9 * len(name) + 18
    parts.append(f'<text x="0" y="{top + 12}" class="axis">{peak}</text>')
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#4b5563"/>'
    )
    every = max(1, round(len(labels) / 7))  # at most ~7 day labels: readable, not crowded
    for i, label in enumerate(labels):
        xx = left + i * step
        base = height - bottom
        for name, colour, values in series:
            h = span * values[i] / peak
            if h > 0:
                parts.append(
                    f'<rect x="{xx:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(label)} {escape(name)}: {values[i]}'
                    "</title></rect>"
                )
            base -= h
        if totals[i]:
            parts.append(
                f'<text x="{xx + bar / 2:.1f}" y="{base - 4:.1f}" class="axis" '
                f'text-anchor="middle">{totals[i]}</text>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{xx + bar / 2:.1f}" y="{height - bottom + legend}" class="axis" '
                f'text-anchor="middle">{escape(label[-5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def probability_bars(
    title: str, rows: list[tuple[str, float | None, float | None]], width: int = 470
) -> Markup:
    """The kiosk's and the cloud's probability per condition, side by side: one row per
    condition (label, kiosk p or None, cloud p or None), two thin bars each."""
    row_h, label_w, bar_h = 25, 182, 9
    height = row_h * len(rows) + 24
    span = width - label_w - 92
    parts = [
        _svg_open(width, height, title),
        f'<rect x="{label_w}" y="4" width="14" height="12" fill="{KIOSK_COLOUR}"/>'
        f'<text x="{label_w + 18}" y="15" class="axis">kiosk</text>'
        f'<rect x="{label_w + 90}" y="4" width="14" height="12" fill="{CLOUD_COLOUR}"/>'
        f'<text x="{label_w + 108}" y="15" class="axis">cloud</text>',
    ]
    for i, (label, kiosk, cloud) in enumerate(rows):
        y = 22 + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" class="axis" text-anchor="end">'
            f"{escape(label.replace('_', ' '))}</text>"
        )
        for j, (p, colour, name) in enumerate(
            ((kiosk, KIOSK_COLOUR, "kiosk"), (cloud, CLOUD_COLOUR, "cloud"))
        ):
            if p is not None:
                parts.append(
                    f'<rect x="{label_w}" y="{y + 2 + j * (bar_h + 2)}" '
                    f'width="{max(span * p, 1):.1f}" height="{bar_h}" fill="{colour}">'
                    f"<title>{escape(label)} {name}: {p * 100:.0f}%</title></rect>"
                )
        said = " · ".join("—" if p is None else f"{p * 100:.0f}%" for p in (kiosk, cloud))
        parts.append(
            f'<text x="{width - 2}" y="{y + 15}" class="axis small" text-anchor="end">{said}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
