"""Suites: the follow-up board (owner, due date, status, overdue first), CSV export, and the
changes of one follow-up (status, owner, due date, notes) with its history."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from alerts import followups
from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.errors import ServiceError
from monitor.vocabulary.statuses import FOLLOW_UP_ACTIVE, FollowUpStatus, follow_up_label
from dashboard import state, ui

FU_CODES = [s.value for s in FollowUpStatus]


def _board(rows) -> pd.DataFrame:
    return pd.DataFrame([{
        "N°": f.id,
        "Retard": f"{f.days_overdue} j" if f.overdue else "",
        "Échéance": ui.fr_date(f.due_date),
        "Statut": f.status_label,
        "Service": f.service_name,
        "Type": f.kind_label,
        "Responsable": f.owner_name or "",
        "Alertes": ", ".join(map(str, f.alert_ids)),
        "Référence": f.legal_reference or "",
        "Région": f.region_name,
        "Créée le": ui.fr_date(f.created_at),
    } for f in rows])


def _editor(user, fu_id: int) -> None:
    eng = state.engine()
    try:
        f = followups.get_follow_up(eng, user.email, fu_id)
    except ServiceError as exc:
        ui.error(exc.message)
        return
    expected = ui.seen_version("follow_up", f.id, f.version)
    st.subheader(f"Suite n° {f.id} — {f.kind_label}", anchor=False)
    ui.badges([(f.status_label, "info"), (f"Réf. {f.legal_reference}" if f.legal_reference else "", "neutral")]
              + ([(f"En retard de {f.days_overdue} jours", "sev-high")] if f.overdue else []))
    c = st.columns(3)
    with c[0]:
        ui.facts([("Service", f.service_name), ("SIRET", f.service_id)])
        st.page_link(ui.PAGE_SERVICE, label="Fiche du service", icon=":material/apartment:",
                     query_params={"siret": f.service_id})
    with c[1]:
        ui.facts([("Responsable", f.owner_name or "—"), ("Échéance", ui.fr_date(f.due_date)),
                  ("Créée par", f.created_by), ("Créée le", ui.fr_datetime(f.created_at))])
    with c[2]:
        ui.facts([("Notes", f.notes or "—")])
        for aid in f.alert_ids:
            st.page_link(ui.PAGE_ALERT, label=f"Alerte n° {aid}", icon=":material/report:",
                         query_params={"id": str(aid)})
    if ui.can_write(user):
        people = state.assignable(user, f.region_code)
        owner_ids = [u.id for u in people]
        if f.owner_id is not None and f.owner_id not in owner_ids:
            owner_ids = [f.owner_id] + owner_ids
        names = {u.id: f"{u.name} ({u.email})" for u in people}
        names.setdefault(f.owner_id, f.owner_name or str(f.owner_id))
        with st.form(f"fu_edit_{f.id}"):
            cc = st.columns(3)
            status = cc[0].selectbox("Statut", FU_CODES, index=FU_CODES.index(f.status),
                                     format_func=follow_up_label)
            owner = cc[1].selectbox("Responsable", owner_ids, format_func=lambda i: names.get(i, str(i)),
                                    index=owner_ids.index(f.owner_id) if f.owner_id in owner_ids else 0)
            due = cc[2].date_input("Échéance", value=f.due_date or ui.today() + timedelta(days=30),
                                   format="DD/MM/YYYY")
            notes = st.text_area("Notes", value=f.notes or "", height=80)
            comment = st.text_input("Commentaire (obligatoire pour abandonner la suite)")
            if st.form_submit_button("Enregistrer", type="primary"):
                kwargs = {}
                if status != f.status:
                    kwargs["status"] = status
                if owner != f.owner_id:
                    kwargs["owner_id"] = owner
                if due != f.due_date:
                    kwargs["due_date"] = due
                if (notes or None) != (f.notes or None):
                    kwargs["notes"] = notes
                ui.run_action(lambda: followups.update_follow_up(eng, user.email, f.id, expected, comment=comment,
                                                                 **kwargs), "Suite mise à jour.")
    else:
        ui.read_only_notice(user, "les suites")
    events = followups.follow_up_history(eng, user.email, f.id)
    if events:
        st.markdown("**Historique de la suite**")
        st.dataframe(pd.DataFrame([{
            "Date": ui.fr_datetime(timefmt.as_utc(e.at)), "Par": e.actor,
            "Événement": followups_event_label(e.kind), "Avant": e.from_value or "", "Après": e.to_value or "",
            "Commentaire": e.comment or ""} for e in events][::-1]), hide_index=True, width="stretch")
    ui.remember_version("follow_up", f.id, f.version)


def followups_event_label(kind: str) -> str:
    from monitor.vocabulary.labels import EVENT_FR

    return EVENT_FR.get(kind, kind).capitalize()


def render() -> None:
    user = state.current_user()
    ui.header("Suites", kicker=ui.upper_first(ui.regions_text(user)),
              caption="Suites engagées sur les alertes : les suites en retard d'abord, puis par échéance.")
    ui.show_flash()
    with st.container(border=True):
        c = st.columns([2, 1, 1, 1])
        statuses = tuple(c[0].multiselect("Statut", FU_CODES, default=[s.value for s in FOLLOW_UP_ACTIVE],
                                          format_func=follow_up_label, placeholder="Tous", key="fu_status"))
        mine = c[1].toggle("Mes suites", key="fu_mine")
        overdue = c[2].toggle("En retard seulement", key="fu_overdue")
    filters = dict(statuses=statuses or None, owner_id=user.id if mine else None, overdue_only=overdue)
    rows = state.follow_ups(user, **filters)
    today = ui.today()
    m = st.columns(4)
    m[0].metric("Suites affichées", ui.fr_int(len(rows)))
    m[1].metric("En retard", ui.fr_int(sum(f.overdue for f in rows)))
    m[2].metric("Échéance sous 30 jours", ui.fr_int(sum(
        1 for f in rows if f.status in FOLLOW_UP_ACTIVE and f.due_date and today <= f.due_date <= today + timedelta(days=30))))
    csv = followups.export_follow_ups_csv(state.engine(), user.email, **filters)
    c[3].download_button("Exporter (CSV)", csv.encode("utf-8-sig"), file_name=f"suites-{today.isoformat()}.csv",
                         mime="text/csv", icon=":material/download:", on_click="ignore")
    selected = ui.query_int("id")
    if not rows:
        st.info("Aucune suite ne correspond à ces filtres.")
    else:
        board = _board(rows)
        if user.regions is not None and len(user.regions) == 1:
            board = board.drop(columns=["Région"])
        event = st.dataframe(board, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                             key="fu_table", column_config={"N°": st.column_config.NumberColumn(format="%d")})
        row = ui.selected_row(event)
        if row is not None:
            selected = int(board.iloc[row]["N°"])
            st.query_params["id"] = str(selected)
        st.caption("Cliquez sur une ligne pour voir et modifier la suite.")
    if selected is not None:
        st.divider()
        _editor(user, selected)


if __name__ == "__main__":
    render()
