"""``demo`` and ``evaluate``: they import the fixtures harness, lazily, and only here."""
from __future__ import annotations

import os
import sys

import click

from monitor.cli.common import App, pass_app

@click.command()
@click.option("--no-dashboard", is_flag=True, help="Construit la base sans lancer le tableau de bord.")
@click.option("--port", default=8501, show_default=True, type=int)
@pass_app
def demo(app: App, no_dashboard: bool, port: int) -> None:
    """Construit une base de démonstration neuve depuis fixtures/ et crée des comptes."""
    from fixtures.harness.demo import build_demo

    url = app.url or os.environ.get("SPSTI_MONITOR_DB") or "sqlite:///demo.db"
    build_demo(url, echo=click.echo)
    if not no_dashboard:
        from monitor.cli.serve import serve_dashboard

        click.echo(f"Tableau de bord : http://127.0.0.1:{port}  (Ctrl-C pour arrêter)")
        sys.exit(serve_dashboard(url, port))


@click.command()
@click.option("--seed", type=int, multiple=True,
              help="Évalue aussi des panels générés avec ces graines (sinon : fixtures livrées).")
@click.option("--services", "n_services", type=int, default=None, help="Nombre de services des panels générés.")
@click.option("--months", "n_months", type=int, default=None, help="Nombre de mois des panels générés.")
@click.option("--style", "styles", type=click.Choice(["base", "noisy"]), multiple=True,
              help="Modèle de bruit des panels générés (base, ou noisy : plus bruité que le modèle).")
@click.option("--frequency", "frequencies", type=click.Choice(["M", "Q", "Y"]), multiple=True,
              help="Fréquence des rapports des panels générés : mensuelle, trimestrielle ou annuelle.")
@click.option("--matrix", is_flag=True,
              help="Un tableau sur styles × fréquences × graines (par défaut 3 graines, 190 services × 60 mois), "
                   "avec les références et la détectabilité par type d'événement.")
@click.option("--in-control", "in_control", is_flag=True,
              help="Panels sans aucun événement : mesure le taux de fausses alertes (calibration) "
                   "par style × fréquence × graine.")
def evaluate(seed: tuple[int, ...], n_services: int | None, n_months: int | None, styles: tuple[str, ...],
             frequencies: tuple[str, ...], matrix: bool, in_control: bool) -> None:
    """Mesure la détection sur des panels étiquetés (précision, rappel, F1, délai, volume)."""
    from fixtures.harness.evaluation import evaluate_cli

    evaluate_cli(seeds=list(seed), n_services=n_services, n_months=n_months, echo=click.echo, matrix=matrix,
                 styles=list(styles) or None, frequencies=list(frequencies) or None,
                 in_control_panels=in_control)
