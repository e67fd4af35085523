"""Small SVG line charts for the dossier: the service's yearly series over its peers'
10–90 % band (national, shaded) and regional median (dashed). Plain SVG elements that
WeasyPrint draws as vectors; every text is escaped."""
from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

BLUE = "#000091"
GREY_BAND = "#e3e3fd"
RED = "#ce0500"
TEXT = "#3a3a3a"


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        lo, hi = lo - (abs(lo) * 0.1 or 1.0), hi + (abs(hi) * 0.1 or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 0.5 and len(ticks) < 12:
        ticks.append(round(t, 10))
        t += step
    return ticks


def series_chart(frame: pd.DataFrame, fmt, title: str, width: int = 330, height: int = 150) -> str:
    """``frame``: year, value, nat_p10, nat_p90, region_median (NaN allowed). ``fmt`` formats
    an axis value; ``title`` labels the image for screen readers (the page prints the
    title above the chart, where a long title can wrap). Returns an <svg> element."""
    left, right, top, bottom = 58, 10, 8, 26
    years = frame["year"].astype(int).tolist()
    cols = [c for c in ("value", "nat_p10", "nat_p90", "region_median") if c in frame]
    vals = frame[cols].to_numpy(dtype=float)
    finite = vals[np.isfinite(vals)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ticks = _nice_ticks(lo, hi)
    y0, y1 = min(ticks[0], lo), max(ticks[-1], hi)
    pw, ph = width - left - right, height - top - bottom

    def x(year: int) -> float:
        if len(years) == 1:
            return left + pw / 2
        return left + pw * (year - years[0]) / (years[-1] - years[0])

    def y(v: float) -> float:
        return top + ph * (1 - (v - y0) / ((y1 - y0) or 1.0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for t in ticks:
        if y0 - 1e-9 <= t <= y1 + 1e-9:
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                         f'stroke="#dddddd" stroke-width="0.6"/>')
            parts.append(f'<text x="{left - 4}" y="{y(t) + 3:.1f}" font-size="8" text-anchor="end" '
                         f'fill="{TEXT}">{escape(fmt(t))}</text>')
    for yr in years:
        parts.append(f'<text x="{x(yr):.1f}" y="{height - bottom + 12}" font-size="8" text-anchor="middle" '
                     f'fill="{TEXT}">{yr}</text>')
    band = frame[["year", "nat_p10", "nat_p90"]].dropna() if {"nat_p10", "nat_p90"} <= set(frame) else frame[[]]
    if len(band) >= 2:
        upper = " ".join(f"{x(int(r.year)):.1f},{y(r.nat_p90):.1f}" for r in band.itertuples())
        lower = " ".join(f"{x(int(r.year)):.1f},{y(r.nat_p10):.1f}" for r in list(band.itertuples())[::-1])
        parts.append(f'<polygon points="{upper} {lower}" fill="{GREY_BAND}" stroke="none"/>')
    elif len(band) == 1:
        r = next(band.itertuples())
        parts.append(f'<rect x="{x(int(r.year)) - 8:.1f}" y="{y(r.nat_p90):.1f}" width="16" '
                     f'height="{max(1.0, y(r.nat_p10) - y(r.nat_p90)):.1f}" fill="{GREY_BAND}"/>')
    if "region_median" in frame:
        med = frame[["year", "region_median"]].dropna()
        if len(med):
            pts = " ".join(f"{x(int(r.year)):.1f},{y(r.region_median):.1f}" for r in med.itertuples())
            parts.append(f'<polyline points="{pts}" fill="none" stroke="#666666" stroke-width="1.2" '
                         f'stroke-dasharray="4 3"/>')
    own = frame[["year", "value"]].dropna()
    if len(own):
        pts = " ".join(f"{x(int(r.year)):.1f},{y(r.value):.1f}" for r in own.itertuples())
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
        for r in own.itertuples():
            parts.append(f'<circle cx="{x(int(r.year)):.1f}" cy="{y(r.value):.1f}" r="2.6" fill="{BLUE}"/>')
    parts.append("</svg>")
    return "".join(parts)


def legend() -> str:
    """The legend shared by every chart of the dossier."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="460" height="16" viewBox="0 0 460 16">'
            f'<line x1="2" x2="22" y1="8" y2="8" stroke="{BLUE}" stroke-width="2"/>'
            f'<text x="26" y="11" font-size="9" fill="{TEXT}">Service</text>'
            f'<line x1="80" x2="100" y1="8" y2="8" stroke="#666666" stroke-width="1.2" stroke-dasharray="4 3"/>'
            f'<text x="104" y="11" font-size="9" fill="{TEXT}">Médiane régionale</text>'
            f'<rect x="205" y="3" width="20" height="10" fill="{GREY_BAND}"/>'
            f'<text x="229" y="11" font-size="9" fill="{TEXT}">Pairs nationaux, 10 % à 90 %</text>'
            f'</svg>')
