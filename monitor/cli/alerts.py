"""Command-line triage, follow-ups and digests: thin wrappers over the service layer.

Registered on the ``spsti-monitor`` group by :func:`register` (monitor/cli.py). Every triage
command acts as a user (``--as EMAIL``, or ``$SPSTI_MONITOR_USER``) whose role and regions
the service layer checks, exactly as for the dashboard. ``--version`` is the alert version
the operator last saw (``alerts show``); without it, the current version is used.
"""
from __future__ import annotations

from datetime import date

import click

AS_HELP = "Adresse de l'utilisateur au nom duquel agir (sinon $SPSTI_MONITOR_USER)."


def _fail(message: str):
    from monitor.cli.main import CliError

    return CliError(message)


def _run(fn, *args, **kwargs):
    """Call the service layer; its errors become one French sentence and a non-zero exit."""
    from monitor.vocabulary.errors import ServiceError
    from monitor.accounts.users import UserError

    try:
        return fn(*args, **kwargs)
    except (ServiceError, UserError) as exc:
        raise _fail(str(exc)) from exc


def _date(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _fail(f"{what} invalide : {text} (format attendu AAAA-MM-JJ)") from None


def _user_id(engine, email: str | None) -> int | None:
    if email is None:
        return None
    import sqlalchemy as sa

    from monitor.store.models import User

    with engine.connect() as c:
        uid = c.execute(sa.select(User.id).where(User.email == email.strip().lower())).scalar()
    if uid is None:
        raise _fail(f"utilisateur inconnu : {email}")
    return uid


def as_option(f):
    return click.option("--as", "as_user", envvar="SPSTI_MONITOR_USER", required=True, metavar="EMAIL",
                        help=AS_HELP)(f)


def version_option(f):
    return click.option("--version", "version", type=int, default=None,
                        help="Version de l'alerte telle que vous l'avez lue (alerts show).")(f)


def _print_alert(v) -> None:
    click.echo(f"Alerte n° {v.id} (version {v.version}) — {v.status_label}"
               + (f", en sourdine jusqu'au {v.snoozed_until:%d/%m/%Y}" if v.snoozed else ""))
    click.echo(f"  Service : {v.service_name} (SIRET {v.service_id}), région {v.region_name} ({v.region_code})")
    click.echo(f"  Indicateur : {v.indicator_label} — {v.category_label} — gravité {v.severity_label} "
               f"(score {v.score:.2f})")
    click.echo(f"  Périodes : de {v.opened_period} à {v.last_period}")
    click.echo(f"  Explication : {v.explanation}")
    click.echo(f"  Attribuée à : {v.assignee_name or 'personne'}")
    if v.dismiss_reason_label:
        click.echo(f"  Motif de classement : {v.dismiss_reason_label}")
    if v.follow_up_ids:
        click.echo(f"  Suites : {', '.join(f'n° {i}' for i in v.follow_up_ids)}")


def register(cli: click.Group, alerts: click.Group) -> None:
    """Add the triage commands to ``alerts`` and the ``followups`` and ``digest`` groups to ``cli``."""

    @alerts.command("list")
    @as_option
    @click.option("--status", "statuses", multiple=True,
                  help="Statut(s) à lister (par défaut : ouvertes et prises en charge).")
    @click.option("--all", "all_statuses", is_flag=True, help="Tous les statuts.")
    @click.option("--region", default=None, help="Code INSEE d'une de vos régions.")
    @click.option("--include-snoozed", is_flag=True, help="Inclut les alertes en sourdine.")
    @click.pass_obj
    def alerts_list(app, as_user, statuses, all_statuses, region, include_snoozed):
        """Liste les alertes de vos régions (la file de tri par défaut)."""
        from alerts.triage import QUEUE_STATUSES, list_alerts

        st = None if all_statuses else (tuple(statuses) or QUEUE_STATUSES)
        rows = _run(list_alerts, app.ready_engine(), as_user, statuses=st, region=region,
                    include_snoozed=include_snoozed)
        for v in rows:
            click.echo(f"{v.id}\tv{v.version}\t{v.severity_label}\t{v.status_label}\t{v.region_code}\t"
                       f"{v.service_name}\t{v.indicator_label}\t{v.assignee_name or '-'}")
        click.echo(f"{len(rows)} alerte(s)", err=True)

    @alerts.command("show")
    @click.argument("alert_id", type=int)
    @as_option
    @click.pass_obj
    def alerts_show(app, alert_id, as_user):
        """Affiche une alerte et son historique."""
        from alerts.triage import alert_history, get_alert

        engine = app.ready_engine()
        _print_alert(_run(get_alert, engine, as_user, alert_id))
        click.echo("Historique :")
        for h in _run(alert_history, engine, as_user, alert_id):
            click.echo(f"  {h.summary_fr()}")

    @alerts.command("history")
    @click.argument("alert_id", type=int)
    @as_option
    @click.pass_obj
    def alerts_history(app, alert_id, as_user):
        """Affiche l'historique complet d'une alerte (journal d'audit)."""
        from alerts.triage import alert_history

        for h in _run(alert_history, app.ready_engine(), as_user, alert_id):
            click.echo(h.summary_fr())

    def _act(app, fn, alert_id, version, *args, **kwargs):
        from alerts.triage import get_alert

        engine = app.ready_engine()
        as_user = kwargs.pop("as_user")
        if version is None:
            version = _run(get_alert, engine, as_user, alert_id).version
        v = _run(fn, engine, as_user, alert_id, version, *args, **kwargs)
        click.echo(f"Alerte n° {v.id} : {v.status_label} (version {v.version})"
                   + (f", attribuée à {v.assignee_name}" if v.assignee_name else "")
                   + (f", en sourdine jusqu'au {v.snoozed_until:%d/%m/%Y}" if v.snoozed else ""))

    @alerts.command("ack")
    @click.argument("alert_id", type=int)
    @as_option
    @version_option
    @click.option("--comment", default=None)
    @click.pass_obj
    def alerts_ack(app, alert_id, as_user, version, comment):
        """Prend en charge une alerte ouverte."""
        from alerts.triage import acknowledge

        _act(app, acknowledge, alert_id, version, comment=comment, as_user=as_user)

    @alerts.command("assign")
    @click.argument("alert_id", type=int)
    @as_option
    @version_option
    @click.option("--to", "to_email", default=None, metavar="EMAIL", help="Personne à qui attribuer l'alerte.")
    @click.option("--nobody", is_flag=True, help="Retire l'attribution.")
    @click.option("--comment", default=None)
    @click.pass_obj
    def alerts_assign(app, alert_id, as_user, version, to_email, nobody, comment):
        """Attribue une alerte à un agent de sa région."""
        from alerts.triage import assign

        if bool(to_email) == nobody:
            raise _fail("indiquez soit --to EMAIL, soit --nobody")
        target = None if nobody else _user_id(app.ready_engine(), to_email)
        _act(app, assign, alert_id, version, target, comment=comment, as_user=as_user)

    @alerts.command("comment")
    @click.argument("alert_id", type=int)
    @click.argument("text")
    @as_option
    @click.pass_obj
    def alerts_comment(app, alert_id, text, as_user):
        """Ajoute un commentaire à une alerte."""
        from alerts.triage import comment

        v = _run(comment, app.ready_engine(), as_user, alert_id, text)
        click.echo(f"Commentaire ajouté à l'alerte n° {v.id}.")

    @alerts.command("snooze")
    @click.argument("alert_id", type=int)
    @as_option
    @version_option
    @click.option("--until", "until", required=True, metavar="AAAA-MM-JJ", help="Date de retour dans la file.")
    @click.option("--reason", required=True, help="Motif de la mise en sourdine.")
    @click.pass_obj
    def alerts_snooze(app, alert_id, as_user, version, until, reason):
        """Met une alerte en sourdine jusqu'à une date (elle revient d'elle-même)."""
        from alerts.triage import snooze

        _act(app, snooze, alert_id, version, _date(until, "date"), reason, as_user=as_user)

    @alerts.command("unsnooze")
    @click.argument("alert_id", type=int)
    @as_option
    @version_option
    @click.option("--comment", default=None)
    @click.pass_obj
    def alerts_unsnooze(app, alert_id, as_user, version, comment):
        """Met fin à une mise en sourdine."""
        from alerts.triage import unsnooze

        _act(app, unsnooze, alert_id, version, comment=comment, as_user=as_user)

    @alerts.command("dismiss")
    @click.argument("alert_id", type=int)
    @as_option
    @version_option
    @click.option("--reason", required=True,
                  help="faux_positif, explication_service, erreur_donnees ou deja_connu.")
    @click.option("--comment", required=True)
    @click.pass_obj
    def alerts_dismiss(app, alert_id, as_user, version, reason, comment):
        """Classe une alerte, avec un motif et un commentaire."""
        from alerts.triage import dismiss

        _act(app, dismiss, alert_id, version, reason, comment, as_user=as_user)

    @alerts.command("reopen")
    @click.argument("alert_id", type=int)
    @as_option
    @version_option
    @click.option("--comment", required=True, help="Motif de la réouverture.")
    @click.pass_obj
    def alerts_reopen(app, alert_id, as_user, version, comment):
        """Rouvre une alerte classée ou résolue."""
        from alerts.triage import reopen

        _act(app, reopen, alert_id, version, comment, as_user=as_user)

    # ------------------------------------------------------------------ follow-ups

    @cli.group("followups")
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
        owner = _user_id(engine, owner_email or as_user)
        f = _run(create_follow_up, engine, as_user, list(alert_ids), kind, owner, _date(due, "échéance"), notes)
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
        from alerts.followups import ACTIVE, list_follow_ups

        rows = _run(list_follow_ups, app.ready_engine(), as_user, statuses=None if all_statuses else ACTIVE,
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
            version = _run(get_follow_up, engine, as_user, follow_up_id).version
        f = _run(update_follow_up, engine, as_user, follow_up_id, version, status=status,
                 owner_id=_user_id(engine, owner_email) if owner_email else _UNSET,
                 due_date=_date(due, "échéance"), notes=notes if notes is not None else _UNSET,
                 comment=comment)
        click.echo(f"Suite n° {f.id} : {f.status_label}, responsable {f.owner_name}, "
                   f"échéance {f.due_date:%d/%m/%Y} (version {f.version})")

    @followups_group.command("export")
    @as_option
    @click.option("--all", "all_statuses", is_flag=True, help="Y compris les suites terminées ou abandonnées.")
    @click.pass_obj
    def followups_export(app, as_user, all_statuses):
        """Écrit les suites de vos régions en CSV sur la sortie standard."""
        from alerts.followups import ACTIVE, export_follow_ups_csv

        click.echo(_run(export_follow_ups_csv, app.ready_engine(), as_user,
                        statuses=None if all_statuses else ACTIVE), nl=False)

    # ------------------------------------------------------------------ digests

    @cli.group("digest")
    def digest_group():
        """Récapitulatifs par courriel."""

    @digest_group.command("send")
    @click.option("--dry-run", is_flag=True, help="Montre ce qui serait envoyé, sans rien écrire ni envoyer.")
    @click.pass_obj
    def digest_send(app, dry_run):
        """Envoie à chaque abonné les alertes nouvelles ou modifiées de ses régions."""
        from alerts.notify.digest import send_digests
        from alerts.notify.smtp import outbox_pending

        engine = app.ready_engine()
        if dry_run:
            run = send_digests(engine, dry_run=True)
            click.echo(f"Simulation : {run.prepared} récapitulatif(s) à préparer, {run.waiting} déjà en "
                       "attente d'envoi ; rien n'est écrit ni envoyé.")
            for d in run.drafts:
                click.echo(f"  à préparer : {d.recipient} — {d.subject} ({len(d.items)} alerte(s))")
            for r in outbox_pending(engine):
                click.echo(f"  en attente : {r.recipient} — {r.subject} ({r.alert_count} alerte(s), "
                           f"{r.attempts} essai(s))")
            return
        run = send_digests(engine, fail_on_error=False)
        click.echo(f"{run.prepared} récapitulatif(s) préparé(s), {run.sent} envoyé(s)"
                   + (f", {run.waiting} en attente" if run.waiting else "")
                   + (f", {run.interrupted} envoi(s) interrompu(s) à vérifier" if run.interrupted else "") + ".")
        for recipient in run.recipients:
            click.echo(f"  envoyé à {recipient}")
        if run.failed:
            raise _fail(f"{run.waiting} récapitulatif(s) non envoyé(s) : {run.errors[-1]} ; "
                        "ils seront renvoyés au prochain passage")
