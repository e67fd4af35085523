"""Service (``/service?siret=…``): identity, every indicator against its peers (small
multiples), alerts, follow-ups and the data received."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.errors import ServiceError
from monitor.vocabulary.statuses import status_title
from dashboard import charts, state, ui
from monitor.dialogue import dossier_pdf
from monitor.dialogue import objectives as objectives_model
from monitor.readmodels import reception as reception_model
from monitor.readmodels import services as service_model


OBJECTIVE_COLUMNS = {"year": "Année", "indicator_label": "Indicateur", "label": "Objectif", "target_text": "Cible",
                     "value_text": "Réalisé", "status_fr": "Atteinte", "trend_fr": "Tendance"}

def _pick(user) -> str | None:
    services = state.services(user)
    if services.empty:
        st.info("Aucun service dans vos régions.")
        return None
    ids = services["service_id"].tolist()
    names = dict(zip(services["service_id"], services["name"] + " — " + services["service_id"]))
    choice = st.selectbox("Choisir un service", ids, index=None, format_func=names.get,
                          placeholder="Nom du service ou SIRET", key="svc_pick")
    if choice:
        st.query_params["siret"] = choice
        st.rerun()
    table = services[["name", "service_id", "region_name", "departments", "workers_followed", "open_alerts"]].rename(
        columns={"name": "Service", "service_id": "SIRET", "region_name": "Région", "departments": "Départements",
                 "workers_followed": "Salariés suivis", "open_alerts": "Alertes à traiter"})
    event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="svc_table")
    row = ui.selected_row(event)
    if row is not None:
        ui.open_service(table.iloc[row]["SIRET"])
    st.caption("Cliquez sur une ligne pour ouvrir la fiche du service.")
    return None


def _agrement_text(p: service_model.ServiceProfile) -> tuple[str, str | None]:
    if p.agrement_end is None:
        return "—", None
    start = f"du {ui.fr_date(p.agrement_start)} " if p.agrement_start else ""
    text = f"{start}au {ui.fr_date(p.agrement_end)}"
    today = ui.today()
    if p.agrement_end < today:
        return text, "L'agrément est expiré."
    if p.agrement_end <= timefmt.add_months(today, 6):
        return text, "L'agrément expire dans moins de 6 mois : préparer le renouvellement (D4622-48)."
    return text, None


def _identity(p: service_model.ServiceProfile) -> None:
    agr, warn = _agrement_text(p)
    cert = "aucune" if not p.certification_level else (
        f"niveau {p.certification_level}" + (f", jusqu'au {ui.fr_date(p.certification_end)}" if p.certification_end else ""))
    c = st.columns(4)
    with c[0]:
        ui.facts([("SIRET", p.service_id), ("Région", f"{p.region_name} ({p.region_code})")])
    with c[1]:
        ui.facts([("Départements", ", ".join(p.departments) or "—"),
                  ("Salariés suivis", ui.fr_int(p.workers_followed)),
                  ("Entreprises adhérentes", ui.fr_int(p.companies))])
    with c[2]:
        ui.facts([("Agrément", agr), ("Certification", cert)])
    with c[3]:
        ui.facts([("Plafond de salariés par ETP de médecin",
                   ui.fr_int(p.max_workers_per_physician_fte) if p.max_workers_per_physician_fte else "—"),
                  ("Cotisation par salarié",
                   f"{p.cotisation_per_worker:.2f} €".replace(".", ",") if p.cotisation_per_worker else "—")])
        if p.merger_periods:
            ui.facts([("Fusions déclarées", p.merger_periods.replace(";", ", "))])
    if warn:
        st.warning(warn, icon=":material/warning:")


def _alerts(user, sid: str) -> None:
    rows = state.service_alerts(user, sid)
    if not rows:
        st.caption("Aucune alerte pour ce service.")
        return
    df = pd.DataFrame([{"N°": a.id, "Gravité": ui.SEVERITY_LABELS.get(a.severity, a.severity),
                        "Statut": status_title(a.status), "Indicateur": a.indicator_label,
                        "Catégorie": ui.CATEGORY_LABELS.get(a.category, a.category), "Depuis": a.opened_period,
                        "Dernière période": a.last_period, "Explication": a.explanation} for a in rows])
    event = st.dataframe(df, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="svc_alerts", column_config={"Explication": st.column_config.TextColumn(width="large")})
    row = ui.selected_row(event)
    if row is not None:
        ui.open_alert(int(df.iloc[row]["N°"]))
    st.caption("Cliquez sur une ligne pour ouvrir l'alerte.")


def _follow_ups(user, sid: str) -> None:
    rows = state.follow_ups(user, statuses=None, service_id=sid)
    if not rows:
        st.caption("Aucune suite pour ce service.")
        return
    st.dataframe(pd.DataFrame([{
        "N°": f.id, "Type": f.kind_label, "Référence": f.legal_reference or "", "Responsable": f.owner_name or "",
        "Échéance": ui.fr_date(f.due_date), "Statut": f.status_label + (" (en retard)" if f.overdue else ""),
        "Alertes": ", ".join(map(str, f.alert_ids))} for f in rows]), hide_index=True, width="stretch")


def _data(user, sid: str) -> None:
    d = reception_model.service_reception(state.engine(), user.email, sid)
    rec = d["reception"]
    if len(rec):
        r = rec.iloc[0]
        c = st.columns(3)
        c[0].metric("Dernière période reçue", r["last_period"] or "—")
        c[1].metric("Rapports mensuels manquants (12 mois)", ui.fr_int(r["missing_count"]))
        c[2].metric("État", r["status"])
        if r["missing_count"]:
            st.caption("Mois manquants : " + ", ".join(r["missing_periods"]))
    subs = d["submissions"]
    if len(subs):
        st.dataframe(subs.assign(received_at=[ui.fr_datetime(timefmt.as_utc(x)) for x in subs["received_at"]])
                     .rename(columns={"submission_id": "Envoi n°", "received_at": "Reçu le", "source": "Source",
                                      "file_name": "Fichier", "rows": "Valeurs acceptées",
                                      "first_period": "Première période", "last_period": "Dernière période"}),
                     hide_index=True, width="stretch")
    q = d["quarantine"]
    if len(q):
        st.markdown("**Lignes rejetées**")
        st.dataframe(q[["period", "indicator", "reason", "file_name", "row_number", "raw"]]
                     .rename(columns={"period": "Période", "indicator": "Indicateur", "reason": "Motif",
                                      "file_name": "Fichier", "row_number": "Ligne", "raw": "Contenu reçu"}),
                     hide_index=True, width="stretch")
    else:
        st.caption("Aucune ligne rejetée pour ce service.")


def _objectives(user, sid: str) -> None:
    obj = objectives_model.service_objectives(state.engine(), user.email, sid)
    if obj.empty:
        st.caption("Aucun objectif CPOM enregistré pour ce service (commande « objectives load »).")
        return
    st.dataframe(obj[list(OBJECTIVE_COLUMNS)].rename(columns=OBJECTIVE_COLUMNS).fillna(""), hide_index=True,
                 width="stretch")
    st.caption("Atteint : le réalisé n'est pas du côté défavorable de la cible (catalogue « se dégrade quand »). "
               "Tendance : par rapport à l'année précédente, du même point de vue.")


def _dossier(user, p: service_model.ServiceProfile) -> None:
    key = f"dossier_pdf_{p.service_id}"
    c = st.columns([2, 2, 3])
    if c[0].button("Préparer le dossier de dialogue (PDF)", icon=":material/picture_as_pdf:", key="dossier_make"):
        try:
            with st.spinner("Préparation du dossier…"):
                st.session_state[key] = dossier_pdf.dossier_pdf(state.engine(), user.email, p.service_id,
                                                                panel=state.panel())
        except ServiceError as exc:
            ui.error(exc.message)
    if key in st.session_state:
        c[1].download_button("Télécharger le dossier", data=st.session_state[key], mime="application/pdf",
                             file_name=f"dossier-dialogue-{p.service_id}.pdf", icon=":material/download:",
                             key="dossier_download")
    c[2].caption("Dossier pour le renouvellement de l'agrément (D4622-48) : points à aborder, calendrier, "
                 "indicateurs face aux pairs, objectifs du CPOM, alertes et suites, qualité des données.")


def render() -> None:
    user = state.current_user()
    sid = ui.query_str("siret")
    if sid is None:
        ui.header("Service", caption="Fiche d'un service de prévention et de santé au travail de vos régions.")
        _pick(user)
        return
    try:
        p = service_model.service_profile(state.engine(), user.email, sid)
    except ServiceError as exc:
        ui.header("Service")
        ui.error(exc.message)
        if st.button("Choisir un autre service"):
            del st.query_params["siret"]
            st.rerun()
        return
    ui.header(p.name, kicker=f"Service de prévention et de santé au travail · {p.region_name}")
    c = st.columns([1, 1, 4])
    c[0].page_link(ui.PAGE_QUEUE, label="File d'alertes", icon=":material/arrow_back:")
    if c[1].button("Autre service", icon=":material/search:"):
        del st.query_params["siret"]
        st.rerun()
    _identity(p)
    _dossier(user, p)
    st.subheader("Indicateurs des 24 derniers mois", anchor=False)
    sm = state.small_multiples(user, p.service_id)
    chart = charts.small_multiples(sm) if len(sm) else None
    if chart is None:
        st.caption("Aucune donnée reçue pour ce service.")
    else:
        st.altair_chart(chart)
        st.caption("Bleu : le service ; rouge : mois signalés par un détecteur ; gris : médiane et bande 10–90 % de "
                   "l'ensemble des services (sans bande pour les indicateurs qui dépendent de la taille).")
    tabs = st.tabs(["Alertes", "Suites", "Objectifs CPOM", "Données reçues"])
    with tabs[0]:
        _alerts(user, p.service_id)
    with tabs[1]:
        _follow_ups(user, p.service_id)
    with tabs[2]:
        _objectives(user, p.service_id)
    with tabs[3]:
        _data(user, p.service_id)


if __name__ == "__main__":
    render()
