"""File d'alertes: the open alerts of the user's regions."""
from __future__ import annotations

import streamlit as st

from alerts.explain import label
from alerts.queries import Scope, alerts_frame
from dashboard import state

CATEGORY_FR = {"drift": "Dérive", "peer_outlier": "Écart aux pairs", "rule": "Règle",
               "data_quality": "Qualité des données"}
SEVERITY_FR = {"high": "Élevée", "medium": "Moyenne", "low": "Faible"}


def render() -> None:
    user = state.current_user()
    df = alerts_frame(state.engine(), Scope.of(user))
    st.title("File d'alertes")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Alertes ouvertes", len(df))
    for col, sev in zip((c2, c3, c4), ("high", "medium", "low")):
        col.metric(f"Gravité {SEVERITY_FR[sev].lower()}", int((df["severity"] == sev).sum()))
    if df.empty:
        st.info("Aucune alerte ouverte dans vos régions.")
        return
    view = df.assign(
        Service=df["service_name"], Région=df["region_name"],
        Indicateur=[label(i) for i in df["indicator"]],
        Catégorie=df["category"].map(CATEGORY_FR), Gravité=df["severity"].map(SEVERITY_FR),
        Score=df["score"].round(2), Ouverte=df["opened_period"], Dernière=df["last_period"],
        Explication=df["explanation"])
    st.dataframe(view[["Service", "Région", "Indicateur", "Catégorie", "Gravité", "Score", "Ouverte",
                       "Dernière", "Explication"]], hide_index=True, use_container_width=True)
