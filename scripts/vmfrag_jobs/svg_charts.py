"""Inline SVG charts for the HTML report, drawn from data: line and step charts, a strip chart, a
horizontal bar chart against goals, the address-space map and the physical (buddy-order) map.

Each function returns a complete `<svg>` element as a string. Every piece of text that reaches the
SVG (titles, legends, hover titles, labels) goes through `esc`: the report inserts these strings
unescaped, so this module is where escaping of chart text happens. Every chart has a title, axis
labels with units and a legend when it shows more than one series; `role="img"` and `<title>` make
it readable to a screen reader.
"""
import math
from html import escape

# No red among the series: red marks failures, thresholds and missed goals.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f"]
MAP_COLOURS = {"used": "#4c72b0", "guard": "#e08030", "free": "#9fd39f", "lazy": "#a0a0a0"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def esc(text):
    return escape(str(text), quote=True)


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 x 10^k steps)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + (abs(lo) if lo else 1)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def byte_ticks(hi, count=8):
    """Ticks for a byte axis [0, hi]: multiples of a power of two (4 KiB, 64 KiB, 1 MiB, ...), so
    labels read as whole units."""
    step = 1
    while hi / step > count:
        step *= 2
    return [i * step for i in range(int(hi // step) + 1)]


def format_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


def format_number(x):
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def _legend(names_colours, x, y):
    parts = []
    for i, (name, colour, dashed) in enumerate(names_colours):
        yy = y + i * 14
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        parts.append(f'<line x1="{x}" y1="{yy}" x2="{x + 18}" y2="{yy}" stroke="{colour}" stroke-width="2.5"{dash}/>'
                     f'<text x="{x + 22}" y="{yy + 4}" {FONT}>{esc(name)}</text>')
    return '<g class="legend">' + "".join(parts) + "</g>"


def _frame(width, height, title, body, desc=""):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{esc(title)}</title>'
            + (f"<desc>{esc(desc)}</desc>" if desc else "")
            + f'<text x="{width / 2}" y="16" text-anchor="middle" font-family="system-ui, sans-serif" font-size="13" '
              f'font-weight="600">{esc(title)}</text>' + body + "</svg>")


def line_chart(title, x_label, y_label, series, *, markers=(), hlines=(), y_format=format_number,
               x_format=format_number, width=720, height=260, step=False, y_range=None, x_range=None,
               x_integer=False):
    """series: [{"name", "points": [(x, y), ...], "dashed": bool}]; markers: [{"x", "label"}] drawn as
    red ticks under the x axis (failures); hlines: [{"y", "label", "colour"}] (floors, goals)."""
    has_legend = len(series) > 1 or bool(hlines) or bool(markers)
    left, right, top, bottom = 64, 170 if has_legend else 20, 28, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [p[0] for s in series for p in s["points"]] + [m["x"] for m in markers]
    ys = [p[1] for s in series for p in s["points"]] + [h["y"] for h in hlines]
    if not xs or not ys:
        return _frame(width, height, title, f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {FONT}>no data</text>')
    x_lo, x_hi = x_range or (min(xs), max(xs))
    if x_hi == x_lo:
        x_hi = x_lo + 1
    y_ticks = nice_ticks(*(y_range or (min(0, min(ys)), max(ys))))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def px(x):
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y):
        return top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#888"/>']
    for t in y_ticks:
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{py(t) + 4:.1f}" text-anchor="end" {FONT}>{esc(y_format(t))}</text>')
    for t in nice_ticks(x_lo, x_hi, 6):
        if x_lo <= t <= x_hi and (not x_integer or t == int(t)):
            body.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#888"/>'
                        f'<text x="{px(t):.1f}" y="{top + plot_h + 15}" text-anchor="middle" {FONT}>{esc(x_format(t))}</text>')
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" {FONT}>{esc(x_label)}</text>'
                f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" {FONT}>{esc(y_label)}</text>')
    legend = []
    for i, s in enumerate(series):
        colour = s.get("colour") or PALETTE[i % len(PALETTE)]
        pts = sorted(s["points"])
        if step:
            stepped = []
            prev_y = None
            for x, y in pts:
                if prev_y is not None:
                    stepped.append((x, prev_y))
                stepped.append((x, y))
                prev_y = y
            pts = stepped
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="4 3"' if s.get("dashed") else ""
        body.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{coords}">'
                    f'<title>{esc(s["name"])}</title></polyline>')
        if len(pts) == 1:
            body.append(f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" fill="{colour}"/>')
        legend.append((s["name"], colour, s.get("dashed")))
    for h in hlines:
        colour = h.get("colour", "#555")
        body.append(f'<line class="hline" x1="{left}" x2="{left + plot_w}" y1="{py(h["y"]):.1f}" y2="{py(h["y"]):.1f}" '
                    f'stroke="{colour}" stroke-dasharray="4 3" stroke-width="1.4"><title>{esc(h["label"])}</title></line>')
        legend.append((h["label"], colour, True))
    if markers:
        for m in markers:
            body.append(f'<line class="failure-mark" x1="{px(m["x"]):.1f}" x2="{px(m["x"]):.1f}" y1="{top + plot_h - 8}" '
                        f'y2="{top + plot_h}" stroke="#d00" stroke-width="1.5"><title>{esc(m["label"])}</title></line>')
        legend.append(("failed ops", "#d00", False))
    if has_legend:
        body.append(_legend(legend, left + plot_w + 12, top + 8))
    return _frame(width, height, title, "".join(body))


def strip_chart(title, y_label, groups, *, hlines=(), width=720, height=280):
    """groups: [{"name", "values": [...]}], one column of dots per group (e.g. best severity per
    trial, per arm); hlines: floor and threshold lines."""
    left, right, top, bottom = 64, 190, 28, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for g in groups for v in g["values"]] + [h["y"] for h in hlines]
    if not values:
        return _frame(width, height, title, f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {FONT}>no data</text>')
    ticks = nice_ticks(min(0, min(values)), max(values))
    y_lo, y_hi = ticks[0], ticks[-1]

    def py(y):
        return top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#888"/>']
    for t in ticks:
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{py(t) + 4:.1f}" text-anchor="end" {FONT}>{esc(format_number(t))}</text>')
    col = plot_w / max(1, len(groups))
    legend = []
    for i, g in enumerate(groups):
        colour = PALETTE[i % len(PALETTE)]
        cx = left + col * (i + 0.5)
        for j, v in enumerate(g["values"]):
            jitter = ((j * 7) % 11 - 5) * min(3.0, col / 30)
            body.append(f'<circle class="dot" cx="{cx + jitter:.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour}" fill-opacity="0.75">'
                        f'<title>{esc(g["name"])}: {esc(f"{v:.4f}")}</title></circle>')
        body.append(f'<text x="{cx:.1f}" y="{top + plot_h + 15}" text-anchor="middle" {FONT}>{esc(g["name"])}</text>')
    for h in hlines:
        colour = h.get("colour", "#555")
        body.append(f'<line class="hline" x1="{left}" x2="{left + plot_w}" y1="{py(h["y"]):.1f}" y2="{py(h["y"]):.1f}" '
                    f'stroke="{colour}" stroke-dasharray="4 3" stroke-width="1.4"><title>{esc(h["label"])}</title></line>')
        legend.append((h["label"], colour, True))
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" {FONT}>arm (one dot per trial)</text>'
                f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" {FONT}>{esc(y_label)}</text>')
    if legend:
        body.append(_legend(legend, left + plot_w + 12, top + 8))
    return _frame(width, height, title, "".join(body))


def ratio_bars(title, x_label, bars, *, width=720):
    """bars: [{"name", "value" (or None), "goal" (or None)}]: one horizontal bar per ratio with
    its goal as a vertical tick; a missing value is written, not drawn as 0."""
    left, right, top, row = 20, 160, 34, 36
    height = top + row * len(bars) + 50
    plot_w = width - left - right
    values = [b["value"] for b in bars if b["value"] is not None] + [b["goal"] for b in bars if b["goal"] is not None] + [1]
    ticks = nice_ticks(0, max(values))
    x_hi = ticks[-1]

    def px(x):
        return left + x / x_hi * plot_w

    body = []
    for t in ticks:
        body.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + row * len(bars)}" stroke="#eee"/>'
                    f'<text x="{px(t):.1f}" y="{top + row * len(bars) + 14}" text-anchor="middle" {FONT}>{esc(format_number(t))}</text>')
    for i, b in enumerate(bars):
        y = top + i * row + 14  # the name above, the bar below
        body.append(f'<text x="{left}" y="{y - 3}" {FONT}>{esc(b["name"])}</text>')
        if b["value"] is None:
            body.append(f'<text x="{left + 4}" y="{y + 14}" {FONT} fill="#a00">not measured</text>')
        else:
            met = b["goal"] is None or b["value"] <= b["goal"]
            body.append(f'<rect class="bar" x="{left}" y="{y + 2}" width="{max(1.0, px(b["value"]) - left):.1f}" height="14" '
                        f'fill="{"#4c9f4c" if met else "#d62728"}"><title>{esc(b["name"])}: {b["value"]:.3f}</title></rect>')
        if b["goal"] is not None:
            body.append(f'<line class="goal" x1="{px(b["goal"]):.1f}" x2="{px(b["goal"]):.1f}" y1="{y}" y2="{y + 18}" '
                        f'stroke="#000" stroke-width="2"><title>goal &lt;= {esc(b["goal"])}</title></line>')
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" {FONT}>{esc(x_label)}</text>')
    body.append(_legend([("within goal", "#4c9f4c", False), ("over goal", "#d62728", False), ("goal (black tick)", "#000", False)],
                        width - 150, 10))
    return _frame(width, height, title, "".join(body))


def address_map(title, segments, region_bytes, *, request_bytes=None, largest_free_bytes=None, width=900,
                request_label="failed request (need, guard included)"):
    """The region as one strip to scale (used / guard / free / lazy, hover: offset and size), and
    under it, at the same scale, the failed request's need beside the largest free extent."""
    left, right = 10, 34  # room for the last offset label
    strip_w = width - left - right
    top, strip_h = 30, 36
    scale = strip_w / region_bytes if region_bytes else 0
    body = [f'<rect x="{left}" y="{top}" width="{strip_w}" height="{strip_h}" fill="#fff" stroke="#555"/>']
    for s in segments:
        w = s["bytes"] * scale
        body.append(f'<rect class="seg seg-{s["state"]}" x="{left + s["offset"] * scale:.3f}" y="{top}" width="{w:.3f}" '
                    f'height="{strip_h}" fill="{MAP_COLOURS[s["state"]]}"><title>{esc(s["state"])} at offset '
                    f'{esc(hex(s["offset"]))} ({esc(format_bytes(s["offset"]))}), {esc(format_bytes(s["bytes"]))}'
                    f'</title></rect>')
    axis_y = top + strip_h
    for t in byte_ticks(region_bytes, 8):
        if t <= region_bytes:
            x = left + t * scale
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axis_y}" y2="{axis_y + 4}" stroke="#555"/>'
                        f'<text x="{x:.1f}" y="{axis_y + 15}" text-anchor="middle" {FONT}>{esc(format_bytes(t))}</text>')
    body.append(f'<text x="{left + strip_w / 2}" y="{axis_y + 29}" text-anchor="middle" {FONT}>offset in the region (bytes)</text>')
    y = axis_y + 40
    for label, value, colour in ((request_label, request_bytes, "#d62728"),
                                 ("largest free extent", largest_free_bytes, MAP_COLOURS["free"])):
        if value is None:
            continue
        bar_w = max(1.0, value * scale)
        # The label follows a short bar and sits inside a long one, so it never leaves the chart.
        label_x = left + bar_w + 6 if bar_w < strip_w * 0.6 else left + 6
        body.append(f'<rect class="{"request" if colour == "#d62728" else "largest-free"}" x="{left}" y="{y}" '
                    f'width="{bar_w:.3f}" height="12" fill="{colour}" stroke="#333" stroke-width="0.5">'
                    f'<title>{esc(label)}: {esc(format_bytes(value))}</title></rect>'
                    f'<text x="{label_x:.1f}" y="{y + 10}" {FONT}>{esc(label)}: {esc(format_bytes(value))}</text>')
        y += 18
    legend_x = left
    for state in ("used", "guard", "free", "lazy"):
        body.append(f'<rect x="{legend_x}" y="{y + 4}" width="12" height="12" fill="{MAP_COLOURS[state]}" stroke="#333" stroke-width="0.5"/>'
                    f'<text x="{legend_x + 16}" y="{y + 14}" {FONT}>{esc(state)}</text>')
        legend_x += 80
    height = y + 24
    return _frame(width, height, title, "".join(body), desc=f"region of {format_bytes(region_bytes)} to scale")


def physical_map(title, free_blocks_by_order, *, failed_order=None, page_bytes=4096, width=720, height=260):
    """Free pages by buddy order: one bar per order (free blocks x 2^order pages); the order the
    failed request needed is outlined."""
    left, right, top, bottom = 64, 20, 28, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    orders = list(range(len(free_blocks_by_order)))
    pages = [n * (1 << o) for o, n in zip(orders, free_blocks_by_order)]
    ticks = nice_ticks(0, max(pages + [1]))
    y_hi = ticks[-1]
    col = plot_w / max(1, len(orders))
    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#888"/>']
    for t in ticks:
        y = top + plot_h - t / y_hi * plot_h
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{esc(format_number(t))}</text>')
    for o, blocks, p in zip(orders, free_blocks_by_order, pages):
        h = p / y_hi * plot_h
        x = left + o * col + col * 0.15
        outline = ' stroke="#d62728" stroke-width="2"' if o == failed_order else ""
        body.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{col * 0.7:.1f}" height="{max(h, 0):.1f}" '
                    f'fill="#4c72b0"{outline}><title>order {o} ({esc(format_bytes((1 << o) * page_bytes))} blocks): '
                    f'{blocks} free blocks, {p} pages</title></rect>'
                    f'<text x="{x + col * 0.35:.1f}" y="{top + plot_h + 15}" text-anchor="middle" {FONT}>{o}</text>')
    body.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" {FONT}>buddy order (block = 2^order pages)'
                + (f'; red outline: the order the failed request needed ({failed_order})' if failed_order is not None else "")
                + '</text>'
                f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" {FONT}>free pages (4 KiB)</text>')
    return _frame(width, height, title, "".join(body))
