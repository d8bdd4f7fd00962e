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
BAND_COLOURS = {1: "#b2182b", 2: "#ef8a62", 3: "#fddbc7", 4: "#d1e5f0", 5: "#67a9cf", 6: "#2166ac"}


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

    def px(self, x: ArrayLike) -> np.ndarray:
        x0, x1 = self.xlim
        span = (x1 - x0) or 1.0
        return self.left + (np.asarray(x, float) - x0) / span * (
            self.width - self.left - self.right
        )

    def py(self, y: ArrayLike) -> np.ndarray:
        y0, y1 = self.ylim
        span = (y1 - y0) or 1.0
        inner = self.height - self.top - self.bottom
        return self.top + inner - (np.asarray(y, float) - y0) / span * inner

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
        for t in nice_ticks(*self.ylim):
            y = _fmt(float(self.py(t)))
            p.append(f'<line x1="{x0 - 4}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/>')
            p.append(
                f'<text x="{x0 - 6}" y="{y}" dy="0.32em" text-anchor="end">{escape(tick_label(t))}</text>'
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
    ) -> None:
        self.x = np.asarray(x, float)
        self.y = np.asarray(y, float)
        self.labels = list(labels)
        self.title = title
        self.width = width
        ok = np.isfinite(self.x) & np.isfinite(self.y)
        self.ok = ok
        xmax = float(np.max(self.x[ok])) if ok.any() else 1.0
        ylo = min(float(np.min(self.y[ok])), target) if ok.any() else target
        yhi = max(float(np.max(self.y[ok])), target) if ok.any() else target
        # Show the limits across the points' range, but never let them dominate the scale.
        for lim in limits:
            inside = (lim.x >= 0.25 * xmax) & np.isfinite(lim.lower) & np.isfinite(lim.upper)
            if inside.any():
                ylo = min(ylo, float(np.min(lim.lower[inside])))
                yhi = max(yhi, float(np.max(lim.upper[inside])))
        # Top margin holds the title (first line) and the legend (second line).
        frame = Frame(
            xlim=(0.0, xmax * 1.04), ylim=_padded(ylo, yhi), width=width, height=height, top=40
        )
        self.frame = frame
        clip_id = f"{id_prefix}-clip"
        frame.parts.append(f"<defs>{frame.clip(clip_id)}</defs>")
        frame.axes(xlabel, ylabel, title)
        frame.polyline(frame.xlim, [target, target], "#333", width=1.0)
        ordered = sorted(limits, key=lambda lim: lim.level)
        for lim in ordered:
            colour, dash = LIMIT_STYLES.get(round(lim.level, 3), ("#555", "2 2"))
            frame.polyline(lim.x, lim.lower, colour, dash, clip_id=clip_id)
            frame.polyline(lim.x, lim.upper, colour, dash, clip_id=clip_id)
        self.px, self.py = frame.px(self.x), frame.py(self.y)
        parts = frame.parts
        parts.append(f'<g clip-path="url(#{clip_id})">')
        flags = [str(f) for f in flags]
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
        parts.append("</g>")
        # Legend in the top margin, right-aligned, one entry per level.
        lx = width - frame.right - 100 * len(ordered)
        for lim in ordered:
            colour, dash = LIMIT_STYLES.get(round(lim.level, 3), ("#555", "2 2"))
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<line x1="{lx}" y1="31" x2="{lx + 18}" y2="31" stroke="{colour}"{dash_attr}/>'
            )
            parts.append(
                f'<text x="{lx + 22}" y="31" dy="0.32em">{lim.level * 100:g}% limits</text>'
            )
            lx += 100
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
    )
    return fig.svg(highlight)


def _month_axis(months: Sequence[str]) -> tuple[np.ndarray, list[tuple[float, str]]]:
    idx = np.arange(len(months), dtype=float)
    step = max(1, len(months) // 6)
    ticks = [(float(i), str(months[i])) for i in range(0, len(months), step)]
    return idx, ticks


def _series_svg(
    months: Sequence[str],
    series: ArrayLike,
    *,
    title: str,
    ylabel: str,
    threshold: ArrayLike | None = None,
    signals: ArrayLike | None = None,
    width: int = 560,
    height: int = 240,
) -> str:
    values = np.asarray(series, float)
    idx, ticks = _month_axis(months)
    lo = min(0.0, float(np.nanmin(values))) if values.size else 0.0
    hi = max(0.0, float(np.nanmax(values))) if values.size else 1.0
    thr = None if threshold is None else np.asarray(threshold, float)
    if thr is not None and thr.size:
        hi = max(hi, float(np.nanmax(thr)))
    frame = Frame(
        xlim=(-0.5, max(len(months) - 0.5, 0.5)), ylim=_padded(lo, hi), width=width, height=height
    )
    # Month labels instead of numeric x ticks.
    x0, y0 = frame.left, frame.height - frame.bottom
    x1, y1 = frame.width - frame.right, frame.top
    p = frame.parts
    p.append(
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff" stroke="#999"/>'
    )
    for pos, text in ticks:
        x = _fmt(float(frame.px(pos)))
        p.append(f'<text x="{x}" y="{y0 + 15}" text-anchor="middle">{escape(text)}</text>')
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
    if thr is not None and thr.size:
        frame.polyline(idx, np.broadcast_to(thr, idx.shape), "#cc3311", "5 3")
    frame.polyline(idx, values, "#0072b2", width=1.8)
    for i in range(len(values)):
        if np.isfinite(values[i]):
            p.append(
                f'<circle cx="{_fmt(frame.px(i))}" cy="{_fmt(frame.py(values[i]))}" r="2.5" fill="#0072b2"/>'
            )
    if signals is not None:
        for i in np.flatnonzero(np.asarray(signals, bool)):
            p.append(
                f'<circle cx="{_fmt(frame.px(i))}" cy="{_fmt(frame.py(values[i]))}" r="6" fill="none" '
                f'stroke="#d55e00" stroke-width="2"><title>signal {escape(str(months[i]))}</title></circle>'
            )
    return frame.svg(title)


def cusum_svg(
    months: Sequence[str], cusum: ArrayLike, threshold: ArrayLike, signals: ArrayLike, *, title: str
) -> str:
    """Risk-adjusted CUSUM path by month with its threshold h and signal points (Steiner 2000)."""
    return _series_svg(
        months, cusum, title=title, ylabel="CUSUM", threshold=threshold, signals=signals
    )


def vlad_svg(months: Sequence[str], observed: ArrayLike, expected: ArrayLike, *, title: str) -> str:
    """Variable life-adjusted display: cumulative expected minus observed deaths.

    Falling below zero means more deaths than expected (Lovegrove et al. 1997).
    """
    vlad = np.cumsum(np.asarray(expected, float) - np.asarray(observed, float))
    return _series_svg(months, vlad, title=title, ylabel="expected - observed (cumulative)")


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
):
    """Draw a funnel plot on a matplotlib ``Axes`` (same conventions as :func:`funnel_svg`)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    colours = [FLAG_COLOURS.get(f, "#7a7a7a") for f in flags] if flags is not None else "#555"
    ax.scatter(x, y, s=12, c=colours, alpha=0.8, zorder=3)
    ax.axhline(target, color="#333", lw=1)
    for lim in sorted(limits, key=lambda lim: lim.level):
        colour, dash = LIMIT_STYLES.get(round(lim.level, 3), ("#555", "2 2"))
        style = "--" if dash else "-"
        ax.plot(lim.x, lim.lower, style, color=colour, lw=1, label=f"{lim.level * 100:g}% limits")
        ax.plot(lim.x, lim.upper, style, color=colour, lw=1)
    ok = np.isfinite(y)
    if ok.any():
        pad = 0.1 * (np.max(y[ok]) - np.min(y[ok]) or 1)
        ax.set_ylim(min(np.min(y[ok]), target) - pad, max(np.max(y[ok]), target) + pad)
    ax.set_xlim(0, np.nanmax(x) * 1.04 if np.isfinite(x).any() else 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper right", fontsize=8)
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
    """Draw a CUSUM path with its threshold and signals on a matplotlib ``Axes``."""
    idx = np.arange(len(months))
    c = np.asarray(cusum, float)
    ax.plot(idx, c, "-o", ms=3, color="#0072b2")
    ax.plot(
        idx,
        np.broadcast_to(np.asarray(threshold, float), idx.shape),
        "--",
        color="#cc3311",
        label="h",
    )
    sig = np.asarray(signals, bool)
    ax.scatter(idx[sig], c[sig], s=80, facecolors="none", edgecolors="#d55e00", label="signal")
    ax.set_xticks(idx[:: max(1, len(idx) // 6)], [months[i] for i in idx[:: max(1, len(idx) // 6)]])
    ax.set_title(title)
    ax.set_ylabel("CUSUM")
    ax.legend(fontsize=8)
    return ax


def vlad_axes(
    ax, months: Sequence[str], observed: ArrayLike, expected: ArrayLike, *, title: str = ""
):
    """Draw a VLAD (cumulative expected minus observed) on a matplotlib ``Axes``."""
    idx = np.arange(len(months))
    vlad = np.cumsum(np.asarray(expected, float) - np.asarray(observed, float))
    ax.plot(idx, vlad, "-o", ms=3, color="#0072b2")
    ax.axhline(0, color="#333", lw=1)
    ax.set_xticks(idx[:: max(1, len(idx) // 6)], [months[i] for i in idx[:: max(1, len(idx) // 6)]])
    ax.set_title(title)
    ax.set_ylabel("expected - observed deaths")
    return ax
