"""Vue régionale / nationale: per region, alerts to handle and key indicators; a tile map of
the regions; drill-down region → department → service; a services × indicators heat map of
peer z-scores."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.vocabulary.formatting import fmt_value
from monitor.dialogue import objectives as objectives_model
from dashboard import charts, state, ui
from monitor.readmodels import common as readmodel
from monitor.readmodels import overview as overview_model
from monitor.vocabulary.periods import month_label_fr


def _regions_table(summary: pd.DataFrame) -> None:
    t = pd.DataFrame({
        "Région": summary["region_name"] + " (" + summary["region_code"] + ")",
        "Services": summary["services"],
        "Salariés suivis": [ui.fr_int(v) for v in summary["workers_followed"]],
        "Alertes à traiter": summary["open_alerts"],
        "dont élevées": summary["high"],
        "Suites en cours": summary["follow_ups"],
        "dont en retard": summary["overdue_follow_ups"],
    })
    for code in readmodel.KEY_INDICATORS:
        t[f"{readmodel.indicator_label(code)} (médiane)"] = [
            fmt_value(code, v) if v == v else "n.d." for v in summary[f"median_{code}"]]
    st.dataframe(t, hide_index=True, width="stretch")


def _feedback(user) -> None:
    """What triage says back: precision by detector and indicator, response delays."""
    fb = state.triage_feedback(user)
    with st.expander("Retour du triage : précision des détecteurs et délais de réponse", expanded=False):
        st.caption("Précision : part des alertes décidées (classées ou suivies d'une suite) qui n'étaient pas "
                   "des faux positifs ; une « erreur de données » compte contre un détecteur statistique.")
        if fb.precision.empty:
            st.info("Aucune alerte dans votre périmètre.")
        else:
            p = fb.precision
            st.dataframe(pd.DataFrame({
                "Détecteur": [ui.DETECTOR_LABELS.get(d, d) for d in p["detector"]],
                "Indicateur": [readmodel.indicator_label(c) for c in p["indicator"]],
                "Alertes": p["alerts"], "Décidées": p["decided"], "Faux positifs": p["faux_positif"],
                "Erreurs de données": p["erreur_donnees"], "Suites": p["suites"],
                "Précision": ["—" if v != v else f"{ui.fr_int(100 * v)} %" for v in p["precision"]],
            }), hide_index=True, width="stretch")
        d = fb.delays
        if len(d):
            st.markdown("**Délais de réponse** (jours depuis l'ouverture, médiane)")
            st.dataframe(pd.DataFrame({
                "Région": [f"{ui.region_name(r)} ({r})" for r in d["region_code"]],
                "Gravité": [ui.SEVERITY_LABELS.get(v, v) for v in d["severity"]],
                "Alertes": d["alerts"], "Prises en charge": d["acknowledged"],
                "Délai de prise en charge": [ui.fr_days(v) for v in d["median_days_to_ack"]],
                "Suites": d["followed_up"],
                "Délai jusqu'à la suite": [ui.fr_days(v) for v in d["median_days_to_follow_up"]],
                f"Sans action depuis {fb.untouched_days} j": d["untouched"],
            }), hide_index=True, width="stretch")
    if len(fb.untouched):
        st.warning(f"{len(fb.untouched)} alerte(s) sans aucune action depuis {fb.untouched_days} jours ou plus "
                   "dans votre périmètre : voir la file d'alertes.")


def _steering(user) -> None:
    st.subheader("Pilotage territorial : objectifs CPOM atteints", anchor=False)
    steer = objectives_model.territorial_steering(state.engine(), user.email)
    if steer.empty:
        st.caption("Aucun objectif CPOM enregistré dans votre périmètre (commande « objectives load »).")
        return
    years = sorted(steer["year"].unique().tolist(), reverse=True)
    year = st.selectbox("Année des objectifs", years, key="ov_obj_year")
    s = steer[steer["year"] == year]
    table = (s.assign(cell=[f"{ui.fr_int(round(100 * v))} % ({m}/{a})" if a else "pas de données"
                            for v, m, a in zip(s["share_met"], s["met"], s["assessed"])],
                      region=s["region_name"] + " (" + s["region_code"] + ")")
             .pivot(index="region", columns="indicator_label", values="cell").fillna("—"))
    st.dataframe(table.rename_axis("Région").reset_index(), hide_index=True, width="stretch")
    st.caption("Part des objectifs atteints parmi ceux qui peuvent être évalués (données reçues), par région et "
               "par indicateur, du côté défavorable de chaque indicateur. L'année en cours est incomplète.")


def render() -> None:
    user = state.current_user()
    national = user.regions is None
    ui.header("Vue nationale" if national else "Vue régionale", kicker=ui.upper_first(ui.regions_text(user)),
              caption="Alertes ouvertes ou prises en charge, suites en cours et médianes des indicateurs clés "
                      "au dernier mois reçu.")
    summary = state.region_summary(user)
    c = st.columns(4)
    c[0].metric("Services", ui.fr_int(summary["services"].sum()))
    c[1].metric("Alertes à traiter", ui.fr_int(summary["open_alerts"].sum()))
    c[2].metric("dont gravité élevée", ui.fr_int(summary["high"].sum()))
    c[3].metric("Suites en retard", ui.fr_int(summary["overdue_follow_ups"].sum()))
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Carte des régions", anchor=False)
        st.altair_chart(charts.tile_map(overview_model.region_tiles(summary)))
        if not national:
            st.caption("Les régions hors de votre périmètre sont grisées, sans chiffres.")
    with right:
        if len(summary) == 1:
            r = summary.iloc[0]
            st.subheader(f"{r['region_name']} : indicateurs clés", anchor=False)
            st.caption("Médiane des services de la région au dernier mois reçu.")
            cols = st.columns(2)
            for i, code in enumerate(readmodel.KEY_INDICATORS):
                v = r[f"median_{code}"]
                text = (ui.fr_int(v) if code == "workers_per_physician_fte" else fmt_value(code, v)) if v == v else "n.d."
                cols[i % 2].metric(readmodel.indicator_label(code), text)
            cols = st.columns(2)
            cols[0].metric("Salariés suivis", ui.fr_int(r["workers_followed"]))
            cols[1].metric("Suites en cours", ui.fr_int(r["follow_ups"]))
        else:
            st.subheader("Par région", anchor=False)
            _regions_table(summary)

    if user.role in ("manager", "national", "admin"):
        _feedback(user)

    _steering(user)

    st.subheader("Exploration : région → département → service", anchor=False)
    codes = summary["region_code"].tolist()
    c = st.columns(3)
    region_opts = ([None] if national else []) + codes
    region = c[0].selectbox("Région", region_opts, key="ov_region",
                            format_func=lambda r: "Toutes les régions" if r is None else f"{ui.region_name(r)} ({r})")
    department = None
    if region is not None:
        deps = state.department_summary(user, region)
        department = c[1].selectbox("Département", [None] + deps["department_code"].tolist(), key="ov_department",
                                    format_func=lambda d: "Tous les départements" if d is None else d)
        with st.expander(f"Départements de {ui.region_name(region)}", expanded=False):
            st.dataframe(deps.rename(columns={"department_code": "Département", "services": "Services présents",
                                              "workers_followed": "Salariés suivis (services présents)",
                                              "open_alerts": "Alertes à traiter", "high_alerts": "dont élevées"}),
                         hide_index=True, width="stretch")
            st.caption("Un service interdépartemental compte dans chaque département qu'il couvre.")
    services = state.services(user, region=region, department=department)
    if services.empty:
        st.info("Aucun service dans cette sélection.")
        return
    table = pd.DataFrame({"Service": services["name"], "SIRET": services["service_id"],
                          "Région": services["region_name"], "Départements": services["departments"],
                          "Salariés suivis": services["workers_followed"], "Alertes à traiter": services["open_alerts"],
                          "dont élevées": services["high_alerts"], "Suites en cours": services["active_follow_ups"]})
    event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         key="ov_services", height=min(420, 38 + 35 * len(table)))
    st.caption("Cliquez sur une ligne pour ouvrir la fiche du service.")
    row = ui.selected_row(event)
    if row is not None:
        ui.open_service(table.iloc[row]["SIRET"])

    st.subheader("Carte de chaleur : écarts aux pairs", anchor=False)
    months = state.analysis_months()
    if not months:
        st.caption("Aucune donnée.")
        return
    labels = {m: month_label_fr(m) for m in reversed(months[-36:])}
    month = st.selectbox("Mois", list(labels), format_func=labels.get, key="ov_month")
    heat = state.heatmap(user, month, region=region, department=department)
    n_services = heat["service_id"].nunique() if len(heat) else 0
    if n_services > 40 and not st.toggle(f"Afficher les {n_services} services", key="ov_all_heat"):
        heat = overview_model.heatmap_top(heat, 40)
        st.caption("Les 40 services dont un indicateur s'écarte le plus de ses pairs du côté défavorable.")
    chart = charts.heatmap_chart(heat)
    if chart is None:
        st.caption("Aucune comparaison disponible pour ce mois.")
    else:
        st.altair_chart(chart, width="stretch")
        limit = f"{readmodel.peer_config().limit_z:.1f}".replace(".", ",")
        st.caption("z ajusté du côté défavorable de chaque indicateur : rouge = moins bien que les pairs, "
                   f"bleu = mieux ; au-delà de {limit}, le détecteur d'écart aux pairs peut lever une alerte "
                   "(s'il persiste). Indicateur trimestriel : dernier trimestre connu.")


if __name__ == "__main__":
    render()

