"""The yearly work from the command line: ``objectives load``, ``dossier``, ``programme``."""
from __future__ import annotations

import sys

import click

from monitor.cli.common import AS_HELP, App, echo_rejected, fail, load_file, pass_app, run_service


@click.group("objectives")
def objectives() -> None:
    """Objectifs des CPOM (contrats pluriannuels d'objectifs et de moyens)."""


@objectives.command("load")
@click.argument("file", type=click.Path(dir_okay=True))
@pass_app
def objectives_load(app: App, file: str) -> None:
    """Charge les objectifs CPOM de FILE (CSV ou XLSX : service_id, indicator, year, target, label)."""
    from monitor.ingest.objectives import load_objectives

    report = load_file(app, load_objectives, file)
    click.echo(report.summary_fr())
    echo_rejected(report.rejected)


@click.command("dossier")
@click.argument("siret")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), metavar="FICHIER.pdf",
              help="Fichier PDF à écrire.")
@click.option("--as", "as_user", default=None, metavar="EMAIL", help=AS_HELP)
@pass_app
def dossier(app: App, siret: str, out: str, as_user: str | None) -> None:
    """Écrit le dossier de dialogue de gestion (renouvellement d'agrément) d'un service en PDF."""
    from monitor.dialogue.dossier_pdf import write_dossier

    path = run_service(write_dossier, app.ready_engine(), as_user, siret.strip(), out)
    click.echo(f"Dossier écrit : {path}")


@click.command("programme")
@click.option("--region", required=True, metavar="CODE", help="Code INSEE de la région.")
@click.option("--year", required=True, type=int, metavar="AAAA", help="Année dont on programme les contrôles.")
@click.option("--capacity", type=click.IntRange(0, 10000), default=None,
              help="Nombre de contrôles possibles (services retenus) ; 10 par défaut.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--partner", is_flag=True, help="Export pour un partenaire (ARS) : seulement les services retenus.")
@click.option("--pdf", "pdf_out", default=None, type=click.Path(dir_okay=False), metavar="FICHIER.pdf",
              help="Écrit aussi le programme en PDF.")
@click.option("--as", "as_user", default=None, metavar="EMAIL", help=AS_HELP)
@pass_app
def programme(app: App, region: str, year: int, capacity: int | None, fmt: str, partner: bool,
              pdf_out: str | None, as_user: str | None) -> None:
    """Programme de contrôle d'une région : le programme enregistré, sinon une proposition classée."""
    from monitor.dialogue.programme import export_programme, get_programme, partner_export
    from monitor.dialogue.programme_pdf import write_programme_pdf

    engine = app.ready_engine()
    p = run_service(get_programme, engine, as_user, region, year, capacity)
    if partner:
        if fmt != "csv":
            raise fail("l'export partenaire est un CSV (--format csv).")
        sys.stdout.write(partner_export(p))
    else:
        sys.stdout.write(export_programme(p, fmt))
    if pdf_out:
        write_programme_pdf(p, pdf_out)
    click.echo(f"{p.region_name} {p.year} : {p.status_fr()} ; {int(p.rows['selected'].sum())} service(s) "
               f"retenu(s) sur {len(p.rows)}", err=True)
