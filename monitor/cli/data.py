"""Commands that build the store: init, services load, ingest, detect."""
from __future__ import annotations

import sys

import click

from monitor.cli.common import App, CliError, echo_rejected, load_file, pass_app

@click.command()
@pass_app
def init(app: App) -> None:
    """Crée ou met à jour le schéma de la base (idempotent)."""
    from monitor.store.schema import init as do_init

    rev = do_init(app.engine)
    click.echo(f"Schéma à jour (révision {rev}) sur {app.engine.url.render_as_string(hide_password=True)}")


@click.group()
def services() -> None:
    """Registre des services."""


@services.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_app
def services_load(app: App, file: str) -> None:
    """Charge (insère ou met à jour) le registre des services depuis FILE."""
    from monitor.ingest.register import load_register

    report = load_file(app, load_register, file)
    click.echo(f"{report.file} : {report.inserted} service(s) ajouté(s), {report.updated} mis à jour, "
               f"{len(report.rejected)} ligne(s) rejetée(s)")
    echo_rejected(report.rejected)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--source", default="cli", show_default=True, help="Nom de la source enregistré.")
@pass_app
def ingest(app: App, files: tuple[str, ...], source: str) -> None:
    """Charge des fichiers d'indicateurs (CSV ou XLSX)."""
    from monitor.ingest.indicators import ingest_files

    engine = app.ready_engine()
    failed = False
    for path, result in ingest_files(engine, list(files), source=source):
        if isinstance(result, Exception):
            failed = True
            click.echo(f"Erreur : {result}", err=True)
        else:
            click.echo(result.summary_fr())
    if failed:
        sys.exit(2)


@click.command()
@click.option("--as-of", "as_of", metavar="PERIODE", default=None,
              help="Dernière période à traiter (AAAA-MM) ; par défaut la plus récente.")
@click.option("--resolve-after", "resolve_after", type=click.IntRange(1, 24), default=3, show_default=True,
              help="Nombre de périodes normales avant qu'une alerte soit résolue d'elle-même.")
@click.option("--rebuild", is_flag=True, default=False,
              help="Reconstruit d'abord l'état de la détection d'après les observations "
                   "(après une période future ou tout état incohérent).")
@pass_app
def detect(app: App, as_of: str | None, resolve_after: int = 3, rebuild: bool = False) -> None:
    """Lance tous les détecteurs période par période et met à jour les alertes."""
    from monitor.pipeline.detection import DetectionBusy, rebuild_state, run_detection
    from monitor.vocabulary.periods import PeriodError

    engine = app.ready_engine()
    if rebuild:
        click.echo(rebuild_state(engine).summary_fr())

    def progress(done: int, total: int, label: str) -> None:
        click.echo(f"  [{done}/{total}] {label}", err=True)

    try:
        summary = run_detection(engine, as_of=as_of, progress=progress, resolve_after=resolve_after)
    except (PeriodError, DetectionBusy) as exc:
        raise CliError(str(exc)) from exc
    click.echo(summary.summary_fr())
