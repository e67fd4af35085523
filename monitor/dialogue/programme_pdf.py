"""The control programme as a PDF: the weights, then every service ranked with its reasons."""
from __future__ import annotations

from html import escape
from pathlib import Path

from monitor.dialogue import pdf
from monitor.dialogue.programme import Programme
from monitor.dialogue.scoring import weights_table
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.formatting import fr_number


def programme_html(p: Programme) -> str:
    rows = []
    for _, r in p.rows.iterrows():
        sel = "oui" if r["selected"] else "non"
        if r.get("change_reason"):
            sel += f" (modifié : {r['change_reason']})"
        rows.append([str(int(r["rank"])), f"{r['service_name']} ({r['service_id']})",
                     fr_number(float(r["score"]), 0 if float(r["score"]).is_integer() else 1), sel, r["reasons"]])
    n = int(p.rows["selected"].sum()) if len(p.rows) else 0
    footer = f"Programme de contrôle {p.year} — {p.region_name} — {timefmt.fr_date(timefmt.today())}"
    return (f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Programme de contrôle</title>'
            f"<style>{pdf.page_css(footer)}</style></head><body>"
            + pdf.banner(f"DREETS {escape(p.region_name)}<br>Pôle travail — contrôle des SPSTI")
            + f"<h1>Programme de contrôle {p.year}</h1>"
            + f'<p class="sous-titre">{escape(p.region_name)} ({p.region_code}) — {escape(p.status_fr())} — '
            + f"{n} service(s) retenu(s) sur {len(p.rows)}, capacité {p.capacity}</p>"
            + "<h2>Pondérations du score de risque</h2>"
            + pdf.table(["Élément", "Points"], [list(x) for x in weights_table(p.weights)], numeric={1})
            + "<h2>Services classés</h2>"
            + pdf.table(["Rang", "Service", "Score", "Retenu", "Motifs"], rows, numeric={0, 2})
            + "</body></html>")


def programme_pdf(p: Programme) -> bytes:
    return pdf.html_to_pdf(programme_html(p))


def write_programme_pdf(p: Programme, out: str | Path) -> Path:
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(programme_pdf(p))
    tmp.replace(out)
    return out
