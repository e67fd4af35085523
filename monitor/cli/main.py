"""``spsti-monitor``: a thin command line over the service layer.

Every command prints French text for people; errors are one sentence on stderr with a
non-zero exit status, never a traceback (set SPSTI_MONITOR_DEBUG=1 to see one).
"""
from __future__ import annotations

import os
import sys

import click

from monitor.store import db
from monitor.ingest.readers import InputFileError


class CliError(click.ClickException):
    def show(self, file=None):
        click.echo(f"Erreur : {self.message}", err=True)


class App:
    def __init__(self, url: str | None):
        self.url = url

    @property
    def engine(self):
        return db.get_engine(self.url)

    def ready_engine(self):
        engine = self.engine
        db.require_schema(engine)
        return engine


class UnreadableFile(CliError):
    """A file that cannot be read at all: exit status 2, as for ``ingest``."""
    exit_code = 2


pass_app = click.make_pass_decorator(App)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", metavar="URL", default=None,
              help="URL SQLAlchemy de la base (sinon $SPSTI_MONITOR_DB, sinon sqlite:///spsti-monitor.store.db).")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    """Supervision des SPSTI : ingestion, détection, alertes, tableau de bord."""
    ctx.obj = App(db_url)


@cli.command()
@pass_app
def init(app: App) -> None:
    """Crée ou met à jour le schéma de la base (idempotent)."""
    from monitor.store.schema import init as do_init

    rev = do_init(app.engine)
    click.echo(f"Schéma à jour (révision {rev}) sur {app.engine.url.render_as_string(hide_password=True)}")


@cli.group()
def services() -> None:
    """Registre des services."""


@services.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_app
def services_load(app: App, file: str) -> None:
    """Charge (insère ou met à jour) le registre des services depuis FILE."""
    from monitor.ingest.register import load_register

    try:
        report = load_register(app.ready_engine(), file)
    except InputFileError as exc:
        raise UnreadableFile(str(exc)) from exc
    click.echo(f"{report.file} : {report.inserted} service(s) ajouté(s), {report.updated} mis à jour, "
               f"{len(report.rejected)} ligne(s) rejetée(s)")
    for line, reason in report.rejected:
        click.echo(f"  ligne {line} : {reason}")


@cli.command()
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


@cli.command()
@click.option("--as-of", "as_of", metavar="PERIODE", default=None,
              help="Dernière période à traiter (AAAA-MM) ; par défaut la plus récente.")
@click.option("--resolve-after", "resolve_after", type=click.IntRange(1, 24), default=3, show_default=True,
              help="Nombre de périodes normales avant qu'une alerte soit résolue d'elle-même.")
@pass_app
def detect(app: App, as_of: str | None, resolve_after: int = 3) -> None:
    """Lance tous les détecteurs période par période et met à jour les alertes."""
    from monitor.pipeline.detection import DetectionBusy, run_detection
    from monitor.vocabulary.periods import PeriodError

    engine = app.ready_engine()

    def progress(done: int, total: int, label: str) -> None:
        click.echo(f"  [{done}/{total}] {label}", err=True)

    try:
        summary = run_detection(engine, as_of=as_of, progress=progress, resolve_after=resolve_after)
    except (PeriodError, DetectionBusy) as exc:
        raise CliError(str(exc)) from exc
    click.echo(summary.summary_fr())


@cli.group()
def alerts() -> None:
    """Alertes."""


@alerts.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--status", default=None, help="open, acknowledged, follow_up, dismissed ou resolved.")
@click.option("--region", default=None, help="Code INSEE de la région (ex. 84).")
@click.option("--as", "as_user", default=None, metavar="EMAIL",
              help="N'exporte que les régions de cet utilisateur (droits vérifiés).")
@pass_app
def alerts_export(app: App, fmt: str, status: str | None, region: str | None, as_user: str | None = None) -> None:
    """Écrit les alertes sur la sortie standard (CSV ou JSON)."""
    from monitor.vocabulary.errors import ServiceError
    from alerts.export import ExportError, export_alerts, export_alerts_for

    try:
        if as_user:
            text = export_alerts_for(app.ready_engine(), as_user, fmt=fmt, status=status, region=region)
        else:
            text = export_alerts(app.ready_engine(), fmt=fmt, status=status, region=region)
    except (ExportError, ServiceError) as exc:
        raise CliError(str(exc)) from exc
    click.echo(text, nl=False)


@cli.group()
def users() -> None:
    """Comptes du tableau de bord."""


@users.command("add")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["agent", "manager", "national", "admin"]))
@click.option("--regions", default="", help="Codes INSEE séparés par des virgules (ex. 84,93).")
@click.option("--digest", type=click.Choice(["daily", "weekly", "off"]), default="daily", show_default=True)
@click.option("--min-severity", type=click.Choice(["low", "medium", "high"]), default="medium", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Lit le mot de passe sur l'entrée standard.")
@pass_app
def users_add(app: App, email, name, role, regions, digest, min_severity, password_stdin) -> None:
    """Crée un utilisateur du tableau de bord."""
    from monitor.accounts.users import UserError, add_user

    if not password_stdin:
        raise CliError("le mot de passe doit être fourni avec --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = add_user(app.ready_engine(), email=email, name=name, role=role, regions=regions,
                        digest=digest, min_severity=min_severity, password=password)
    except UserError as exc:
        raise CliError(str(exc)) from exc
    click.echo(f"Utilisateur {user.email} créé (rôle {user.role}, régions : {user.regions or 'toutes'})")


@cli.command()
@click.option("--port", default=8501, show_default=True, type=int)
@pass_app
def dashboard(app: App, port: int) -> None:
    """Sert le tableau de bord Streamlit sur 127.0.0.1."""
    from monitor.cli.serve import serve_dashboard

    db.require_schema(app.engine)
    sys.exit(serve_dashboard(app.engine.url.render_as_string(hide_password=False), port))


@cli.command()
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


@cli.command()
@click.option("--seed", type=int, multiple=True,
              help="Évalue aussi des panels générés avec ces graines (sinon : fixtures livrées).")
@click.option("--services", "n_services", type=int, default=None, help="Nombre de services des panels générés.")
@click.option("--months", "n_months", type=int, default=None, help="Nombre de mois des panels générés.")
def evaluate(seed: tuple[int, ...], n_services: int | None, n_months: int | None) -> None:
    """Mesure la détection sur des panels étiquetés (précision, rappel, F1, délai, volume)."""
    from fixtures.harness.evaluation import evaluate_cli

    evaluate_cli(seeds=list(seed), n_services=n_services, n_months=n_months, echo=click.echo)


@cli.command()
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
    if not once:
        sys.exit(sched.serve(engine, settings, echo=click.echo))
    outcomes = sched.run_once(engine, settings)
    for outcome in outcomes:
        click.echo(outcome.summary_fr())
    failed = [o.job_id for o in outcomes if o.outcome == "error"]
    if failed:
        raise CliError(f"{len(failed)} tâche(s) en échec : {', '.join(failed)} (détail : « spsti-monitor jobs »)")


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000),
              help="Nombre d'exécutions affichées.")
@click.option("--job", "job_id", default=None, help="Une seule tâche (ex. source:depot-sftp, detect, digest).")
@pass_app
def jobs(app: App, limit: int, job_id: str | None) -> None:
    """Liste les dernières exécutions des tâches périodiques et les prochaines prévues."""
    from monitor.pipeline.jobs import format_runs_fr, recent_runs, scheduled_jobs

    engine = app.ready_engine()
    click.echo(format_runs_fr(recent_runs(engine, limit, job_id), scheduled_jobs(engine)), nl=False)


# Triage, follow-ups and digests: alerts list/show/history/ack/assign/comment/snooze/dismiss/
# reopen, followups add/list/update/export, digest send (alerts/cli_commands.py).
from monitor.cli.alerts import register as _register_alert_commands  # noqa: E402

_register_alert_commands(cli, alerts)


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="spsti-monitor")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code != 1 or isinstance(exc, CliError) else 2)
    except click.exceptions.Abort:
        click.echo("Interrompu.", err=True)
        sys.exit(130)
    except db.DatabaseError as exc:
        click.echo(f"Erreur : {exc}", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:  # last resort: one sentence, no traceback
        if os.environ.get("SPSTI_MONITOR_DEBUG"):
            raise
        click.echo(f"Erreur inattendue : {type(exc).__name__} : {exc}", err=True)
        sys.exit(1)
