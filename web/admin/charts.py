"""Server-side SVG charts for the admin (no JavaScript, no CDN)."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 720, 180, 28


def bar_chart(points: list[tuple[str, float]], title: str) -> Markup:
    """A bar chart of one series, labelled with its first and last day.

    Args:
        points: ``(label, value)`` pairs in order.
        title: Accessible title of the chart.

    Returns:
        Inline SVG markup.
    """
    peak = max((value for _, value in points), default=0) or 1
    count = max(len(points), 1)
    slot = (WIDTH - 2 * PAD) / count
    bars = []
    for index, (label, value) in enumerate(points):
        height = (HEIGHT - 2 * PAD) * value / peak
        x = PAD + index * slot + slot * 0.1
        y = HEIGHT - PAD - height
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{height:.1f}" '
            f'fill="#2c7be5"><title>{escape(label)}: {value:g}</title></rect>'
        )
    labels = ""
    if points:
        labels = (
            f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{escape(points[0][0])}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
    return Markup(
        f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text x="{PAD}" y="16" font-size="12">{escape(title)} (max {peak:g})</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        f'stroke="#999"/>{"".join(bars)}{labels}</svg>'
    )
