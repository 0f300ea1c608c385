"""Draw the Grafana dashboard's panels from a Prometheus server's data as one PNG.

Run through scripts/render-dashboard, which provides matplotlib. Reads the
dashboard JSON (deploy/grafana/dashboards/wholesale-provisioner.json), runs each
panel's queries against Prometheus's HTTP API (query_range for time series and
stats, an instant query for pie charts) over the time range given, and lays the
panels out on Grafana's 24-column grid: the picture is the dashboard, drawn from
the data, without a Grafana.

Grafana's variables are expanded as Grafana would with "All" selected: $job,
$topic and the like become .+, $__rate_interval the --rate-interval,
$__interval the step, $__range the whole range.
"""

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

# Grafana's dark theme and named colours.
BG = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
MUTED = "#8e8e9e"
NAMED = {
    "green": "#73bf69", "red": "#f2495c", "yellow": "#fade2a", "orange": "#ff9830",
    "purple": "#b877d9", "blue": "#5794f2", "dark-red": "#c4162a", "dark-green": "#37872d",
    "dark-yellow": "#e0b400", "dark-orange": "#fa6400", "text": TEXT,
}
# Grafana's palette-classic.
PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
           "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c"]


def parse_duration(s):
    """Seconds of a Prometheus/Grafana duration such as 30s, 5m, 1h30m."""
    total, n = 0.0, ""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", s):
        total += float(num) * units[unit]
        n += num + unit
    if not n or n != s:
        raise argparse.ArgumentTypeError(f"not a duration: {s!r}")
    return total


def parse_time(s):
    """Unix seconds from a number or an RFC 3339 time."""
    try:
        return float(s)
    except ValueError:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def prom_duration(seconds):
    return f"{max(1, int(round(seconds)))}s"


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def _get(self, path, params):
        q = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise RuntimeError(f"{params.get('query')}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def range(self, query, start, end, step):
        return self._get("/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step})["result"]

    def instant(self, query, at):
        return self._get("/api/v1/query", {"query": query, "time": at})["result"]


def expand(expr, rate_interval, step, rng):
    for name, value in (("__rate_interval", rate_interval), ("__interval", step), ("__range", rng)):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".+", expr)


def legend(fmt, labels, expr):
    if fmt in ("", "__auto", None):
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return labels.get("__name__", "") + ("{" + inner + "}" if inner else "") or expr
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()


def natural_key(s):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def human(v, unit):
    """A value as Grafana would print it, for the units the dashboard uses."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "No data"
    if unit == "s":
        a = abs(v)
        if a == 0:
            return "0 s"
        if a < 1:
            return f"{v * 1000:.0f} ms"
        if a < 60:
            return f"{v:.1f} s"
        if a < 3600:
            return f"{v / 60:.1f} min"
        return f"{v / 3600:.1f} h"
    suffix = {"ops": " ops/s", "reqps": " req/s"}.get(unit, "")
    a = abs(v)
    if a >= 1e6:
        s = f"{v / 1e6:.1f}M"
    elif a >= 1e3:
        s = f"{v / 1e3:.1f}K"
    elif a >= 100 or v == int(v):
        s = f"{v:.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + suffix


def axis_formatter(unit):
    def fmt(v, _pos):
        if unit == "s":
            a = abs(v)
            if a == 0:
                return "0"
            if a < 1:
                return f"{v * 1000:.0f}ms"
            if a < 60:
                return f"{v:g}s"
            return f"{v / 60:g}m"
        a = abs(v)
        if a >= 1e3:
            return f"{v / 1e3:g}K"
        return f"{v:g}"
    return FuncFormatter(fmt)


def override_color(panel, name):
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        m = o.get("matcher", {})
        hit = (m.get("id") == "byName" and m.get("options") == name) or \
              (m.get("id") == "byRegexp" and re.fullmatch(m.get("options", ""), name))
        if not hit:
            continue
        for p in o.get("properties", []):
            if p.get("id") == "color":
                c = p["value"].get("fixedColor")
                return NAMED.get(c, c)
    return None


def override_props(panel, name):
    props = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        m = o.get("matcher", {})
        if m.get("id") == "byName" and m.get("options") == name:
            for p in o.get("properties", []):
                props[p["id"]] = p.get("value")
    return props


def series_of(prom, panel, start, end, step, rate_interval):
    out = []
    rng = prom_duration(end - start)
    for t in panel.get("targets", []):
        expr = expand(t["expr"], rate_interval, prom_duration(step), rng)
        for s in prom.range(expr, start, end, step):
            pts = [(float(ts), float(v)) for ts, v in s["values"]]
            out.append((legend(t.get("legendFormat"), s["metric"], t["expr"]), pts))
    out.sort(key=lambda s: natural_key(s[0]))
    return out


def style_axes(ax, unit):
    ax.set_facecolor(PANEL)
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    ax.grid(True, color=BORDER, linewidth=0.6)
    ax.yaxis.set_major_formatter(axis_formatter(unit))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.timezone.utc))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))


def legend_layout(names, panel_px):
    """Columns and rows of a legend of these names under a panel this wide."""
    if not names:
        return 1, 0
    longest = max(len(n) for n in names)
    ncol = max(1, min(len(names), int((panel_px - 40) // (longest * 4.3 + 28))))
    return ncol, math.ceil(len(names) / ncol)


def draw_timeseries(ax, panel, series, start, end, step, panel_px):
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    custom = defaults.get("custom", {})
    stacked = custom.get("stacking", {}).get("mode", "none") != "none"
    bars = custom.get("drawStyle") == "bars"
    fill = custom.get("fillOpacity", 0) / 100.0
    style_axes(ax, unit)
    if not series:
        ax.text(0.5, 0.5, "No data", color=MUTED, ha="center", va="center", transform=ax.transAxes, fontsize=10)
        ax.set_xlim(mdates.date2num(dt.datetime.fromtimestamp(start, dt.timezone.utc)),
                    mdates.date2num(dt.datetime.fromtimestamp(end, dt.timezone.utc)))
        ax.set_yticks([])
        return
    grid = [start + i * step for i in range(int((end - start) // step) + 1)]
    xs = [dt.datetime.fromtimestamp(x, dt.timezone.utc) for x in grid]
    right = None
    base = [0.0] * len(grid)
    handles = []
    for i, (name, pts) in enumerate(series):
        color = override_color(panel, name) or PALETTE[i % len(PALETTE)]
        props = override_props(panel, name)
        values = dict(pts)
        ys = [values.get(x) for x in grid]
        target = ax
        if props.get("custom.axisPlacement") == "right":
            if right is None:
                right = ax.twinx()
                style_axes(right, props.get("unit", unit))
                right.grid(False)
            target = right
        if stacked and target is ax:
            top = [b + (y or 0.0) for b, y in zip(base, ys)]
            if bars:
                width = step / 86400.0 * 0.9
                h = ax.bar(xs, [y or 0.0 for y in ys], width=width, bottom=base, color=color, alpha=0.85, linewidth=0, label=name)
            else:
                ax.fill_between(xs, base, top, color=color, alpha=max(fill, 0.35), linewidth=0)
                (h,) = ax.plot(xs, top, color=color, linewidth=1.2, label=name)
            base = top
        else:
            plain = [float("nan") if y is None else y for y in ys]
            (h,) = target.plot(xs, plain, color=color, linewidth=1.4, label=name)
            if fill > 0:
                target.fill_between(xs, plain, color=color, alpha=fill * 0.6, linewidth=0)
        handles.append(h)
    ax.set_xlim(xs[0], xs[-1])
    lo, hi = ax.get_ylim()
    ax.set_ylim(0 if custom.get("axisSoftMin", 0) == 0 and lo >= -1e-9 else lo, hi if hi > 0 else 1)
    if right is not None:
        rlo, rhi = right.get_ylim()
        right.set_ylim(0, rhi if rhi > 0 else 1)
    ncol, _ = legend_layout([n for n, _ in series], panel_px)
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(-0.04, -0.08), ncol=ncol,
                    fontsize=6.5, frameon=False, labelcolor=TEXT, handlelength=1.2, columnspacing=1.0)
    leg.set_in_layout(False)


def draw_stat(ax, panel, series):
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(False)
    vals = [v for _, pts in series for _, v in pts]
    last = None
    if series:
        # lastNotNull of the sum of the series (the stats have one series each).
        last = sum(pts[-1][1] for _, pts in series if pts)
    steps = defaults.get("thresholds", {}).get("steps", [])
    color = NAMED["green"]
    for s in steps:
        if s.get("value") is None or (last is not None and last >= s["value"]):
            color = NAMED.get(s["color"], s["color"])
    text = human(last, unit) if last is not None else "No data"
    if last is not None and defaults.get("decimals") == 0 and unit not in ("s",):
        text = human(float(round(last)), unit)
    for m in defaults.get("mappings", []):
        if m.get("type") == "value" and last is not None:
            hit = m["options"].get(str(int(last))) if last == int(last) else None
            if hit:
                text = hit.get("text", text)
                color = NAMED.get(hit.get("color"), color)
    if last is None:
        color = BORDER
    ax.set_facecolor(color)
    if series and panel.get("options", {}).get("graphMode") == "area" and len(vals) > 1:
        pts = series[0][1]
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        top = max(ys) or 1
        ax.fill_between(xs, [y / top * 0.45 for y in ys], color="white", alpha=0.18, linewidth=0)
        ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(0, 1)
    ax.text(0.5, 0.52, text, color="white" if last is not None else MUTED, ha="center", va="center",
            transform=ax.transAxes, fontsize=20, fontweight="bold")


def draw_pie(ax, panel, prom, start, end, step, rate_interval):
    rng = prom_duration(end - start)
    items = []
    for t in panel.get("targets", []):
        expr = expand(t["expr"], rate_interval, prom_duration(step), rng)
        for s in prom.instant(expr, end):
            v = float(s["value"][1])
            if v > 0.5:
                items.append((legend(t.get("legendFormat"), s["metric"], t["expr"]), v))
    ax.set_facecolor(PANEL)
    if not items:
        ax.text(0.5, 0.5, "No data", color=MUTED, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    items.sort(key=lambda kv: -kv[1])
    total = sum(v for _, v in items)
    colors = []
    for i, (name, _) in enumerate(items):
        outcome = name.split(" ")[0]
        colors.append(override_color(panel, name) or {
            "provisioned": NAMED["green"], "failed": NAMED["red"], "pending_user_action": NAMED["yellow"],
            "none": NAMED["purple"]}.get(outcome, PALETTE[i % len(PALETTE)]))
    # Shades for several reasons of one outcome.
    seen = {}
    for i, (name, _) in enumerate(items):
        outcome = name.split(" ")[0]
        n = seen.get(outcome, 0)
        seen[outcome] = n + 1
        if n:
            r, g, b = matplotlib.colors.to_rgb(colors[i])
            f = 1 - 0.22 * n
            colors[i] = (r * f, g * f, b * f)
    ax.pie([v for _, v in items], colors=colors, startangle=90, counterclock=False,
           wedgeprops={"width": 0.38, "edgecolor": PANEL, "linewidth": 1})
    ax.set_aspect("equal")
    labels = [f"{name}  {v:.0f} ({v / total:.0%})" for name, v in items]
    leg = ax.legend(labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6.5, frameon=False, labelcolor=TEXT,
                    handlelength=1.0)
    for h, c in zip(leg.legend_handles, colors):
        h.set_color(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--start", required=True, type=parse_time, help="start: unix seconds or RFC 3339")
    ap.add_argument("--end", required=True, type=parse_time, help="end: unix seconds or RFC 3339")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--dashboard", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "grafana",
                                                        "dashboards", "wholesale-provisioner.json"))
    ap.add_argument("--step", type=parse_duration, default=None, help="resolution (default: range / 240)")
    ap.add_argument("--rate-interval", default=None, help="value of $__rate_interval (default: 4 steps, at least 1m)")
    ap.add_argument("--title", default=None, help="subtitle under the dashboard's title")
    ap.add_argument("--max-bytes", type=int, default=300_000, help="fail when the PNG is larger (default 300000)")
    a = ap.parse_args()
    if a.end <= a.start:
        ap.error("--end must be after --start")
    step = a.step or max(1.0, (a.end - a.start) / 240)
    rate_interval = a.rate_interval or prom_duration(max(60.0, 4 * step))

    dash = json.load(open(a.dashboard))
    prom = Prometheus(a.prometheus)
    panels = []
    for p in dash["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)

    unit_px, col_px, pad = 30, 74, 8
    width = 24 * col_px + pad
    header = 70
    height = header + rows * unit_px + pad
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BG)

    def box(g, top_pad=22, bottom_pad=6, left_pad=6, right_pad=6):
        x0 = (g["x"] * col_px + pad + left_pad) / width
        x1 = ((g["x"] + g["w"]) * col_px - right_pad) / width
        y_top = header + g["y"] * unit_px
        y1 = 1 - (y_top + top_pad) / height
        y0 = 1 - (y_top + g["h"] * unit_px - bottom_pad - pad) / height
        return [x0, y0, x1 - x0, y1 - y0]

    start_s = dt.datetime.fromtimestamp(a.start, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    end_s = dt.datetime.fromtimestamp(a.end, dt.timezone.utc).strftime("%H:%M:%S UTC")
    fig.text(pad / width, 1 - 24 / height, dash.get("title", ""), color=TEXT, fontsize=16, fontweight="bold", va="center")
    sub = f"{start_s} – {end_s}" + (f" · {a.title}" if a.title else "")
    fig.text(pad / width, 1 - 50 / height, sub, color=MUTED, fontsize=9, va="center")

    for p in sorted(panels, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        g = p["gridPos"]
        if p["type"] == "row":
            y = 1 - (header + g["y"] * unit_px + unit_px * 0.6) / height
            fig.text((g["x"] * col_px + pad) / width, y, p.get("title", ""), color=TEXT, fontsize=11, fontweight="bold", va="center")
            continue
        # The panel's frame and title.
        frame = fig.add_axes(box(g, 0, 0, 0, 0))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for sp in frame.spines.values():
            sp.set_color(BORDER)
        frame.text(0.012 * 24 / g["w"], 1 - 12 / (g["h"] * unit_px - pad), p.get("title", ""), color=TEXT, fontsize=8.5,
                   fontweight="bold", va="center", transform=frame.transAxes)
        try:
            if p["type"] == "stat":
                ax = fig.add_axes(box(g, 24, 6, 6, 6))
                draw_stat(ax, p, series_of(prom, p, a.start, a.end, step, rate_interval))
            elif p["type"] == "piechart":
                ax = fig.add_axes(box(g, 26, 8, 4, g["w"] * col_px * 0.48))
                draw_pie(ax, p, prom, a.start, a.end, step, rate_interval)
            elif p["type"] == "timeseries":
                series = series_of(prom, p, a.start, a.end, step, rate_interval)
                _, legend_rows = legend_layout([n for n, _ in series], g["w"] * col_px)
                ax = fig.add_axes(box(g, 26, 22 + 11 * max(1, legend_rows), 36, 40))
                draw_timeseries(ax, p, series, a.start, a.end, step, g["w"] * col_px)
            else:
                print(f"render-dashboard: panel type {p['type']} ({p.get('title')}) is not drawn", file=sys.stderr)
        except RuntimeError as e:
            sys.exit(f"render-dashboard: panel {p.get('title')!r}: {e}")

    fig.savefig(a.out, dpi=dpi, facecolor=BG)
    plt.close(fig)
    shrink(a.out)
    size = len(open(a.out, "rb").read())
    print(f"render-dashboard: wrote {a.out} ({size // 1000} KB, {width}x{height}, step {step:g}s, rate interval {rate_interval})")
    if size > a.max_bytes:
        sys.exit(f"render-dashboard: {a.out} is {size} bytes, more than --max-bytes {a.max_bytes}")


def shrink(path):
    """Re-encode the PNG with a 256-colour palette: a chart needs no more, and it is a fraction of the size."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


if __name__ == "__main__":
    main()
