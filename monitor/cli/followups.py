"""``followups``: inspection follow-ups (suites) from the command line."""
from __future__ import annotations

import click

from monitor.vocabulary.statuses import FOLLOW_UP_ACTIVE
from monitor.cli.common import as_option, parse_date, run_service, user_id


@click.group("followups")
def followups_group():
    """Suites données aux alertes (contrôles, lettres, mises en conformité…)."""

@followups_group.command("add")
@click.argument("alert_ids", nargs=-1, type=int, required=True)
@as_option
@click.option("--kind", required=True, help="Type de suite (voir « followups kinds »).")
@click.option("--owner", "owner_email", default=None, metavar="EMAIL",
              help="Responsable de la suite (par défaut : vous).")
@click.option("--due", required=True, metavar="AAAA-MM-JJ", help="Échéance.")
@click.option("--notes", default=None)
@click.pass_obj
def followups_add(app, alert_ids, as_user, kind, owner_email, due, notes):
    """Engage une suite sur une ou plusieurs alertes d'un même service."""
    from alerts.followups import create_follow_up

    engine = app.ready_engine()
    owner = user_id(engine, owner_email or as_user)
    f = run_service(create_follow_up, engine, as_user, list(alert_ids), kind, owner, parse_date(due, "échéance"), notes)
    click.echo(f"Suite n° {f.id} créée : {f.kind_label} ({f.legal_reference}), {f.service_name}, "
               f"responsable {f.owner_name}, échéance {f.due_date:%d/%m/%Y}")

@followups_group.command("kinds")
def followups_kinds():
    """Liste les types de suite et leur référence juridique."""
    from alerts.followups import KINDS

    for k in KINDS.values():
        click.echo(f"{k.code}\t{k.label}\t{k.legal_reference}")

@followups_group.command("list")
@as_option
@click.option("--overdue", is_flag=True, help="Seulement les suites en retard.")
@click.option("--all", "all_statuses", is_flag=True, help="Y compris les suites terminées ou abandonnées.")
@click.option("--region", default=None)
@click.pass_obj
def followups_list(app, as_user, overdue, all_statuses, region):
    """Liste les suites de vos régions, les retards d'abord."""
    from alerts.followups import list_follow_ups

    rows = run_service(list_follow_ups, app.ready_engine(), as_user, statuses=None if all_statuses else FOLLOW_UP_ACTIVE,
                region=region, overdue_only=overdue)
    for f in rows:
        late = f"EN RETARD de {f.days_overdue} j" if f.overdue else ""
        click.echo(f"{f.id}\tv{f.version}\t{f.due_date:%d/%m/%Y}\t{f.status_label}\t{late}\t{f.service_name}\t"
                   f"{f.kind_label}\t{f.owner_name or '-'}")
    click.echo(f"{len(rows)} suite(s)", err=True)

@followups_group.command("update")
@click.argument("follow_up_id", type=int)
@as_option
@click.option("--version", "version", type=int, default=None)
@click.option("--status", default=None, help="a_faire, en_cours, terminee ou abandonnee.")
@click.option("--owner", "owner_email", default=None, metavar="EMAIL")
@click.option("--due", default=None, metavar="AAAA-MM-JJ")
@click.option("--notes", default=None)
@click.option("--comment", default=None)
@click.pass_obj
def followups_update(app, follow_up_id, as_user, version, status, owner_email, due, notes, comment):
    """Change le statut, le responsable, l'échéance ou les notes d'une suite."""
    from alerts.followups import _UNSET, get_follow_up, update_follow_up

    engine = app.ready_engine()
    if version is None:
        version = run_service(get_follow_up, engine, as_user, follow_up_id).version
    f = run_service(update_follow_up, engine, as_user, follow_up_id, version, status=status,
             owner_id=user_id(engine, owner_email) if owner_email else _UNSET,
             due_date=parse_date(due, "échéance"), notes=notes if notes is not None else _UNSET,
             comment=comment)
    click.echo(f"Suite n° {f.id} : {f.status_label}, responsable {f.owner_name}, "
               f"échéance {f.due_date:%d/%m/%Y} (version {f.version})")

@followups_group.command("export")
@as_option
@click.option("--all", "all_statuses", is_flag=True, help="Y compris les suites terminées ou abandonnées.")
@click.pass_obj
def followups_export(app, as_user, all_statuses):
    """Écrit les suites de vos régions en CSV sur la sortie standard."""
    from alerts.followups import export_follow_ups_csv

    click.echo(run_service(export_follow_ups_csv, app.ready_engine(), as_user,
                    statuses=None if all_statuses else FOLLOW_UP_ACTIVE), nl=False)
