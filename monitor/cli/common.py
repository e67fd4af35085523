"""What every command shares: the application object, errors as one French sentence,
and the small parsers and options of the commands that act as a user."""
from __future__ import annotations

from datetime import date

import click

from monitor.accounts.users import UserError
from monitor.store import db
from monitor.vocabulary.errors import ServiceError


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


def load_file(app: App, loader, file: str):
    """``loader(engine, file)`` for a command that loads one file; a file that cannot be read
    at all ends the command with its one French sentence (exit status 2)."""
    from monitor.ingest.bounds import InputFileError

    try:
        return loader(app.ready_engine(), file)
    except InputFileError as exc:
        raise UnreadableFile(str(exc)) from exc


def echo_rejected(rejected) -> None:
    """The rows a load quarantined, one per line with its line number and reason."""
    for line, reason in rejected:
        click.echo(f"  ligne {line} : {reason}")


AS_HELP = "Adresse de l'utilisateur au nom duquel agir (sinon $SPSTI_MONITOR_USER)."


def fail(message: str) -> "CliError":
    return CliError(message)


def run_service(fn, *args, **kwargs):
    """Call the service layer; its errors become one French sentence and a non-zero exit."""
    try:
        return fn(*args, **kwargs)
    except (ServiceError, UserError) as exc:
        raise fail(str(exc)) from exc


def parse_date(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{what} invalide : {text} (format attendu AAAA-MM-JJ)") from None


def user_id(engine, email: str | None) -> int | None:
    if email is None:
        return None
    import sqlalchemy as sa

    from monitor.store.models import User

    with engine.connect() as c:
        uid = c.execute(sa.select(User.id).where(User.email == email.strip().lower())).scalar()
    if uid is None:
        raise fail(f"utilisateur inconnu : {email}")
    return uid


def as_option(f):
    return click.option("--as", "as_user", envvar="SPSTI_MONITOR_USER", required=True, metavar="EMAIL",
                        help=AS_HELP)(f)


def version_option(f):
    return click.option("--version", "version", type=int, default=None,
                        help="Version de l'alerte telle que vous l'avez lue (alerts show).")(f)


