"""Données: what was received and from where, what was rejected and why, which services have
not reported, the sources' last pulls and the scheduled jobs' runs."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.vocabulary import dates as timefmt
from dashboard import state, ui

OUTCOMES = {"ok": "réussie", "error": "échec", "running": "en cours", "missed": "manquée",
            "interrupted": "interrompue"}
PULL_STATUS = {"ok": "reçu", "not_modified": "inchangé", "error": "échec", "running": "en cours"}


def _when(values) -> list[str]:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v) or v is pd.NaT:
            out.append("—")
        else:
            out.append(ui.fr_datetime(timefmt.as_utc(pd.Timestamp(v).to_pydatetime())))
    return out


def render() -> None:
    user = state.current_user()
    ui.header("Données", kicker=ui.upper_first(ui.regions_text(user)),
              caption="Réception des indicateurs, lignes rejetées (quarantaine), rapports manquants, sources et "
                      "tâches planifiées.")
    t = state.steward_tables(user)
    rec, quar, subs = t["reception"], t["quarantine"], t["submissions"]
    c = st.columns(4)
    c[0].metric("Services suivis", ui.fr_int(len(rec)))
    c[1].metric("Services en retard de rapport", ui.fr_int(int((rec["missing_count"] > 0).sum()) if len(rec) else 0))
    c[2].metric("Lignes en quarantaine", ui.fr_int(int(t["quarantine_summary"]["rows"].sum())
                                                    if len(t["quarantine_summary"]) else 0))
    c[3].metric("Fichiers reçus", ui.fr_int(len(subs)))
    tabs = st.tabs(["Rapports manquants", "Quarantaine", "Fichiers reçus", "Sources", "Tâches planifiées"])
    with tabs[0]:
        if rec.empty:
            st.caption("Aucun service.")
        else:
            st.dataframe(pd.DataFrame({
                "Service": rec["service_name"], "SIRET": rec["service_id"], "Région": rec["region_code"],
                "État": rec["status"], "Dernière période": rec["last_period"].fillna("—"),
                "Mois manquants (12 derniers)": rec["missing_count"],
                "Lesquels": [", ".join(m) for m in rec["missing_periods"]],
                "Dernier fichier": rec["last_file"].fillna("—"), "Reçu le": _when(rec["last_received_at"]),
            }), hide_index=True, width="stretch")
    with tabs[1]:
        summary = t["quarantine_summary"]
        if summary.empty:
            st.caption("Aucune ligne rejetée.")
        else:
            st.dataframe(summary.rename(columns={"reason_code": "Code", "reason": "Motif", "rows": "Lignes",
                                                 "files": "Fichiers"}), hide_index=True, width="stretch")
            st.dataframe(pd.DataFrame({
                "Reçue le": _when(quar["created_at"]), "Fichier": quar["file_name"], "Ligne": quar["row_number"],
                "Service": quar["service_name"].fillna("(SIRET inconnu)"), "SIRET": quar["service_id"],
                "Indicateur": quar["indicator"], "Période": quar["period"], "Motif": quar["reason"],
                "Contenu reçu": quar["raw"]}), hide_index=True, width="stretch",
                column_config={"Motif": st.column_config.TextColumn(width="large")})
    with tabs[2]:
        if subs.empty:
            st.caption("Aucun fichier reçu.")
        else:
            st.dataframe(pd.DataFrame({
                "N°": subs["id"], "Reçu le": _when(subs["received_at"]), "Source": subs["source"],
                "Fichier": subs["file_name"], "État": subs["status"], "Lignes": subs["rows_total"],
                "Acceptées": subs["accepted"], "Rejetées": subs["rejected"], "Inchangées": subs["unchanged"],
                "Erreur": subs["error"].fillna("")}), hide_index=True, width="stretch")
            if user.regions is not None:
                st.caption("Fichiers ayant apporté des valeurs ou des rejets pour des services de vos régions "
                           "(les totaux portent sur le fichier entier).")
    with tabs[3]:
        src = t["sources"]
        if src.empty:
            st.caption("Aucune source configurée ni relevée : les fichiers ont été chargés en ligne de commande.")
        else:
            view = pd.DataFrame({
                "Source": src["source"], "Type": src["kind"], "Planification": src["schedule"].fillna("—"),
                "Relevés": src["pulls"], "Dernier relevé": _when(src["last_pull_at"]),
                "Résultat": src["last_status"].map(PULL_STATUS).fillna(src["last_status"]).fillna("—"),
                "Dernier succès": _when(src["last_success_at"])})
            if "last_error" in src:
                view["Dernière erreur"] = src["last_error"].fillna("")
            st.dataframe(view, hide_index=True, width="stretch")
    with tabs[4]:
        runs = t["job_runs"]
        if runs.empty:
            st.caption("Aucune exécution enregistrée : les tâches tournent avec « spsti-monitor schedule ».")
        else:
            view = pd.DataFrame({"N°": runs["id"], "Tâche": runs["job_id"], "Début": _when(runs["started_at"]),
                                 "Fin": _when(runs["finished_at"]),
                                 "Résultat": runs["outcome"].map(OUTCOMES).fillna(runs["outcome"]),
                                 "Essai": runs["attempt"]})
            if "counts" in runs:
                view["Détail"] = runs["counts"]
            if "error" in runs:
                view["Erreur"] = runs["error"].fillna("")
            st.dataframe(view, hide_index=True, width="stretch")
        if user.regions is not None:
            st.caption("Les messages d'erreur détaillés sont réservés au niveau national et aux administrateurs.")


if __name__ == "__main__":
    render()
