"""SVG charts drawn on the server: stacked verdict bars per day, paired before/after bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from policies.model import VERDICTS

COLOURS = {"allow": "#2e8540", "defer": "#c77c02", "reroute": "#6f42c1", "block": "#c0392b"}
# Bottom to top, least restrictive first: the most restrictive on top, where the eye lands.
ORDER = VERDICTS


def stacked_days(days: Sequence[str], counts: Mapping[str, Mapping[str, int]],
                 *, width: int = 720, height: int = 220) -> Markup:
    """Draw one stacked bar per day, one segment per verdict, with a title per segment."""
    top = max((sum(counts.get(d, {}).values()) for d in days), default=0) or 1
    left, bottom, plot_h = 40, 20, height - 30
    slot = (width - left) / max(len(days), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="Decisions per day by verdict, last {len(days)} days">',
             f'<text x="0" y="12" font-size="11">{top}</text>',
             f'<text x="0" y="{height - bottom}" font-size="11">0</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
             'stroke="#999"/>']
    for i, day in enumerate(days):
        y = height - bottom
        for verdict in ORDER:
            n = counts.get(day, {}).get(verdict, 0)
            if not n:
                continue
            h = n / top * plot_h
            y -= h
            parts.append(
                f'<rect x="{left + i * slot + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{COLOURS.get(verdict, "#888")}"><title>'
                f'{escape(day)}: {n} {escape(verdict)}</title></rect>')
        if i % 7 == 0:
            parts.append(f'<text x="{left + i * slot:.1f}" y="{height - 4}" font-size="10">'
                         f'{escape(day[5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def before_after(before: Mapping[str, int], after: Mapping[str, int], *, width: int = 480,
                 height: int = 180) -> Markup:
    """Draw a pair of bars per verdict: the recorded count and the count under the draft."""
    top = max([*before.values(), *after.values(), 1])
    left, bottom, plot_h = 10, 20, height - 40
    slot = (width - left) / len(VERDICTS)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="Decisions per verdict, before and after the draft">']
    for i, verdict in enumerate(VERDICTS):
        x = left + i * slot
        for j, (label, source) in enumerate((("before", before), ("after", after))):
            n = source.get(verdict, 0)
            h = n / top * plot_h
            parts.append(
                f'<rect x="{x + j * slot / 2.5 + 4:.1f}" y="{height - bottom - h:.1f}" '
                f'width="{slot / 2.5 - 4:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(verdict, "#888")}" fill-opacity="{1 if j else 0.45}">'
                f'<title>{escape(verdict)} {label}: {n}</title></rect>')
            parts.append(f'<text x="{x + j * slot / 2.5 + 4:.1f}" '
                         f'y="{height - bottom - h - 3:.1f}" font-size="10">{n}</text>')
        parts.append(f'<text x="{x + 4:.1f}" y="{height - 4}" font-size="11">'
                     f'{escape(verdict)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
