"""Small SVG drawings, written by hand: the window's timeline, the requests over time, and the
checklist's status marks."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from rehearsal.model import Request, Step, Window

WIDTH = 1100
LABEL_W = 300
ROW_H = 22
PAD = 12
FONT = "font-family='system-ui, sans-serif' font-size='12'"
WINDOW_COLOURS = {"write freeze": "#f4a3a3", "maintenance window": "#cfe3ff", "rollback": "#ffd8a8"}


def _x(t: float, span: float) -> float:
    return LABEL_W + (WIDTH - LABEL_W - PAD) * (t / span if span else 0.0)


def timeline_svg(steps: Sequence[Step], windows: Sequence[Window]) -> str:
    """Every step as a bar on one time axis, with the named windows shaded behind them."""
    span = max([s.end for s in steps] + [w.end for w in windows] + [1.0])
    top = 28 + 18 * len(windows)
    height = top + ROW_H * len(steps) + 40
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' role='img' aria-label='timeline of the rehearsal' {FONT}>",
        "<title>Timeline of the rehearsal</title>",
    ]
    for i, w in enumerate(windows):
        colour = WINDOW_COLOURS.get(w.name, "#e0e0e0")
        x0, x1 = _x(w.start, span), _x(w.end, span)
        out.append(
            f"<rect x='{x0:.1f}' y='{top - 4}' width='{max(x1 - x0, 1):.1f}' "
            f"height='{ROW_H * len(steps) + 8}' fill='{colour}' fill-opacity='0.35'/>"
        )
        budget = f" (budget {w.budget_seconds:.0f} s)" if w.budget_seconds else ""
        out.append(
            f"<rect x='{PAD}' y='{8 + 18 * i}' width='12' height='12' fill='{colour}'/>"
            f"<text x='{PAD + 18}' y='{18 + 18 * i}'>{escape(w.name)}: "
            f"{w.seconds:.1f} s{escape(budget)}</text>"
        )
    for i, s in enumerate(steps):
        y = top + ROW_H * i
        x0, x1 = _x(s.start, span), _x(s.end, span)
        fill = "#2f7d32" if s.ok else "#c62828"
        label = s.name if len(s.name) <= 44 else s.name[:43] + "…"
        out.append(f"<text x='{PAD}' y='{y + 15}'>{escape(label)}</text>")
        out.append(
            f"<rect x='{x0:.1f}' y='{y + 3}' width='{max(x1 - x0, 2):.1f}' height='{ROW_H - 6}' "
            f"fill='{fill}'><title>{escape(s.name)}: {s.seconds:.2f} s</title></rect>"
        )
        out.append(f"<text x='{min(x1 + 4, WIDTH - 60):.1f}' y='{y + 15}'>{s.seconds:.1f} s</text>")
    axis_y = top + ROW_H * len(steps) + 14
    out.append(
        f"<line x1='{LABEL_W}' y1='{axis_y - 8}' x2='{WIDTH - PAD}' "
        f"y2='{axis_y - 8}' stroke='#555'/>"
    )
    for k in range(6):
        t = span * k / 5
        out.append(f"<text x='{_x(t, span) - 10:.1f}' y='{axis_y + 8}'>{t:.0f} s</text>")
    out.append("</svg>")
    return "\n".join(out)


def requests_svg(requests: Sequence[Request], span: float, bucket: float = 1.0) -> str:
    """Requests per ``bucket`` seconds, successes in green stacked under failures in red."""
    height, top, bottom = 180, 20, 30
    buckets = max(int(span / bucket) + 1, 1)
    ok = [0] * buckets
    bad = [0] * buckets
    for r in requests:
        i = min(int(r.at / bucket), buckets - 1)
        if r.ok:
            ok[i] += 1
        else:
            bad[i] += 1
    peak = max([a + b for a, b in zip(ok, bad, strict=True)] + [1])
    plot_h = height - top - bottom
    bar_w = (WIDTH - LABEL_W - PAD) / buckets
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' role='img' aria-label='requests over time' {FONT}>",
        "<title>Requests to the app during the rehearsal</title>",
        f"<text x='{PAD}' y='{top + 12}'>requests per {bucket:.0f} s</text>",
        f"<rect x='{PAD}' y='{top + 24}' width='12' height='12' fill='#2f7d32'/>"
        f"<text x='{PAD + 18}' y='{top + 34}'>succeeded</text>",
        f"<rect x='{PAD}' y='{top + 44}' width='12' height='12' fill='#c62828'/>"
        f"<text x='{PAD + 18}' y='{top + 54}'>failed</text>",
    ]
    for i in range(buckets):
        x = LABEL_W + i * bar_w
        h_ok = plot_h * ok[i] / peak
        h_bad = plot_h * bad[i] / peak
        base = top + plot_h
        if ok[i]:
            out.append(
                f"<rect x='{x:.1f}' y='{base - h_ok:.1f}' width='{max(bar_w - 0.5, 0.5):.1f}' "
                f"height='{h_ok:.1f}' fill='#2f7d32'/>"
            )
        if bad[i]:
            out.append(
                f"<rect x='{x:.1f}' y='{base - h_ok - h_bad:.1f}' "
                f"width='{max(bar_w - 0.5, 0.5):.1f}' height='{h_bad:.1f}' fill='#c62828'/>"
            )
    for k in range(6):
        t = span * k / 5
        out.append(f"<text x='{_x(t, span) - 10:.1f}' y='{height - 8}'>{t:.0f} s</text>")
    out.append("</svg>")
    return "\n".join(out)


#: The checklist's status marks, drawn rather than typed (no font needed): colour, inner shape.
MARKS: dict[str, tuple[str, str]] = {
    "proven": (
        "#2f7d32",
        "<path d='M4.4 8.3l2.4 2.4 4.8-5.2' fill='none' stroke='#fff' stroke-width='2'"
        " stroke-linecap='round' stroke-linejoin='round'/>",
    ),
    "failed": (
        "#c62828",
        "<path d='M5.2 5.2l5.6 5.6M10.8 5.2l-5.6 5.6' stroke='#fff' stroke-width='2'"
        " stroke-linecap='round'/>",
    ),
    "human": (
        "#1565c0",
        "<circle cx='8' cy='5.8' r='2.4' fill='#fff'/>"
        "<path d='M3.6 12.8a4.4 3.8 0 0 1 8.8 0z' fill='#fff'/>",
    ),
    "not exercised": (
        "#9e9e9e",
        "<path d='M4.4 8h7.2' stroke='#fff' stroke-width='2' stroke-linecap='round'/>",
    ),
}


def mark_svg(status: str, size: int = 16) -> str:
    """The mark of a checklist status (``Status.value``) as inline SVG, with its name as title."""
    colour, inner = MARKS[status]
    return (
        f"<svg class='mark' xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' "
        f"viewBox='0 0 16 16' role='img' aria-label='{escape(status)}'>"
        f"<title>{escape(status)}</title><circle cx='8' cy='8' r='8' fill='{colour}'/>{inner}</svg>"
    )
