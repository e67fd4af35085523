"""Alerte (``/alerte?id=N``, the address of the digest links): the French explanation, the
indicator's series against peers with the flagged months, the funnel plot of the period
with the service highlighted, the history, and the triage actions."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from alerts import followups, silences, triage
from alerts.silences import SILENCING_REASONS
from monitor.vocabulary.formatting import fmt_value
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.errors import ServiceError
from monitor.vocabulary.statuses import Action, allowed, status_label, status_title
from dashboard import charts, state, ui
from monitor.readmodels import queue as queue_model
from monitor.readmodels import services as service_model
from monitor.vocabulary.catalogue import CATALOGUE, DISMISS_REASONS


def _pick_alert() -> None:
    st.info("Choisissez une alerte dans la file, ou saisissez son numéro.")
    with st.form("pick_alert", border=False):
        c = st.columns([1, 1, 3], vertical_alignment="bottom")
        number = c[0].number_input("N° d'alerte", min_value=1, step=1, value=None)
        if c[1].form_submit_button("Ouvrir") and number:
            st.query_params["id"] = str(int(number))
            st.rerun()
    st.page_link(ui.PAGE_QUEUE, label="Retour à la file d'alertes", icon=":material/arrow_back:")


def _summary(a: triage.AlertView) -> None:
    sev_cls = f"sev-{a.severity}"
    items = [(f"Gravité {a.severity_label}", sev_cls), (status_title(a.status), "info"),
             *([(f"Réapparue {a.reappearances} fois", "neutral")] if a.reappearances else []),
             (ui.CATEGORY_LABELS.get(a.category, a.category), "neutral")]
    if a.snoozed:
        items.append((f"En sourdine jusqu'au {ui.fr_date(a.snoozed_until)}", "neutral"))
    if a.dismiss_reason_label:
        items.append((f"Motif : {a.dismiss_reason_label}", "neutral"))
    ui.badges(items)
    st.info(ui.md_escape(a.explanation), icon=":material/info:")
    c = st.columns([2, 2, 2, 2])
    with c[0]:
        ui.facts([("Service", a.service_name), ("SIRET", a.service_id)])
        st.page_link(ui.PAGE_SERVICE, label="Fiche du service", icon=":material/apartment:",
                     query_params={"siret": a.service_id})
    with c[1]:
        ui.facts([("Région", f"{a.region_name} ({a.region_code})"),
                  ("Indicateur", a.indicator_label)])
    with c[2]:
        ui.facts([("Ouverte en", ui.period_text(a.opened_period)),
                  ("Dernière période signalée", ui.period_text(a.last_period)),
                  ("Score", f"{a.score:.2f}".replace(".", ","))])
    with c[3]:
        ui.facts([("Attribuée à", a.assignee_name or "personne"), ("Détecteurs", ui.detectors_text(a.detectors))])
        for fu_id in a.follow_up_ids:
            st.page_link(ui.PAGE_FOLLOW_UPS, label=f"Suite n° {fu_id}", icon=":material/assignment:",
                         query_params={"id": str(fu_id)})


def _charts(user, a: triage.AlertView) -> None:
    if a.indicator in ("agrement", "certification"):
        p = service_model.service_profile(state.engine(), user.email, a.service_id)
        cert = "aucune" if not p.certification_level else (
            f"niveau {p.certification_level}, jusqu'au {ui.fr_date(p.certification_end)}")
        ui.facts([("Agrément du service", f"du {ui.fr_date(p.agrement_start)} au {ui.fr_date(p.agrement_end)}"),
                  ("Certification", cert)])
        return
    if a.indicator not in CATALOGUE:
        st.caption("Cette alerte porte sur la réception des rapports : voir la page Données et la fiche du "
                   "service (données reçues).")
        return
    left, right = st.columns(2)
    with left:
        st.subheader("Évolution de l'indicateur", anchor=False)
        series = state.series(user, a.service_id, a.indicator, last_months=36)
        if series.empty:
            st.caption("Aucune valeur reçue pour cet indicateur.")
        else:
            refs = state.reference_lines(user, a.service_id, a.indicator)
            st.altair_chart(charts.series_chart(series, a.indicator, references=refs), width="stretch")
            st.caption("Bleu : le service ; points rouges : mois signalés ; gris : médiane et bande 10–90 % des "
                       "services de France ; pointillés bleus : limites à 99,8 % attendues pour sa taille.")
    with right:
        month = queue_model._month(a.last_period)
        fd = state.funnel(user, a.indicator, month, highlight=a.service_id)
        st.subheader(f"Comparaison aux pairs — {fd.period_label}", anchor=False)
        chart = charts.funnel_chart(fd)
        if chart is None:
            st.caption(fd.note or "Pas de comparaison aux pairs disponible.")
        else:
            st.altair_chart(chart, width="stretch")
            st.caption((fd.note + " " if fd.note else "") + "Gris : services des autres régions (anonymes). "
                       "Cercle noir : ce service.")


def _history(user, a: triage.AlertView) -> None:
    st.subheader("Historique", anchor=False)
    entries = state.alert_history(user, a.id)
    if not entries:
        st.caption("Aucun événement.")
        return
    rows = []
    for e in entries:
        change = ""
        if e.from_value or e.to_value:
            change = f"{e.from_value or '—'} → {e.to_value or '—'}"
        what = (f"Suite n° {e.follow_up_id} : " if e.follow_up_id else "") + e.label
        rows.append({"Date": timefmt.fr_datetime(e.at), "Par": e.actor_name, "Événement": what,
                     "Changement": change, "Période": e.period or "", "Commentaire": e.comment or ""})
    st.dataframe(pd.DataFrame(rows[::-1]), hide_index=True, width="stretch",
                 column_config={"Commentaire": st.column_config.TextColumn(width="large")})
    st.caption("Journal non modifiable : chaque action est enregistrée avec son auteur et sa date.")


def _user_label(u) -> str:
    return f"{u.name} ({u.email})"


def _actions(user, a: triage.AlertView, expected: int) -> None:
    eng = state.engine()
    st.subheader("Actions", anchor=False)
    if not ui.can_write(user):
        ui.read_only_notice(user)
        return
    tabs = st.tabs(["Prendre en charge", "Assigner", "Mettre en sourdine", "Classer", "Créer une suite",
                    "Commenter"])
    with tabs[0]:
        if allowed(Action.ACKNOWLEDGE, a.status):
            with st.form("ack"):
                comment = st.text_input("Commentaire (facultatif)")
                if st.form_submit_button("Prendre en charge", type="primary"):
                    ui.run_action(lambda: triage.acknowledge(eng, user.email, a.id, expected, comment),
                                  "Alerte prise en charge.")
        elif allowed(Action.REOPEN, a.status):
            st.caption(f"Alerte {status_label(a.status)} : vous pouvez la rouvrir.")
            with st.form("reopen"):
                comment = st.text_input("Motif de la réouverture")
                if st.form_submit_button("Rouvrir l'alerte"):
                    ui.run_action(lambda: triage.reopen(eng, user.email, a.id, expected, comment),
                                  "Alerte rouverte.")
        else:
            st.caption(f"Alerte déjà au statut « {status_label(a.status)} ».")
    people = state.assignable(user, a.region_code)
    with tabs[1]:
        if not allowed(Action.ASSIGN, a.status):
            st.caption("Seule une alerte ouverte, prise en charge ou sous suite peut être attribuée.")
        else:
            ids = [None] + [u.id for u in people]
            names = {u.id: _user_label(u) for u in people}
            with st.form("assign"):
                choice = st.selectbox("Attribuer à", ids, index=ids.index(a.assignee_id) if a.assignee_id in ids else 0,
                                      format_func=lambda i: "personne" if i is None else names.get(i, str(i)))
                if user.role == "agent":
                    st.caption("Un agent peut prendre une alerte pour lui-même ; un responsable l'attribue à d'autres.")
                comment = st.text_input("Commentaire (facultatif)", key="assign_comment")
                if st.form_submit_button("Attribuer"):
                    ui.run_action(lambda: triage.assign(eng, user.email, a.id, expected, choice, comment),
                                  "Attribution enregistrée.")
    with tabs[2]:
        if a.snoozed:
            st.caption(f"En sourdine jusqu'au {ui.fr_date(a.snoozed_until)}.")
            with st.form("unsnooze"):
                comment = st.text_input("Commentaire (facultatif)", key="unsnooze_comment")
                if st.form_submit_button("Lever la sourdine"):
                    ui.run_action(lambda: triage.unsnooze(eng, user.email, a.id, expected, comment),
                                  "Sourdine levée.")
        elif allowed(Action.SNOOZE, a.status):
            with st.form("snooze"):
                until = st.date_input("Masquer jusqu'au", value=ui.today() + timedelta(days=30),
                                      min_value=ui.today() + timedelta(days=1),
                                      max_value=ui.today() + timedelta(days=triage.SNOOZE_MAX_DAYS), format="DD/MM/YYYY")
                reason = st.text_input("Motif")
                if st.form_submit_button("Mettre en sourdine"):
                    ui.run_action(lambda: triage.snooze(eng, user.email, a.id, expected, until, reason),
                                  f"Alerte en sourdine jusqu'au {ui.fr_date(until)}.")
        else:
            st.caption("Seule une alerte ouverte ou prise en charge peut être mise en sourdine.")
    with tabs[3]:
        if not allowed(Action.DISMISS, a.status):
            st.caption("Alerte déjà classée.")
        else:
            with st.form("dismiss"):
                reason = st.selectbox("Motif du classement", list(DISMISS_REASONS), format_func=DISMISS_REASONS.get)
                comment = st.text_area("Commentaire (obligatoire)", height=80)
                until = st.date_input("Silence jusqu'au (motifs « explication fournie » et « déjà connu » : aucune "
                                      "nouvelle alerte sur cet indicateur tant que la valeur ne s'aggrave pas)",
                                      value=ui.today() + timedelta(days=365), min_value=ui.today() + timedelta(days=1),
                                      max_value=ui.today() + timedelta(days=3 * 365), format="DD/MM/YYYY")
                if st.form_submit_button("Classer l'alerte"):
                    ui.run_action(lambda: triage.dismiss(eng, user.email, a.id, expected, reason, comment,
                                                         until if reason in SILENCING_REASONS else None),
                                  "Alerte classée.")
    with tabs[4]:
        if not allowed(Action.FOLLOW_UP, a.status):
            st.caption("Alerte classée : rouvrez-la avant d'engager une suite.")
        elif not people:
            st.caption("Aucune personne ne peut être responsable d'une suite dans cette région.")
        else:
            kinds = list(followups.KINDS)
            owner_ids = [u.id for u in people]
            names = {u.id: _user_label(u) for u in people}
            with st.form("follow_up"):
                kind = st.selectbox("Type de suite", kinds,
                                    format_func=lambda k: f"{followups.KINDS[k].label} "
                                                          f"({followups.KINDS[k].legal_reference})")
                owner = st.selectbox("Responsable", owner_ids, format_func=names.get,
                                     index=owner_ids.index(user.id) if user.id in owner_ids else 0)
                due = st.date_input("Échéance", value=timefmt.add_months(ui.today(), 1), min_value=ui.today(),
                                    format="DD/MM/YYYY")
                st.caption("Demande de mise en conformité : délai de 6 mois au plus (art. D4622-51).")
                notes = st.text_area("Notes", height=80)
                if st.form_submit_button("Créer la suite", type="primary"):
                    ui.run_action(lambda: followups.create_follow_up(
                        eng, user.email, [a.id], kind, owner, due, notes, expected_versions={a.id: expected}),
                        f"Suite « {followups.KINDS[kind].label} » créée.")
    with tabs[5]:
        with st.form("comment"):
            text = st.text_area("Commentaire", height=80)
            if st.form_submit_button("Ajouter le commentaire"):
                ui.run_action(lambda: triage.comment(eng, user.email, a.id, text), "Commentaire ajouté.")


def _silences(user, a: triage.AlertView) -> None:
    """The silences this alert's dismissal set: who, why, until when; liftable."""
    for sil in state.silences(user, a.id):
        level = "" if sil.level is None else f" tant que la valeur ne dépasse pas {fmt_value(a.indicator, sil.level)}"
        st.info(ui.md_escape(f"Sous silence jusqu'au {ui.fr_date(sil.until)}{level} : {sil.reason_label.lower()}, "
                             f"par {sil.created_by} le {ui.fr_date(sil.created_at)} ({sil.comment})."))
        if ui.can_write(user):
            with st.form(f"unsilence_{sil.id}"):
                comment = st.text_input("Motif de la levée (facultatif)")
                if st.form_submit_button("Lever le silence"):
                    ui.run_action(lambda: silences.revoke_silence(state.engine(), user.email, sil.id, comment),
                                  "Silence levé : un nouveau constat ouvrira de nouveau une alerte.")


def render() -> None:
    user = state.current_user()
    alert_id = ui.query_int("id")
    if alert_id is None:
        ui.header("Alerte")
        bad = ui.query_invalid("id")
        if bad is not None:
            ui.error(f"« {bad} » n'est pas un numéro d'alerte valide : choisissez une alerte ci-dessous.")
        _pick_alert()
        return
    try:
        a = state.alert(user, alert_id)
    except ServiceError as exc:
        ui.header(f"Alerte n° {alert_id}")
        ui.error(exc.message)
        st.page_link(ui.PAGE_QUEUE, label="Retour à la file d'alertes", icon=":material/arrow_back:")
        return
    # optimistic locking: actions carry the version the user saw on the previous display
    expected = ui.seen_version("alert", a.id, a.version)
    ui.header(f"Alerte n° {a.id} — {a.indicator_label}", kicker=f"{a.service_name} · {a.region_name}")
    st.page_link(ui.PAGE_QUEUE, label="File d'alertes", icon=":material/arrow_back:")
    ui.show_flash()
    _summary(a)
    _charts(user, a)
    _silences(user, a)
    _actions(user, a, expected)
    _history(user, a)
    ui.remember_version("alert", a.id, a.version)


if __name__ == "__main__":
    render()
