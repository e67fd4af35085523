"""Running the product: ``schedule``, ``jobs`` and ``dashboard``."""
from __future__ import annotations

import sys

import click

from monitor.cli.common import App, CliError, pass_app
from monitor.store import db

@click.command()
@click.option("--config", "config", metavar="FICHIER", default=None,
              help="Fichier de configuration TOML des sources (sinon $SPSTI_MONITOR_CONFIG).")
@click.option("--once", is_flag=True, help="Lance chaque tâche une fois (sources, détection, synthèses) puis s'arrête.")
@pass_app
def schedule(app: App, config: str | None, once: bool) -> None:
    """Lance les tâches périodiques : collecte des sources, détection, synthèses."""
    from monitor.pipeline import scheduler as sched
    from monitor.config.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
        engine = db.get_engine(settings.resolved_database_url(app.url))
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    db.require_schema(engine)
    from monitor.store.locks import LockBusy

    try:
        if not once:
            sys.exit(sched.serve(engine, settings, echo=click.echo))
        outcomes = sched.run_once(engine, settings)
    except LockBusy as exc:
        raise CliError(str(exc)) from exc
    for outcome in outcomes:
        click.echo(outcome.summary_fr())
    failed = [o.job_id for o in outcomes if o.outcome == "error"]
    if failed:
        raise CliError(f"{len(failed)} tâche(s) en échec : {', '.join(failed)} (détail : « spsti-monitor jobs »)")


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000),
              help="Nombre d'exécutions affichées.")
@click.option("--job", "job_id", default=None, help="Une seule tâche (ex. source:depot-sftp, detect, digest).")
@pass_app
def jobs(app: App, limit: int, job_id: str | None) -> None:
    """Liste les dernières exécutions des tâches périodiques et les prochaines prévues."""
    from monitor.pipeline.jobs import format_runs_fr, recent_runs, scheduled_jobs

    engine = app.ready_engine()
    click.echo(format_runs_fr(recent_runs(engine, limit, job_id), scheduled_jobs(engine)), nl=False)



@click.command()
@click.option("--port", default=8501, show_default=True, type=int)
@pass_app
def dashboard(app: App, port: int) -> None:
    """Sert le tableau de bord Streamlit sur 127.0.0.1."""
    from monitor.cli.serve import serve_dashboard

    db.require_schema(app.engine)
    sys.exit(serve_dashboard(app.engine.url.render_as_string(hide_password=False), port))
