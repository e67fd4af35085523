"""The agrément dialogue dossier as a PDF: a first page that sums up what to discuss, then
identity and timeline, indicators against peers (charts and funnel positions), CPOM
objectives, alerts and follow-ups, data quality."""
from __future__ import annotations

from html import escape
from pathlib import Path

import sqlalchemy as sa

from monitor.dialogue import pdf
from monitor.dialogue.dossier import Dossier, build_dossier
from monitor.dialogue.svg import legend, series_chart
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.catalogue import CATALOGUE
from monitor.vocabulary.formatting import fr_number


def short_value(code: str, v) -> str:
    """A value for a chart axis or a narrow table cell: the unit is in the chart's title."""
    if v is None or v != v:
        return "—"
    ind = CATALOGUE.get(code)
    if code == "cotisation_vs_cmn_ratio" or (ind and ind.kind == "proportion"):
        return f"{fr_number(100 * v, 0)} %"
    if ind and ind.kind == "rate":
        return fr_number(v, 1 if abs(v) < 100 else 0)
    return fr_number(v, 1 if abs(v) < 10 else 0)


def _unit(code: str) -> str:
    ind = CATALOGUE.get(code)
    if code == "cotisation_vs_cmn_ratio":
        return "% du coût moyen national"
    if ind and ind.kind == "proportion":
        return "%"
    return ind.unit if ind else ""


def _d(d) -> str:
    return timefmt.fr_date(d) if d else "—"


def _first_page(d: Dossier) -> str:
    period = f"{d.first_year} à {d.last_year}" if d.first_year is not None else "aucune donnée reçue"
    points = "".join(f"<li>{escape(p)}</li>" for p in d.talking_points) or "<li>Rien de particulier à signaler.</li>"
    return f"""
<h1>Dossier de dialogue de gestion</h1>
<p class="sous-titre">Renouvellement d'agrément (art. D4622-48 du code du travail) —
{escape(d.profile.name)}, SIRET {escape(d.profile.service_id)}, {escape(d.profile.region_name)} ({escape(d.profile.region_code)})</p>
<table>
<tr><th>Période examinée</th><td>{escape(period)}</td><th>Établi le</th><td>{_d(d.produced_on)}</td></tr>
<tr><th>Agrément</th><td>{_d(d.profile.agrement_start)} au {_d(d.profile.agrement_end)}</td>
<th>Certification</th><td>{('niveau ' + str(d.profile.certification_level) + " jusqu'au " + _d(d.profile.certification_end))
                          if d.profile.certification_level else 'aucune'}</td></tr>
<tr><th>Salariés suivis</th><td>{fr_number(d.profile.workers_followed)}</td><th>Entreprises adhérentes</th>
<td>{fr_number(d.profile.companies)}</td></tr>
</table>
<h2>Points à aborder</h2>
<div class="encadre"><ul>{points}</ul></div>
<p class="note">Sources : données transmises par le service au format d'échange, registre des services,
alertes et suites de la DREETS, objectifs du CPOM (art. L4622-10). Comparaisons : médiane régionale et
intervalle de 10 % à 90 % des services de France ; position dans l'entonnoir (funnel plot) calculée par
le détecteur de pairs, côté défavorable de l'indicateur. Établi par {escape(d.produced_by)}.</p>
"""


def _identity(d: Dossier) -> str:
    p = d.profile
    rows = [["SIRET", p.service_id], ["Nom", p.name], ["Région", f"{p.region_name} ({p.region_code})"],
            ["Départements", ", ".join(p.departments)],
            ["Salariés suivis", fr_number(p.workers_followed)], ["Entreprises adhérentes", fr_number(p.companies)],
            ["Plafond de salariés par ETP de médecin (agrément)",
             fr_number(p.max_workers_per_physician_fte) if p.max_workers_per_physician_fte else "—"],
            ["Cotisation par salarié", (fr_number(p.cotisation_per_worker, 2) + " €") if p.cotisation_per_worker
             else "—"]]
    timeline = [[_d(when), what] for when, what in d.timeline]
    return ('<h2 class="saut">Identité du service</h2>' + pdf.table(["", ""], rows)
            + "<h2>Agrément et certification : calendrier</h2>"
            + pdf.table(["Date", "Étape"], timeline, empty="Aucune date enregistrée."))


def _indicators(d: Dossier) -> str:
    if not d.indicators:
        return "<h2>Indicateurs</h2><p>Aucune donnée reçue sur la période.</p>"
    blocks = []
    for ind in d.indicators:
        f = ind.frame
        chart = series_chart(f, lambda v, c=ind.code: short_value(c, v), f"{ind.label} ({_unit(ind.code)})")
        rows = [[str(int(r["year"])), short_value(ind.code, r["value"]), short_value(ind.code, r["region_median"]),
                 short_value(ind.code, r["nat_median"]), r["position"]] for _, r in f.iterrows()]
        blocks.append(f'<div class="graphe"><h3>{escape(ind.label)} ({escape(_unit(ind.code))})</h3>{chart}'
                      + pdf.table(["Année", "Service", "Méd. régionale", "Méd. nationale", "Entonnoir"], rows,
                                  numeric={1, 2, 3})
                      + "</div>")
    worse = ("Le côté défavorable de chaque indicateur est celui du catalogue (« se dégrade quand » : "
             "plus haut ou plus bas).")
    return (f'<h2 class="saut">Indicateurs face aux pairs, {d.first_year}–{d.last_year}</h2>'
            f'<p class="note">{legend()}<br>{escape(worse)} Les taux « pour 1 000 salariés » sont annuels ; '
            "l'année en cours est incomplète.</p>"
            f'<div class="graphes">{"".join(blocks)}</div>')


def _objectives(d: Dossier) -> str:
    o = d.objectives
    if o.empty:
        return "<h2>Objectifs du CPOM</h2><p>Aucun objectif CPOM enregistré pour ce service.</p>"
    rows = []
    for _, r in o.iterrows():
        cls = "ok" if r["met"] is True else ("ko" if r["met"] is False else "")
        rows.append([str(r["year"]), r["indicator_label"] + (f" — {r['label']}" if r["label"] else ""),
                     r["target_text"], r["value_text"], f'<span class="{cls}">{escape(r["status_fr"])}</span>',
                     r["trend_fr"]])
    return ('<h2 class="saut">Objectifs du CPOM et atteinte</h2>'
            + pdf.table(["Année", "Objectif", "Cible", "Réalisé", "Atteinte", "Tendance"], rows,
                        numeric={2, 3}, raw={4}))


def _alerts(d: Dossier) -> str:
    a = d.alerts
    out = ["<h2>Alertes de la période et leurs suites</h2>"]
    rows = [[str(r["alert_id"]), r["opened_fr"], r["indicator_label"], r["category_fr"], r["severity_fr"],
             r["outcome_fr"], r["explanation"]] for _, r in a.iterrows()]
    out.append(pdf.table(["N°", "Ouverte", "Indicateur", "Catégorie", "Gravité", "Issue", "Explication"], rows,
                         empty="Aucune alerte sur la période."))
    f = d.follow_ups
    out.append("<h3>Suites</h3>")
    rows = [[str(r["follow_up_id"]), _d(r["created_at"]), r["kind_fr"], r["legal_reference"] or "",
             _d(r["due_date"]), r["status_fr"]] for _, r in f.iterrows()]
    out.append(pdf.table(["N°", "Engagée le", "Suite", "Référence", "Échéance", "Statut"], rows,
                         empty="Aucune suite engagée."))
    return "".join(out)


def _quality(d: Dossier) -> str:
    q = d.quality
    out = ["<h2>Qualité des données transmises</h2>"]
    rows = [[str(r["year"]), str(r["missing_reports"]), str(r["dq_alerts"]), str(r["rejected_rows"])]
            for _, r in q.iterrows()]
    out.append(pdf.table(["Année", "Rapports manquants ou en retard", "Alertes qualité", "Lignes rejetées"],
                         rows, numeric={1, 2, 3}, empty="Aucune donnée sur la période."))
    if len(d.rejected_reasons):
        rows = [[r["reason"], str(int(r["rows"]))] for _, r in d.rejected_reasons.head(8).iterrows()]
        out.append("<h3>Motifs de rejet</h3>" + pdf.table(["Motif", "Lignes"], rows, numeric={1}))
    return "".join(out)


def dossier_html(d: Dossier) -> str:
    footer = f"Dossier de dialogue — {d.profile.name} — SIRET {d.profile.service_id} — {timefmt.fr_date(d.produced_on)}"
    right = (f"DREETS {escape(d.profile.region_name)}<br>Pôle travail — contrôle des SPSTI<br>"
             f"Document de travail, {_d(d.produced_on)}")
    return (f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
            f"<title>Dossier de dialogue — {escape(d.profile.name)}</title><style>{pdf.page_css(footer)}</style></head><body>"
            + pdf.banner(right) + _first_page(d) + _identity(d) + _indicators(d) + _objectives(d) + _alerts(d)
            + _quality(d) + "</body></html>")


def dossier_pdf(engine: sa.Engine, actor, service_id: str, panel=None) -> bytes:
    """The dossier's PDF bytes; refused (AccessDenied) before anything is rendered."""
    return pdf.html_to_pdf(dossier_html(build_dossier(engine, actor, service_id, panel=panel)))


def write_dossier(engine: sa.Engine, actor, service_id: str, out: str | Path) -> Path:
    """Write the dossier to ``out`` (through a temporary file: no partial file on failure)."""
    data = dossier_pdf(engine, actor, service_id)
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out
