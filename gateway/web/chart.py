"""A small horizontal bar chart as inline SVG, drawn on the server (no script, no CDN).

Labels are escaped here: the SVG is inserted into the page as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR_H, GAP, LABEL_W, BAR_W, VALUE_W = 22, 8, 300, 360, 60
COLOURS = ("#2f6f9f", "#b5562a")  # one per series (inbound, outbound)


def label_width(label: str) -> int:
    """A generous width in pixels for ``label`` at 13 px (wide letters count more)."""
    return round(sum(10 if c.isupper() or c in "mwMW" else 7.5 for c in label))


def bar_chart(rows: Sequence[tuple[str, Sequence[int]]], series: Sequence[str],
              title: str) -> str:
    """``rows`` = (label, one count per series); stacked horizontal bars."""
    top = 24
    height = top + len(rows) * (BAR_H + GAP) + 8
    # room for the longest label (13 px text is at most ~7.5 px a character): a long
    # French label was cut at the left edge
    label_w = max(LABEL_W, max((label_width(label) for label, _ in rows), default=0) + 16)
    width = label_w + BAR_W + VALUE_W
    biggest = max((sum(values) for _, values in rows), default=0) or 1
    out = [f'<svg class="chart" role="img" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    x = label_w
    for i, name in enumerate(series):  # legend
        out.append(f'<rect x="{x}" y="4" width="12" height="12" '
                   f'fill="{COLOURS[i % len(COLOURS)]}"/>'
                   f'<text x="{x + 16}" y="15" font-size="12">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    for n, (label, values) in enumerate(rows):
        y = top + n * (BAR_H + GAP)
        out.append(f'<text x="{label_w - 8}" y="{y + BAR_H - 7}" font-size="13" '
                   f'text-anchor="end">{escape(label)}</text>')
        x = label_w
        for i, value in enumerate(values):
            w = round(BAR_W * value / biggest)
            if w:
                out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{BAR_H}" '
                           f'fill="{COLOURS[i % len(COLOURS)]}"><title>{escape(label)} — '
                           f'{escape(series[i])} : {value}</title></rect>')
            x += w
        out.append(f'<text x="{x + 6}" y="{y + BAR_H - 7}" font-size="13">'
                   f'{sum(values)}</text>')
    out.append("</svg>")
    return "".join(out)
