"""Figures for the reports as small, self-contained inline SVG strings.

The site draws ~160 national funnel plots and one highlighted copy per flagged indicator on every
trust page, so figures are written directly as SVG from numpy arrays: a few kilobytes each,
deterministic (no random ids, no timestamps) and far faster than a matplotlib round trip. Every
piece of text that comes from data is escaped (``html.escape``), so a name such as
``<script>`` is shown as text inside the SVG too. Matplotlib versions for the notebooks are in
:func:`funnel_axes`, :func:`cusum_axes` and :func:`vlad_axes`.

The limits themselves are computed by :mod:`surveillance.stats` (see
:func:`surveillance.reports.funnels.funnel_plot_data`); this module only draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
from numpy.typing import ArrayLike

#: Colours (colour-blind safe, Okabe-Ito) for points by flag and for limit lines by level.
FLAG_COLOURS = {
    "no_evidence": "#7a7a7a",
    "risk": "#e69f00",
    "elevated_risk": "#d55e00",
    "low": "#0072b2",
}
LIMIT_STYLES = {0.95: ("#0072b2", "4 3"), 0.998: ("#cc3311", "")}
#: point legend labels, in legend order
POINT_LEGEND = {
    "no_evidence": "no evidence",
    "risk": "risk",
    "elevated_risk": "elevated risk",
}
#: at most this many outliers are named on a national funnel (the most extreme first)
MAX_OUTLIER_LABELS = 12
BAND_COLOURS = {1: "#b2182b", 2: "#ef8a62", 3: "#fddbc7", 4: "#d1e5f0", 5: "#67a9cf", 6: "#2166ac"}


def _short(text: str, n: int = 28) -> str:
    """A label cut to ``n`` characters (names of outliers beside their points)."""
    text = str(text)
    return text if len(text) <= n else text[: n - 1].rstrip() + "\u2026"


def _fmt(v: float) -> str:
    """Compact coordinate: one decimal place, no trailing zeros."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (Heckbert's nice numbers)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def tick_label(v: float) -> str:
    """Short tick label: thousands as 12k, otherwise up to three significant decimals."""
    if abs(v) >= 10000:
        return f"{v / 1000:g}k"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def percent_label(v: float) -> str:
    """A proportion as a percentage tick (0.86 -> 86%, 0.125 -> 12.5%)."""
    return f"{v * 100:.3g}%"


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis over [lo, hi] (lo > 0): 1, 2, 5 times powers of ten, or only the
    powers of ten when that would give more than about eight ticks."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi <= lo:
        return []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if k1 - k0 <= 3 else (1,)
    ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in steps]
    return [round(t, 12) for t in ticks if lo <= t <= hi]


#: a ratio axis turns logarithmic when its positive values span at least this factor
LOG_SPAN = 20.0


@dataclass
class Frame:
    """A plotting frame mapping data coordinates to SVG pixels (y grows downwards)."""

    xlim: tuple[float, float]
    ylim: tuple[float, float]
    width: int = 560
    height: int = 320
    left: int = 58
    right: int = 14
    top: int = 28
    bottom: int = 44
    parts: list[str] = field(default_factory=list)
    #: log10 y axis (ylim in data units, > 0)
    ylog: bool = False
    #: y tick labels as percentages (proportions)
    ypercent: bool = False

    def _yscale(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, float)
        if not self.ylog:
            return y
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), -np.inf)

    def yticks(self) -> list[float]:
        return log_ticks(*self.ylim) if self.ylog else nice_ticks(*self.ylim)

    def ylabel_of(self, v: float) -> str:
        return percent_label(v) if self.ypercent else tick_label(v)

    def px(self, x: ArrayLike) -> np.ndarray:
        x0, x1 = self.xlim
        span = (x1 - x0) or 1.0
        return self.left + (np.asarray(x, float) - x0) / span * (
            self.width - self.left - self.right
        )

    def py(self, y: ArrayLike) -> np.ndarray:
        y0, y1 = (float(v) for v in self._yscale(self.ylim))
        span = (y1 - y0) or 1.0
        inner = self.height - self.top - self.bottom
        return self.top + inner - (self._yscale(y) - y0) / span * inner

    def axes(self, xlabel: str, ylabel: str, title: str) -> None:
        x0, y0 = self.left, self.height - self.bottom
        x1, y1 = self.width - self.right, self.top
        p = self.parts
        p.append(
            f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff" stroke="#999"/>'
        )
        for t in nice_ticks(*self.xlim):
            x = _fmt(float(self.px(t)))
            p.append(f'<line x1="{x}" y1="{y0}" x2="{x}" y2="{y0 + 4}" stroke="#666"/>')
            p.append(
                f'<text x="{x}" y="{y0 + 15}" text-anchor="middle">{escape(tick_label(t))}</text>'
            )
        for t in self.yticks():
            y = _fmt(float(self.py(t)))
            p.append(f'<line x1="{x0 - 4}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/>')
            p.append(
                f'<text x="{x0 - 6}" y="{y}" dy="0.32em" text-anchor="end">{escape(self.ylabel_of(t))}</text>'
            )
        p.append(
            f'<text x="{(x0 + x1) / 2:.0f}" y="{self.height - 8}" text-anchor="middle">{escape(xlabel)}</text>'
        )
        p.append(
            f'<text transform="translate(13 {(y0 + y1) / 2:.0f}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
        )
        p.append(f'<text x="{x0}" y="17" font-weight="bold">{escape(title)}</text>')

    def clip(self, clip_id: str) -> str:
        x0, y1 = self.left, self.top
        w = self.width - self.left - self.right
        h = self.height - self.top - self.bottom
        return f'<clipPath id="{clip_id}"><rect x="{x0}" y="{y1}" width="{w}" height="{h}"/></clipPath>'

    def polyline(
        self,
        x: ArrayLike,
        y: ArrayLike,
        colour: str,
        dash: str = "",
        width: float = 1.4,
        clip_id: str = "",
    ) -> None:
        xs, ys = self.px(x), self.py(y)
        ok = np.isfinite(xs) & np.isfinite(ys)
        if ok.sum() < 2:
            return
        # Clamp far-off values so the path stays short and valid; the clip path hides them.
        ys = np.clip(ys, -2 * self.height, 3 * self.height)
        pts = " ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in zip(xs[ok], ys[ok], strict=True))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        clip_attr = f' clip-path="url(#{clip_id})"' if clip_id else ""
        self.parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr}{clip_attr}/>'
        )

    def svg(self, label: str, css_class: str = "fig") -> str:
        body = "".join(self.parts)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
            f'aria-label="{escape(label)}" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" font-family="sans-serif" font-size="11">'
            f"<title>{escape(label)}</title>{body}</svg>"
        )


@dataclass(frozen=True)
class FunnelLimits:
    """Funnel limits on the plotted scale over a grid of the precision axis."""

    level: float
    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _padded(lo: float, hi: float, frac: float = 0.06) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (0.0, 1.0)
    if hi <= lo:
        return (lo - 0.5, hi + 0.5)
    pad = (hi - lo) * frac
    return (lo - pad, hi + pad)


class FunnelFigure:
    """A funnel plot (x = precision, y = value, target line, limit curves) drawn once and
    re-used: :meth:`svg` adds only the highlighted unit, so the same indicator's plot on many
    trust pages costs one string join each.

    ``compact`` draws the units with no evidence of risk as one SVG path of round dots (a few
    bytes each, no tooltip) and only flagged units as circles with their name as tooltip.
    ``point_ids`` (non-compact) become element ids (e.g. ``t-RXX``) so ``page.html#t-RXX``
    highlights a point with CSS ``:target``.

    Fit for print: a legend names the point colours (flags) and the limit lines, the target line
    is labelled with its value, ``label_outliers`` writes the names of up to
    :data:`MAX_OUTLIER_LABELS` flagged units beside their points (the national pages),
    ``percent`` shows a proportion axis as percentages, and a ratio axis (``log=None``: target 1
    and positive values spanning :data:`LOG_SPAN` or more) is drawn on a log scale, ratios of
    0 on its bottom edge.
    """

    def __init__(
        self,
        x: ArrayLike,
        y: ArrayLike,
        labels: Sequence[str],
        flags: Sequence[str],
        target: float,
        limits: Sequence[FunnelLimits],
        *,
        title: str,
        xlabel: str,
        ylabel: str,
        id_prefix: str = "f",
        point_ids: Sequence[str] | None = None,
        compact: bool = False,
        width: int = 560,
        height: int = 320,
        percent: bool = False,
        label_outliers: bool = False,
        log: bool | None = None,
    ) -> None:
        self.x = np.asarray(x, float)
        self.y = np.asarray(y, float)
        self.labels = list(labels)
        self.title = title
        self.width = width
        ok = np.isfinite(self.x) & np.isfinite(self.y)
        self.ok = ok
        flags = [str(f) for f in flags]
        xmax = float(np.max(self.x[ok])) if ok.any() else 1.0
        positive = self.y[ok & (self.y > 0)]
        if log is None:
            log = (
                target == 1.0
                and positive.size > 1
                and float(positive.max()) / float(positive.min()) >= LOG_SPAN
            )
        self.log = bool(log)
        if self.log:
            lo = min(float(positive.min()), target) if positive.size else target / 10
            hi = max(float(positive.max()), target) if positive.size else target * 10
        else:
            lo = min(float(np.min(self.y[ok])), target) if ok.any() else target
            hi = max(float(np.max(self.y[ok])), target) if ok.any() else target
        # Show the limits across the points' range, but never let them dominate the scale.
        for lim in limits:
            inside = (lim.x >= 0.25 * xmax) & np.isfinite(lim.lower) & np.isfinite(lim.upper)
            if self.log:
                inside &= lim.lower > 0
            if inside.any():
                lo = min(lo, float(np.min(lim.lower[inside])))
                hi = max(hi, float(np.max(lim.upper[inside])))
        ylim = (lo / 1.25, hi * 1.25) if self.log else _padded(lo, hi)
        # Top margin holds the title (first line) and the legends (second and third lines).
        frame = Frame(
            xlim=(0.0, xmax * 1.04),
            ylim=ylim,
            width=width,
            height=height,
            top=52,
            ylog=self.log,
            ypercent=percent,
        )
        self.frame = frame
        clip_id = f"{id_prefix}-clip"
        frame.parts.append(f"<defs>{frame.clip(clip_id)}</defs>")
        frame.axes(xlabel, ylabel + (" (log scale)" if self.log else ""), title)
        frame.polyline(frame.xlim, [target, target], "#333", width=1.0)
        target_text = percent_label(target) if percent else f"{target:.3g}"
        ty = _fmt(float(frame.py(target)))
        frame.parts.append(
            f'<text x="{width - frame.right - 4}" y="{ty}" dy="-3" text-anchor="end" '
            f'fill="#333">target {escape(target_text)}</text>'
        )
        ordered = sorted(limits, key=lambda lim: lim.level)
        for lim in ordered:
            colour, dash = LIMIT_STYLES.get(round(lim.level, 3), ("#555", "2 2"))
            frame.polyline(lim.x, lim.lower, colour, dash, clip_id=clip_id)
            frame.polyline(lim.x, lim.upper, colour, dash, clip_id=clip_id)
        shown_y = np.where(self.log & (self.y <= 0), frame.ylim[0], self.y) if self.log else self.y
        self.px, self.py = frame.px(self.x), frame.py(shown_y)
        parts = frame.parts
        parts.append(f'<g clip-path="url(#{clip_id})">')
        if compact:
            plain = [i for i in np.flatnonzero(ok) if flags[i] not in ("risk", "elevated_risk")]
            if plain:
                d = "".join(f"M{_fmt(self.px[i])} {_fmt(self.py[i])}h0" for i in plain)
                parts.append(
                    f'<path d="{d}" stroke="{FLAG_COLOURS["no_evidence"]}" stroke-width="6" '
                    'stroke-linecap="round" stroke-opacity="0.6" fill="none"/>'
                )
            shown = [i for i in np.flatnonzero(ok) if flags[i] in ("risk", "elevated_risk")]
        else:
            shown = list(np.flatnonzero(ok))
        for i in shown:
            colour = FLAG_COLOURS.get(flags[i], "#7a7a7a")
            pid = f' id="{escape(point_ids[i])}"' if point_ids is not None else ""
            r = 3 if flags[i] == "no_evidence" else 4
            parts.append(
                f'<circle{pid} cx="{_fmt(self.px[i])}" cy="{_fmt(self.py[i])}" r="{r}" '
                f'fill="{colour}" fill-opacity="0.75"><title>{escape(self.labels[i])}</title></circle>'
            )
        if label_outliers:
            flagged = [i for i in np.flatnonzero(ok) if flags[i] in ("risk", "elevated_risk")]
            # the most extreme first (furthest from the target on the plotted scale)
            dist = {i: abs(float(self.py[i]) - float(frame.py(target))) for i in flagged}
            for i in sorted(flagged, key=lambda i: (-dist[i], self.labels[i]))[:MAX_OUTLIER_LABELS]:
                anchor = "end" if self.px[i] > width * 0.7 else "start"
                dx = -6 if anchor == "end" else 6
                parts.append(
                    f'<text class="outlier" x="{_fmt(self.px[i])}" y="{_fmt(self.py[i])}" dx="{dx}" '
                    f'dy="-5" text-anchor="{anchor}" font-size="10">{escape(_short(self.labels[i]))}</text>'
                )
        parts.append("</g>")
        # Legends in the top margin, right-aligned: limit lines, then point colours.
        lx = width - frame.right - 100 * len(ordered)
        for lim in ordered:
            colour, dash = LIMIT_STYLES.get(round(lim.level, 3), ("#555", "2 2"))
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<line x1="{lx}" y1="29" x2="{lx + 18}" y2="29" stroke="{colour}"{dash_attr}/>'
            )
            parts.append(
                f'<text x="{lx + 22}" y="29" dy="0.32em">{lim.level * 100:g}% limits</text>'
            )
            lx += 100
        present = [f for f in POINT_LEGEND if f in set(flags[i] for i in np.flatnonzero(ok))]
        lx = width - frame.right - 110 * len(present)
        for f in present:
            parts.append(
                f'<circle cx="{lx + 5}" cy="43" r="4" fill="{FLAG_COLOURS[f]}" fill-opacity="0.75"/>'
            )
            parts.append(f'<text x="{lx + 13}" y="43" dy="0.32em">{POINT_LEGEND[f]}</text>')
            lx += 110
        if self.log and bool((self.y[ok] <= 0).any()):
            parts.append(
                f'<text x="{frame.left + 4}" y="{height - frame.bottom - 4}" fill="#555">'
                "ratio 0 (no events) drawn on the bottom edge</text>"
            )
        self._body = "".join(parts)

    def svg(self, highlight: int | None = None) -> str:
        """The figure, with unit ``highlight`` (a position) ringed and labelled."""
        extra = ""
        if highlight is not None and self.ok[highlight]:
            hx, hy = _fmt(self.px[highlight]), _fmt(self.py[highlight])
            anchor = "end" if self.px[highlight] > self.width * 0.7 else "start"
            dx = -10 if anchor == "end" else 10
            extra = (
                f'<circle cx="{hx}" cy="{hy}" r="7" fill="none" stroke="#000" stroke-width="2"/>'
                f'<text x="{hx}" y="{hy}" dx="{dx}" dy="-8" text-anchor="{anchor}" '
                f'font-weight="bold">{escape(self.labels[highlight])}</text>'
            )
        frame = self.frame
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="fig" role="img" '
            f'aria-label="{escape(self.title)}" viewBox="0 0 {frame.width} {frame.height}" '
            f'width="{frame.width}" height="{frame.height}" font-family="sans-serif" '
            f'font-size="11"><title>{escape(self.title)}</title>{self._body}{extra}</svg>'
        )


def funnel_svg(
    x: ArrayLike,
    y: ArrayLike,
    labels: Sequence[str],
    flags: Sequence[str],
    target: float,
    limits: Sequence[FunnelLimits],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    highlight: int | None = None,
    id_prefix: str = "f",
    point_ids: Sequence[str] | None = None,
    compact: bool = False,
    width: int = 560,
    height: int = 320,
    percent: bool = False,
    label_outliers: bool = False,
    log: bool | None = None,
) -> str:
    """One funnel plot as an SVG string (see :class:`FunnelFigure`)."""
    fig = FunnelFigure(
        x,
        y,
        labels,
        flags,
        target,
        limits,
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        id_prefix=id_prefix,
        point_ids=point_ids,
        compact=compact,
        width=width,
        height=height,
        percent=percent,
        label_outliers=label_outliers,
        log=log,
    )
    return fig.svg(highlight)


def month_number(month: str) -> int:
    """``YYYY-MM`` as months since year 0 (a real, evenly spaced time axis)."""
    year, mon = str(month)[:7].split("-")
    return int(year) * 12 + int(mon) - 1


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month_ticks(first: int, last: int) -> list[tuple[int, str]]:
    """Tick months (as :func:`month_number`) and labels (``Apr 2013``) over [first, last]:
    quarter starts for up to two years, half-years for up to four, else January."""
    span = last - first
    step = 3 if span <= 24 else 6 if span <= 48 else 12
    ticks = []
    for m in range(first, last + 1):
        if m % step == 0:
            ticks.append((m, f"{_MONTH_NAMES[m % 12]} {m // 12}"))
    if not ticks:
        ticks = [(first, f"{_MONTH_NAMES[first % 12]} {first // 12}")]
    return ticks


def _series_svg(
    months: Sequence[str],
    series: ArrayLike,
    *,
    title: str,
    ylabel: str,
    series_label: str,
    threshold: ArrayLike | None = None,
    signal_months: Sequence[str] = (),
    zero_label: str = "",
    note: str = "",
    width: int = 560,
    height: int = 260,
) -> str:
    """A monthly series on a real time axis (months at their dates, gaps shown as gaps), with a
    labelled threshold, marked signal months and a legend; the plotted points are also in the
    line's ``data-months`` / ``data-values`` attributes (what the figure shows, for readers of
    the page source and for the small-number check)."""
    values = np.asarray(series, float)
    x = np.array([month_number(m) for m in months], dtype=float)
    sig_x = [month_number(m) for m in signal_months]
    lo = min(0.0, float(np.nanmin(values))) if values.size else 0.0
    hi = max(0.0, float(np.nanmax(values))) if values.size else 1.0
    thr = None if threshold is None else np.asarray(threshold, float)
    if thr is not None and thr.size:
        hi = max(hi, float(np.nanmax(thr)))
    first = int(min([*x.tolist(), *sig_x])) if len(x) or sig_x else 0
    last = int(max([*x.tolist(), *sig_x])) if len(x) or sig_x else 1
    frame = Frame(
        xlim=(first - 0.5, max(last + 0.5, first + 0.5)),
        ylim=_padded(lo, hi),
        width=width,
        height=height,
        top=42,
        bottom=58 if note else 44,
    )
    x0, y0 = frame.left, frame.height - frame.bottom
    x1, y1 = frame.width - frame.right, frame.top
    p = frame.parts
    p.append(
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff" stroke="#999"/>'
    )
    for pos, text in month_ticks(first, last):
        px = _fmt(float(frame.px(pos)))
        p.append(f'<line x1="{px}" y1="{y0}" x2="{px}" y2="{y0 + 4}" stroke="#666"/>')
        p.append(f'<text x="{px}" y="{y0 + 15}" text-anchor="middle">{escape(text)}</text>')
    for t in nice_ticks(*frame.ylim):
        y = _fmt(float(frame.py(t)))
        p.append(f'<line x1="{x0 - 4}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/>')
        p.append(
            f'<text x="{x0 - 6}" y="{y}" dy="0.32em" text-anchor="end">{escape(tick_label(t))}</text>'
        )
    p.append(
        f'<text transform="translate(13 {(y0 + y1) / 2:.0f}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
    )
    p.append(f'<text x="{x0}" y="17" font-weight="bold">{escape(title)}</text>')
    p.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{y0 + 30}" text-anchor="middle">month</text>')
    if note:
        p.append(f'<text x="{x0}" y="{frame.height - 6}" fill="#555">{escape(note)}</text>')
    legend: list[tuple[str, str, str]] = [(series_label, "#0072b2", "")]
    if zero_label:
        frame.polyline(frame.xlim, [0.0, 0.0], "#333", width=1.0)
        zy = _fmt(float(frame.py(0.0)))
        p.append(
            f'<text x="{x1 - 4}" y="{zy}" dy="-3" text-anchor="end" fill="#333">{escape(zero_label)}</text>'
        )
    for sx in sig_x:
        px = _fmt(float(frame.px(sx)))
        p.append(
            f'<line class="signal" x1="{px}" y1="{y1}" x2="{px}" y2="{y0}" stroke="#d55e00" '
            'stroke-width="1.5" stroke-dasharray="2 2"/>'
        )
    if sig_x:
        legend.append(("signal month", "#d55e00", "2 2"))
    if thr is not None and thr.size:
        h = np.broadcast_to(thr, x.shape) if thr.size > 1 else np.full(2, float(thr.ravel()[0]))
        hx = x if thr.size > 1 else np.asarray(frame.xlim)
        frame.polyline(hx, h, "#cc3311", "5 3")
        last_h = float(np.asarray(h, float)[-1])
        hy = _fmt(float(frame.py(last_h)))
        p.append(
            f'<text x="{x1 - 4}" y="{hy}" dy="-4" text-anchor="end" fill="#cc3311">'
            f"threshold h = {last_h:.2f}</text>"
        )
        legend.append(("threshold h", "#cc3311", "5 3"))
    ok = np.isfinite(values)
    xs, ys = frame.px(x[ok]), frame.py(values[ok])
    data = (
        f' data-months="{escape(" ".join(str(m) for m, k in zip(months, ok, strict=True) if k))}"'
        f' data-values="{" ".join(f"{v:.3f}" for v in values[ok])}"'
    )
    if ok.sum() >= 2:
        pts = " ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in zip(xs, ys, strict=True))
        p.append(
            f'<polyline class="series" points="{pts}" fill="none" stroke="#0072b2" '
            f'stroke-width="1.8"{data}/>'
        )
    else:
        p.append(f'<g class="series"{data}></g>')
    for a, b in zip(xs, ys, strict=True):
        p.append(f'<circle cx="{_fmt(a)}" cy="{_fmt(b)}" r="2.5" fill="#0072b2"/>')
    lx = x1 - 112 * len(legend)
    for text, colour, dash in legend:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        p.append(
            f'<line x1="{lx}" y1="31" x2="{lx + 18}" y2="31" stroke="{colour}" stroke-width="1.8"{dash_attr}/>'
        )
        p.append(f'<text x="{lx + 22}" y="31" dy="0.32em">{escape(text)}</text>')
        lx += 112
    return frame.svg(title)


def cusum_svg(
    months: Sequence[str],
    cusum: ArrayLike,
    threshold: ArrayLike,
    signals: ArrayLike | None = None,
    *,
    title: str,
    signal_months: Sequence[str] | None = None,
    note: str = "",
) -> str:
    """Risk-adjusted CUSUM path by month with its labelled threshold h and its signal months
    (Steiner 2000), on a real time axis.

    ``signals`` (a flag per month) or ``signal_months`` mark the months with a signal;
    ``months`` may be the ends of grouped periods (:func:`surveillance.reports.suppress.safe_series`).
    """
    if signal_months is None:
        flags = np.zeros(len(months), bool) if signals is None else np.asarray(signals, bool)
        signal_months = [m for m, s in zip(months, flags, strict=True) if s]
    return _series_svg(
        months,
        cusum,
        title=title,
        ylabel="CUSUM",
        series_label="CUSUM",
        threshold=threshold,
        signal_months=signal_months,
        note=note,
    )


def vlad_svg(
    months: Sequence[str],
    observed: ArrayLike | None = None,
    expected: ArrayLike | None = None,
    *,
    title: str,
    vlad: ArrayLike | None = None,
    note: str = "",
) -> str:
    """Variable life-adjusted display: cumulative expected minus observed deaths.

    Falling below zero means more deaths than expected (Lovegrove et al. 1997). Give either the
    monthly ``observed`` and ``expected`` or the cumulative ``vlad`` itself (e.g. at the ends of
    grouped periods, :func:`surveillance.reports.suppress.safe_series`).
    """
    if vlad is None:
        vlad = np.cumsum(np.asarray(expected, float) - np.asarray(observed, float))
    return _series_svg(
        months,
        vlad,
        title=title,
        ylabel="expected - observed deaths",
        series_label="VLAD",
        zero_label="0 = as many deaths as expected",
        note=note,
    )


def probability_svg(
    probabilities: Sequence[float], band: str, *, width: int = 420, height: int = 56
) -> str:
    """Horizontal bar of the probability of each band (p_band_1..p_band_6)."""
    p = np.nan_to_num(np.asarray(probabilities, float), nan=0.0)
    total = p.sum()
    parts = []
    x = 4.0
    inner = width - 8
    for b, pb in enumerate(p, start=1):
        w = inner * (pb / total if total > 0 else 0)
        if w <= 0:
            continue
        stroke = ' stroke="#000" stroke-width="2"' if str(b) == str(band) else ""
        parts.append(
            f'<rect x="{_fmt(x)}" y="6" width="{_fmt(w)}" height="22" fill="{BAND_COLOURS[b]}"{stroke}>'
            f"<title>band {b}: {pb:.0%}</title></rect>"
        )
        if w > 26:
            colour = "#fff" if b in (1, 6) else "#000"
            parts.append(
                f'<text x="{_fmt(x + w / 2)}" y="21" text-anchor="middle" fill="{colour}">{b}</text>'
            )
        x += w
    parts.append(
        f'<text x="4" y="46">probability of each band (1 = look first); current band {escape(str(band))}</text>'
    )
    label = "band probabilities: " + ", ".join(
        f"band {b} {pb:.0%}" for b, pb in enumerate(p, start=1)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="prob" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="11"><title>{escape(label)}</title>{"".join(parts)}</svg>'
    )


# --- matplotlib versions for the notebooks ------------------------------------------------------


def _month_dates(months: Sequence[str]):
    """``YYYY-MM`` labels as mid-month dates (numpy datetime64) for a matplotlib time axis."""
    return np.array([np.datetime64(f"{str(m)[:7]}-15") for m in months])


def funnel_axes(
    ax,
    x: ArrayLike,
    y: ArrayLike,
    target: float,
    limits: Sequence[FunnelLimits],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    flags: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    percent: bool = False,
    log: bool | None = None,
    legend_loc: str = "best",
    highlight: int | None = None,
    highlight_label: str = "",
):
    """Draw a funnel plot on a matplotlib ``Axes`` (same conventions as :func:`funnel_svg`).

    ``highlight`` (a position) rings one unit and names it ``highlight_label`` (the unit
    studied; its colour still says its flag).

    Fit for print: the point colours have a legend entry each, ``labels`` name up to
    :data:`MAX_OUTLIER_LABELS` flagged points, ``percent`` formats a proportion axis as
    percentages, and a ratio axis (target 1) whose positive values span :data:`LOG_SPAN` or more
    is drawn on a log scale (``log=None``); ``legend_loc="below"`` puts the legend under the
    axes, where it cannot cover a limit line. The y range follows the points and the target, so
    limits of units with tiny expected counts (astronomically wide, e.g. 1e-53 to 1e+52) are
    clipped at the frame instead of setting the scale.
    """
    from matplotlib.ticker import FuncFormatter

    x = np.asarray(x, float)
    y = np.asarray(y, float)
    flags = [str(f) for f in flags] if flags is not None else ["no_evidence"] * len(x)
    ok = np.isfinite(x) & np.isfinite(y)
    positive = y[ok & (y > 0)]
    if log is None:
        log = (
            target == 1.0
            and positive.size > 1
            and float(positive.max()) / float(positive.min()) >= LOG_SPAN
        )
    for f in POINT_LEGEND:
        sel = ok & (np.asarray(flags) == f)
        if sel.any():
            shown = np.where(log & (y[sel] <= 0), np.nan, y[sel]) if log else y[sel]
            ax.scatter(
                x[sel], shown, s=14, c=FLAG_COLOURS[f], alpha=0.8, zorder=3, label=POINT_LEGEND[f]
            )
    ax.axhline(
        target,
        color="#333",
        lw=1,
        label=f"target {percent_label(target) if percent else f'{target:.3g}'}",
    )
    for lim in sorted(limits, key=lambda lim: lim.level):
        colour, dash = LIMIT_STYLES.get(round(lim.level, 3), ("#555", "2 2"))
        style = "--" if dash else "-"
        lower = np.where(np.asarray(lim.lower) > 0, lim.lower, np.nan) if log else lim.lower
        ax.plot(lim.x, lower, style, color=colour, lw=1, label=f"{lim.level * 100:g}% limits")
        ax.plot(lim.x, lim.upper, style, color=colour, lw=1)
    if log:
        ax.set_yscale("log")
        if positive.size:
            ax.set_ylim(min(positive.min(), target) / 1.5, max(positive.max(), target) * 1.5)
    elif ok.any():
        pad = 0.1 * (np.max(y[ok]) - np.min(y[ok]) or 1)
        ax.set_ylim(min(np.min(y[ok]), target) - pad, max(np.max(y[ok]), target) + pad)
    ax.set_xlim(0, np.nanmax(x) * 1.04 if np.isfinite(x).any() else 1)
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: percent_label(v)))
    if labels is not None:
        flagged = [i for i in np.flatnonzero(ok) if flags[i] in ("risk", "elevated_risk")]
        far = sorted(
            flagged,
            key=lambda i: (
                -abs(np.log(max(y[i], 1e-9) / target)) if log else -abs(y[i] - target),
                str(labels[i]),
            ),
        )
        for i in far[:MAX_OUTLIER_LABELS]:
            ax.annotate(
                _short(labels[i]),
                (x[i], y[i]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
    if highlight is not None and ok[highlight]:
        ax.scatter(
            [x[highlight]],
            [y[highlight]],
            s=90,
            facecolors="none",
            edgecolors="#000",
            linewidths=1.5,
            zorder=4,
            label=highlight_label or None,
        )
        if highlight_label:
            ax.annotate(
                _short(highlight_label),
                (x[highlight], y[highlight]),
                textcoords="offset points",
                xytext=(7, -12),
                fontsize=8,
                fontweight="bold",
            )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if log else ""))
    if legend_loc == "below":  # under the axes: the legend never covers a limit line
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8)
    else:
        ax.legend(loc=legend_loc, fontsize=8, framealpha=0.9)
    return ax


def cusum_axes(
    ax,
    months: Sequence[str],
    cusum: ArrayLike,
    threshold: ArrayLike,
    signals: ArrayLike,
    *,
    title: str = "",
):
    """Draw a CUSUM path with its labelled threshold and its signals on a matplotlib ``Axes``,
    months at their dates (a real time axis)."""
    import matplotlib.dates as mdates

    dates = _month_dates(months)
    c = np.asarray(cusum, float)
    h = np.broadcast_to(np.asarray(threshold, float), c.shape)
    ax.plot(dates, c, "-o", ms=3, color="#0072b2", label="CUSUM")
    ax.plot(
        dates,
        h,
        "--",
        color="#cc3311",
        label=f"threshold h = {float(h[-1]):.2f}" if len(h) else "threshold h",
    )
    sig = np.asarray(signals, bool)
    if sig.any():
        ax.scatter(
            dates[sig],
            c[sig],
            s=80,
            facecolors="none",
            edgecolors="#d55e00",
            label="signal",
            zorder=4,
        )
    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    ax.set_title(title)
    ax.set_xlabel("month")
    ax.set_ylabel("CUSUM")
    ax.legend(fontsize=8)
    return ax


def vlad_axes(
    ax, months: Sequence[str], observed: ArrayLike, expected: ArrayLike, *, title: str = ""
):
    """Draw a VLAD (cumulative expected minus observed) on a matplotlib ``Axes``, months at
    their dates. For analysts (the notebooks read the analytic run, which keeps small numbers)."""
    import matplotlib.dates as mdates

    dates = _month_dates(months)
    vlad = np.cumsum(np.asarray(expected, float) - np.asarray(observed, float))
    ax.plot(dates, vlad, "-o", ms=3, color="#0072b2", label="VLAD")
    ax.axhline(0, color="#333", lw=1, label="0 = as many deaths as expected")
    ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    ax.set_title(title)
    ax.set_xlabel("month")
    ax.set_ylabel("expected - observed deaths")
    ax.legend(fontsize=8)
    return ax
