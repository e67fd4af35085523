"""``alerts``: export, and triage from the command line through the same service layer as the
dashboard (roles, regions, optimistic locking with ``--version``, audit)."""
from __future__ import annotations

import click

from monitor.cli.common import App, CliError, as_option, fail, pass_app, run_service, user_id, version_option, parse_date

@click.group()
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
    from alerts.triage import list_alerts
    from monitor.vocabulary.statuses import QUEUE

    st = None if all_statuses else (tuple(statuses) or QUEUE)
    rows = run_service(list_alerts, app.ready_engine(), as_user, statuses=st, region=region,
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
    _print_alert(run_service(get_alert, engine, as_user, alert_id))
    click.echo("Historique :")
    for h in run_service(alert_history, engine, as_user, alert_id):
        click.echo(f"  {h.summary_fr()}")

@alerts.command("history")
@click.argument("alert_id", type=int)
@as_option
@click.pass_obj
def alerts_history(app, alert_id, as_user):
    """Affiche l'historique complet d'une alerte (journal d'audit)."""
    from alerts.triage import alert_history

    for h in run_service(alert_history, app.ready_engine(), as_user, alert_id):
        click.echo(h.summary_fr())

def _act(app, fn, alert_id, version, *args, **kwargs):
    from alerts.triage import get_alert

    engine = app.ready_engine()
    as_user = kwargs.pop("as_user")
    if version is None:
        version = run_service(get_alert, engine, as_user, alert_id).version
    v = run_service(fn, engine, as_user, alert_id, version, *args, **kwargs)
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
        raise fail("indiquez soit --to EMAIL, soit --nobody")
    target = None if nobody else user_id(app.ready_engine(), to_email)
    _act(app, assign, alert_id, version, target, comment=comment, as_user=as_user)

@alerts.command("comment")
@click.argument("alert_id", type=int)
@click.argument("text")
@as_option
@click.pass_obj
def alerts_comment(app, alert_id, text, as_user):
    """Ajoute un commentaire à une alerte."""
    from alerts.triage import comment

    v = run_service(comment, app.ready_engine(), as_user, alert_id, text)
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

    _act(app, snooze, alert_id, version, parse_date(until, "date"), reason, as_user=as_user)

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
@click.option("--until", default=None, metavar="AAAA-MM-JJ",
              help="Fin du silence (motifs explication_service et deja_connu ; par défaut dans un an).")
@click.pass_obj
def alerts_dismiss(app, alert_id, as_user, version, reason, comment, until):
    """Classe une alerte, avec un motif et un commentaire ; « explication fournie par le service » et
    « déjà connu » mettent aussi l'indicateur du service sous silence."""
    from alerts.triage import dismiss

    _act(app, dismiss, alert_id, version, reason, comment, parse_date(until, "fin du silence"), as_user=as_user)

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


@alerts.command("feedback")
@as_option
@click.option("--region", default=None, help="Code INSEE d'une de vos régions.")
@click.option("--untouched-days", type=click.IntRange(1, 3650), default=None,
              help="Délai (jours) au-delà duquel une alerte sans aucune action est signalée "
                   "(sinon $SPSTI_MONITOR_UNTOUCHED_DAYS, 14 par défaut).")
@click.pass_obj
def alerts_feedback(app, as_user, region, untouched_days):
    """Retour du triage : précision par détecteur et indicateur, délais de réponse, alertes sans action."""
    from alerts.feedback import triage_feedback
    from monitor.vocabulary.formatting import fr_number, label
    from monitor.vocabulary.labels import severity_fr

    fb = run_service(triage_feedback, app.ready_engine(), as_user, region=region, untouched_days=untouched_days)

    def num(x, d=1):
        return "—" if x != x else fr_number(x, d)

    click.echo("Précision par détecteur et indicateur (décisions de triage : classements et suites)")
    click.echo("détecteur\tindicateur\talertes\tdécidées\tfaux positifs\terreurs de données\texplications"
               "\tdéjà connues\tsuites\tprécision")
    for r in fb.precision.itertuples(index=False):
        prec = "—" if r.precision != r.precision else f"{fr_number(100 * r.precision, 0)} %"
        click.echo(f"{r.detector}\t{label(r.indicator)}\t{r.alerts}\t{r.decided}\t{r.faux_positif}\t"
                   f"{r.erreur_donnees}\t{r.explication_service}\t{r.deja_connu}\t{r.suites}\t{prec}")
    click.echo("")
    click.echo("Délais de réponse par région et gravité (jours depuis l'ouverture)")
    click.echo("région\tgravité\talertes\tprises en charge\tdélai médian\tsuites\tdélai médian\t"
               f"sans action depuis {fb.untouched_days} j")
    for r in fb.delays.itertuples(index=False):
        click.echo(f"{r.region_code}\t{severity_fr(r.severity)}\t{r.alerts}\t{r.acknowledged}\t"
                   f"{num(r.median_days_to_ack)}\t{r.followed_up}\t{num(r.median_days_to_follow_up)}\t{r.untouched}")
    click.echo("")
    click.echo(f"Alertes sans aucune action depuis {fb.untouched_days} jours ou plus : {len(fb.untouched)}")
    for r in fb.untouched.itertuples(index=False):
        click.echo(f"  n° {r.id} — {r.service_name} ({r.region_code}) — {label(r.indicator)} — "
                   f"gravité {severity_fr(r.severity)} — {num(r.days, 0)} j")


@alerts.command("silences")
@as_option
@click.option("--all", "all_silences", is_flag=True, help="Y compris les silences levés ou échus.")
@click.pass_obj
def alerts_silences(app, as_user, all_silences):
    """Liste les silences de vos régions : qui, pourquoi, jusqu'à quand."""
    from alerts.silences import list_silences
    from monitor.vocabulary.formatting import fmt_value, label

    rows = run_service(list_silences, app.ready_engine(), as_user, active_only=not all_silences)
    ended = {"revoked": "levé", "worsened": "fin : valeur aggravée"}
    for v in rows:
        state = "en vigueur" if v.active else ended.get(v.ended_reason, "échu")
        click.echo(f"{v.id}	alerte n° {v.alert_id}	{v.service_name}	{label(v.indicator)}	"
                   f"niveau {fmt_value(v.indicator, v.level)}	jusqu'au {v.until:%d/%m/%Y}	{v.reason_label}	"
                   f"par {v.created_by}	{state}	{v.comment}")
    click.echo(f"{len(rows)} silence(s)", err=True)


@alerts.command("unsilence")
@click.argument("silence_id", type=int)
@as_option
@click.option("--comment", default=None)
@click.pass_obj
def alerts_unsilence(app, silence_id, as_user, comment):
    """Lève un silence : le prochain constat de cet indicateur ouvrira de nouveau une alerte."""
    from alerts.silences import revoke_silence

    v = run_service(revoke_silence, app.ready_engine(), as_user, silence_id, comment)
    click.echo(f"Silence n° {v.id} levé ({v.service_name}, {v.indicator}).")
