"""``spsti-monitor``: a thin command line over the service layer.

Every command prints French text for people; errors are one sentence on stderr with a
non-zero exit status, never a traceback (set SPSTI_MONITOR_DEBUG=1 to see one).
"""
from __future__ import annotations

import os
import sys

import click

from monitor.cli import accounts, alerts, data, dialogue, digest, followups, lab, ops
from monitor.cli.common import App, CliError
from monitor.store import db


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", metavar="URL", default=None,
              help="URL SQLAlchemy de la base (sinon $SPSTI_MONITOR_DB, sinon sqlite:///spsti-monitor.db).")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    """Supervision des SPSTI : ingestion, détection, alertes, tableau de bord."""
    ctx.obj = App(db_url)


for command in (data.init, data.services, data.ingest, data.detect, alerts.alerts, followups.followups_group,
                digest.digest_group, accounts.users, ops.schedule, ops.jobs, ops.dashboard, lab.demo, lab.evaluate,
                dialogue.objectives, dialogue.dossier, dialogue.programme):
    cli.add_command(command)


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
