"""Altair charts of the dashboard, drawn from the frames of monitor.readmodels (no statistics here).

Colours follow the DSFR: bleu France for the service, rouge Marianne for what is flagged,
greys for peers. Numbers and dates use the French locale.
"""
from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd

from monitor.vocabulary.formatting import fmt_value
from dashboard.ui import BLUE, BLUE_LIGHT, GREY, GREY_LIGHT, GREY_MID, RED
from monitor.vocabulary.catalogue import CATALOGUE

FR_LOCALE = {
    "number": {"decimal": ",", "thousands": "\u202f", "grouping": [3], "currency": ["", "\u00a0€"],
               "percent": "\u202f%"},
    "time": {"dateTime": "%A %e %B %Y à %X", "date": "%d/%m/%Y", "time": "%H:%M:%S", "periods": ["AM", "PM"],
             "days": ["dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
             "shortDays": ["dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."],
             "months": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
                        "octobre", "novembre", "décembre"],
             "shortMonths": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
                             "nov.", "déc."]},
}
FONT = "Marianne, Arial, 'Helvetica Neue', sans-serif"


def _finish(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    return (chart.configure(locale=FR_LOCALE, font=FONT)
            .configure_axis(labelColor="#3A3A3A", titleColor="#3A3A3A", gridColor="#EEEEEE", domainColor=GREY_MID)
            .configure_view(strokeWidth=0)
            .configure_legend(orient="bottom", labelLimit=400, titleColor="#3A3A3A"))


def _y_format(indicator: str) -> str:
    ind = CATALOGUE.get(indicator)
    if ind is None:
        return ",.2~f"
    if ind.kind == "proportion":
        return ".0%"
    if indicator == "cotisation_vs_cmn_ratio":
        return ".0%"
    return ",.4~g" if ind.kind == "rate" else ",.0f" if ind.kind in ("count", "level", "ratio") and \
        indicator not in ("physician_fte", "nurse_fte") else ",.1f"


def _dates(months: pd.Series) -> pd.Series:
    m = months.astype(int)
    return pd.to_datetime({"year": m // 12, "month": m % 12 + 1, "day": 1})


def series_layers(df: pd.DataFrame, indicator: str, *, compact: bool = False, title: str | None = None,
                  references: list[tuple[str, float]] | None = None):
    """Layers of one indicator's series: peers' 10–90 % band and median (grey), the service's
    99.8 % limits against peers (dotted blue), the service (blue) and flagged months (red)."""
    d = df.copy()
    d["date"] = _dates(d["month_index"])
    d["valeur"] = [fmt_value(indicator, v) for v in d["value"]]
    d["mediane"] = [fmt_value(indicator, v) if v == v else "n.d." for v in d["peer_median"]]
    d["signal"] = d["flag_categories"].fillna("")
    fmt = _y_format(indicator)
    x = alt.X("date:T", title=None, axis=alt.Axis(format="%b %Y", labelAngle=0, tickCount=6 if not compact else 3))
    ind = CATALOGUE.get(indicator)
    y_title = None if compact or ind is None or ind.kind == "proportion" or indicator == "cotisation_vs_cmn_ratio" \
        else ind.unit
    base = alt.Chart(d)
    layers = []
    if d["peer_p10"].notna().any():
        layers.append(base.mark_area(color=GREY_LIGHT, opacity=0.7).encode(
            x=x, y=alt.Y("peer_p10:Q", title=y_title, axis=alt.Axis(format=fmt)), y2="peer_p90:Q"))
        layers.append(base.mark_line(color=GREY, strokeDash=[4, 3], strokeWidth=1.2).encode(
            x=x, y=alt.Y("peer_median:Q")))
    if d["lower"].notna().any() and not compact:
        for col in ("lower", "upper"):
            layers.append(base.mark_line(color=BLUE, strokeDash=[1, 3], strokeWidth=1.2, opacity=0.8).encode(
                x=x, y=alt.Y(f"{col}:Q")))
    tooltip = [alt.Tooltip("month_label:N", title="Mois"), alt.Tooltip("valeur:N", title="Valeur"),
               alt.Tooltip("mediane:N", title="Médiane des pairs"), alt.Tooltip("signal:N", title="Signalé")]
    layers.append(base.mark_line(color=BLUE, strokeWidth=2 if not compact else 1.6,
                                 point=alt.OverlayMarkDef(color=BLUE, size=18 if not compact else 8)).encode(
        x=x, y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=fmt), scale=alt.Scale(zero=False)),
        tooltip=tooltip))
    for label, value in references or []:
        ref = pd.DataFrame({"y": [value], "label": [label]})
        layers.append(alt.Chart(ref).mark_rule(color=RED, strokeDash=[6, 3], strokeWidth=1.3).encode(
            y="y:Q", tooltip=alt.Tooltip("label:N", title="Seuil")))
        layers.append(alt.Chart(ref).mark_text(align="left", baseline="bottom", dx=2, dy=-2, color=RED,
                                               fontSize=10).encode(x=alt.value(0), y="y:Q", text="label:N"))
    if d["flagged"].any():
        layers.append(alt.Chart(d[d["flagged"]]).mark_point(filled=True, color=RED, size=70 if not compact else 36,
                                                             opacity=1).encode(
            x=x, y=alt.Y("value:Q"), tooltip=tooltip))
    chart = alt.layer(*layers)
    if title:
        chart = chart.properties(title=alt.TitleParams(title, anchor="start", fontSize=12, fontWeight=600,
                                                       limit=260))
    return chart


def series_chart(df: pd.DataFrame, indicator: str, height: int = 320,
                 references: list[tuple[str, float]] | None = None) -> alt.TopLevelMixin:
    return _finish(series_layers(df, indicator, references=references).properties(height=height))


def small_multiples(df: pd.DataFrame, columns: int = 3, width: int = 262, height: int = 130):
    charts = []
    for code, part in df.groupby("indicator", sort=False):
        label = part["indicator_label"].iloc[0]
        charts.append(series_layers(part, code, compact=True, title=label).properties(width=width, height=height))
    if not charts:
        return None
    return _finish(alt.concat(*charts, columns=columns).resolve_scale(y="independent", x="independent"))


def funnel_chart(fd, height: int = 380) -> alt.TopLevelMixin | None:
    """Funnel plot: limit curves (95 % dashed, 99.8 % solid), the target, anonymous grey points
    for services of other regions, the user's services in blue (red when outside the 99.8 %
    limits) and the alert's service highlighted and named."""
    pts = fd.points
    if pts.empty:
        return None
    ind = fd.indicator
    fmt = _y_format(ind)
    xlog = fd.method == "funnel" or (pts["x"] > 0).all()
    lo, hi = float(pts["x"].min()), float(pts["x"].max())
    if xlog:
        lo, hi = max(lo / 1.25, 1e-9), hi * 1.25
        x_scale = alt.Scale(type="log", domain=[lo, hi], nice=False)
    else:
        pad = (hi - lo) * 0.05 or 1.0
        x_scale = alt.Scale(domain=[lo - pad, hi + pad], nice=False)
    x = alt.X("x:Q", title=fd.x_label, scale=x_scale, axis=alt.Axis(format=",.0f"))
    y_title = CATALOGUE[ind].label_fr if ind in CATALOGUE else None
    layers = []
    curves = fd.curves.dropna(how="all", subset=[c for c in fd.curves.columns if c != "x"]) \
        if len(fd.curves) else fd.curves
    if len(curves):
        if fd.method == "robust":          # constant limits: drawn across the whole plot
            curves = curves.iloc[:2].assign(x=[lo, hi][:len(curves.iloc[:2])])
        else:
            curves = curves[(curves["x"] >= lo) & (curves["x"] <= hi)]
        long = curves.melt(id_vars="x", var_name="limite", value_name="y").dropna()
        long["niveau"] = np.where(long["limite"].str.endswith("998"), "Limites à 99,8 %", "Limites à 95 %")
        long["side"] = np.where(long["limite"].str.startswith("lower"), "bas", "haut")
        for level, dash in (("Limites à 95 %", [5, 4]), ("Limites à 99,8 %", [1, 0])):
            sub = long[long["niveau"] == level]
            if len(sub):
                layers.append(alt.Chart(sub).mark_line(color=GREY, strokeDash=dash, strokeWidth=1.2).encode(
                    x=alt.X("x:Q", scale=x_scale), y="y:Q", detail="side:N"))
    if fd.target is not None and math.isfinite(fd.target):
        layers.append(alt.Chart(pd.DataFrame({"y": [fd.target]})).mark_rule(color=GREY, strokeWidth=1).encode(y="y:Q"))
    if fd.band is not None:
        layers.append(alt.Chart(pd.DataFrame({"y": list(fd.band)})).mark_rule(color=RED, strokeDash=[6, 3]).encode(
            y="y:Q"))
    others = pts.loc[~pts["in_scope"], ["x", "value", "value_text"]]
    if len(others):
        layers.append(alt.Chart(others).mark_circle(color=GREY_MID, size=28, opacity=0.55).encode(
            x=x, y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=fmt), scale=alt.Scale(zero=False)),
            tooltip=[alt.Tooltip("value_text:N", title="Valeur (service d'une autre région)")]))
    mine = pts.loc[pts["in_scope"], ["name", "service_id", "x", "value", "value_text", "zw", "outside", "highlight"]].copy()
    if fd.band is not None and fd.method == "none":
        inside_label, outside_label = "Dans la plage réglementaire", "Hors de la plage réglementaire"
    else:
        inside_label, outside_label = "Dans les limites", "Hors limites à 99,8 %"
    if len(mine):
        mine["statut"] = np.where(mine["outside"], outside_label, inside_label)
        mine["z"] = [f"{z:.1f}".replace(".", ",") if z == z else "n.d." for z in mine["zw"]]
        tooltip = [alt.Tooltip("name:N", title="Service"), alt.Tooltip("value_text:N", title="Valeur"),
                   alt.Tooltip("x:Q", title=fd.x_label, format=",.0f"), alt.Tooltip("z:N", title="z (côté défavorable)"),
                   alt.Tooltip("statut:N", title="Position")]
        layers.append(alt.Chart(mine).mark_circle(size=60, opacity=0.9).encode(
            x=x, y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=fmt), scale=alt.Scale(zero=False)),
            color=alt.Color("statut:N", title=None,
                            scale=alt.Scale(domain=[inside_label, outside_label], range=[BLUE, RED])),
            tooltip=tooltip))
        hl = mine[mine["highlight"]]
        if len(hl):
            layers.append(alt.Chart(hl).mark_point(size=320, shape="circle", strokeWidth=2.5, color="#161616").encode(
                x=x, y="value:Q", tooltip=tooltip))
            mid = math.sqrt(lo * hi) if xlog else (lo + hi) / 2
            right = float(hl["x"].iloc[0]) > mid
            layers.append(alt.Chart(hl).mark_text(align="right" if right else "left", dx=-14 if right else 14, dy=-12,
                                                  fontWeight="bold", color="#161616", fontSize=12).encode(
                x=x, y="value:Q", text="name:N"))
    return _finish(alt.layer(*layers).properties(height=height, width="container"))


# column heads of the heat map
SHORT_LABELS = {
    "vip_init_in_delay_rate": "VIP dans le délai",
    "vip_init_median_delay_days": "Délai VIP",
    "sir_overdue_rate": "SIR hors délai",
    "reprise_within_8d_rate": "Reprise sous 8 j",
    "workers_per_physician_fte": "Salariés / ETP méd.",
    "physician_fte": "ETP médecins",
    "nurse_fte": "ETP infirmiers",
    "pdp_cases_per_1000": "PDP ‰",
    "prereprise_per_1000": "Pré-reprise ‰",
    "amt_per_1000": "AMT ‰",
    "complaints_per_10k": "Réclamations",
    "cotisation_vs_cmn_ratio": "Cotisation / CMN",
}


def heatmap_chart(df: pd.DataFrame, cell: int = 22) -> alt.TopLevelMixin | None:
    """Services × indicators, colour = worse-side peer z (red: worse than peers, blue: better;
    pale within ±2)."""
    if df.empty:
        return None
    d = df.copy()
    d["z_clip"] = d["zw"].clip(-5, 5)
    d["z_text"] = [f"{z:+.1f}".replace(".", ",") for z in d["zw"]]
    d["short"] = d["indicator"].map(SHORT_LABELS).fillna(d["indicator_label"])
    order = (d.groupby("service_name")["zw"].max().sort_values(ascending=False).index.tolist())
    columns = [SHORT_LABELS.get(c, c) for c in dict.fromkeys(d["indicator"])]
    return _finish(alt.Chart(d).mark_rect(stroke="#FFFFFF", strokeWidth=1).encode(
        x=alt.X("short:N", title=None, sort=columns,
                axis=alt.Axis(labelAngle=-30, labelAlign="left", labelBaseline="middle", labelLimit=160, orient="top",
                              labelOverlap=False, labelFontSize=11, labelPadding=6)),
        y=alt.Y("service_name:N", title=None, sort=order, axis=alt.Axis(labelLimit=280, labelOverlap=False)),
        color=alt.Color("z_clip:Q", title="z ajusté (côté défavorable)",
                        scale=alt.Scale(domain=[-5, -2, 0, 2, 5], range=[BLUE, "#CACAFB", "#FFFFFF", "#F7C4C4", RED],
                                        interpolate="rgb"),
                        legend=alt.Legend(orient="bottom", gradientLength=300, format="+d", values=[-4, -2, 0, 2, 4])),
        tooltip=[alt.Tooltip("service_name:N", title="Service"), alt.Tooltip("indicator_label:N", title="Indicateur"),
                 alt.Tooltip("value_text:N", title="Valeur"), alt.Tooltip("z_text:N", title="z ajusté")],
    ).properties(height=alt.Step(cell)))


def tile_map(tiles: pd.DataFrame, metric: str = "open_alerts", metric_title: str = "Alertes à traiter"):
    """The 18 regions as tiles (overseas on the right); regions outside the user's scope are
    drawn empty, without figures."""
    d = tiles.copy()
    d["x"], d["x2"] = d["col"], d["col"] + 0.94
    d["y"], d["y2"] = d["row"], d["row"] + 0.94
    d["xc"], d["yc"] = d["col"] + 0.47, d["row"] + 0.47
    d["figure"] = [("" if v is None or v != v else f"{int(v)}") for v in d[metric]]
    d["label"] = np.where(d["in_scope"], d["short"], d["short"])
    d["tip_metric"] = [("hors de votre périmètre" if not s else f"{int(v)}") for s, v in zip(d["in_scope"], d[metric])]
    d["tip_services"] = [("—" if not s else f"{int(v)}") for s, v in zip(d["in_scope"], d["services"])]
    xs = alt.Scale(domain=[0, 6], nice=False)
    ys = alt.Scale(domain=[0, 5], nice=False, reverse=True)
    tooltip = [alt.Tooltip("region_name:N", title="Région"), alt.Tooltip("tip_services:N", title="Services"),
               alt.Tooltip("tip_metric:N", title=metric_title)]
    inside = d[d["in_scope"]]
    outside = d[~d["in_scope"]]
    layers = []
    if len(outside):
        layers.append(alt.Chart(outside).mark_rect(color="#F0F0F0", stroke=GREY_LIGHT).encode(
            x=alt.X("x:Q", scale=xs, axis=None), x2="x2:Q", y=alt.Y("y:Q", scale=ys, axis=None), y2="y2:Q",
            tooltip=tooltip))
    if len(inside):
        mx = max(1, int(inside[metric].max() or 1))
        layers.append(alt.Chart(inside).mark_rect(stroke=BLUE, strokeWidth=1).encode(
            x=alt.X("x:Q", scale=xs, axis=None), x2="x2:Q", y=alt.Y("y:Q", scale=ys, axis=None), y2="y2:Q",
            color=alt.Color(f"{metric}:Q", title=metric_title,
                            scale=alt.Scale(domain=[0, mx], range=[BLUE_LIGHT, BLUE]),
                            legend=alt.Legend(orient="bottom", format="d", gradientLength=200)),
            tooltip=tooltip))
    text_colour = alt.condition(f"datum.{metric} > {max(1, int(inside[metric].max() or 1)) / 2 if len(inside) else 1}",
                                alt.value("#FFFFFF"), alt.value("#161616"))
    layers.append(alt.Chart(d).mark_text(fontWeight="bold", fontSize=12, dy=-7).encode(
        x=alt.X("xc:Q", scale=xs), y=alt.Y("yc:Q", scale=ys), text="label:N", color=text_colour, tooltip=tooltip))
    layers.append(alt.Chart(d).mark_text(fontSize=13, dy=9).encode(
        x=alt.X("xc:Q", scale=xs), y=alt.Y("yc:Q", scale=ys), text="figure:N", color=text_colour, tooltip=tooltip))
    layers.append(alt.Chart(pd.DataFrame({"x": [5.47], "y": [-0.25], "t": ["Outre-mer"]})).mark_text(
        fontSize=11, color=GREY).encode(x=alt.X("x:Q", scale=xs), y=alt.Y("y:Q", scale=ys), text="t:N"))
    return _finish(alt.layer(*layers).properties(height=330, width=420))


