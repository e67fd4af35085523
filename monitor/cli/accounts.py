"""``users``: dashboard accounts."""
from __future__ import annotations

import sys

import click

from monitor.cli.common import App, CliError, pass_app

@click.group()
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
