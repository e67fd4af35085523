"""``digest send``: e-mail digests of new and changed alerts."""
from __future__ import annotations

import click

from monitor.cli.common import fail


@click.group("digest")
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
        raise fail(f"{run.waiting} récapitulatif(s) non envoyé(s) : {run.errors[-1]} ; "
                    "ils seront renvoyés au prochain passage")
