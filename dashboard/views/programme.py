"""Programme de contrôle (``/programme``): the region's services ranked by a transparent risk
score, the weights shown, the top N selected; a manager changes the selection with a reason
and saves it; CSV, PDF and partner (ARS) exports. Read-only for the national level."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import state, ui
from monitor.dialogue import programme as programme_model
from monitor.dialogue.programme_pdf import programme_pdf
from monitor.dialogue.scoring import weights_table
from monitor.vocabulary.catalogue import REGIONS
from monitor.vocabulary.errors import ServiceError

COLUMNS = {"rank": "Rang", "service_name": "Service", "service_id": "SIRET", "score": "Score",
           "selected": "Retenu", "change_reason": "Motif du changement", "reasons": "Motifs du score"}


def _regions(user) -> list[str]:
    return list(REGIONS) if user.regions is None else list(user.regions)


def _editor(p, may_save: bool) -> pd.DataFrame:
    table = p.rows.assign(change_reason=p.rows["change_reason"].fillna(""))[list(COLUMNS)].rename(columns=COLUMNS)
    config = {"Motifs du score": st.column_config.TextColumn(width="large"),
              "Retenu": st.column_config.CheckboxColumn(disabled=not may_save),
              "Motif du changement": st.column_config.TextColumn(disabled=not may_save, max_chars=500)}
    if not may_save:
        st.dataframe(table, hide_index=True, width="stretch", column_config=config)
        return table
    return st.data_editor(table, hide_index=True, width="stretch", column_config=config, key="prog_editor",
                          disabled=["Rang", "Service", "SIRET", "Score", "Motifs du score"])


def render() -> None:
    user = state.current_user()
    ui.header("Programme de contrôle", kicker=ui.upper_first(ui.regions_text(user)),
              caption="Services classés par un score de risque transparent : chaque point a son motif, les "
                      "pondérations sont affichées. Les N premiers sont retenus ; le responsable peut modifier la "
                      "sélection en motivant chaque changement.")
    ui.show_flash()
    regions = _regions(user)
    if not regions:
        st.info("Aucune région ne vous est attribuée.")
        return
    c = st.columns([2, 1, 1, 2])
    region = c[0].selectbox("Région", regions, key="prog_region",
                            format_func=lambda r: f"{ui.region_name(r)} ({r})")
    year = int(c[1].number_input("Année programmée", min_value=2000, max_value=2100, value=ui.today().year + 1,
                                 step=1, key="prog_year"))
    capacity = int(c[2].number_input("Capacité (contrôles)", min_value=0, max_value=500, value=10, step=1,
                                     key="prog_capacity"))
    fresh = c[3].toggle("Repartir d'une nouvelle proposition", key="prog_fresh",
                        help="Ignore le programme enregistré et recalcule la proposition avec cette capacité.")
    try:
        p = programme_model.get_programme(state.engine(), user.email, region, year, capacity, proposal=fresh)
    except ServiceError as exc:
        ui.error(exc.message)
        return
    may_save = programme_model.actor_may_save(user, region)
    st.markdown(f"**{ui.md_escape(ui.upper_first(p.status_fr()))}** — {int(p.rows['selected'].sum())} service(s) "
                f"retenu(s) sur {len(p.rows)}.")
    if not may_save:
        st.info("Lecture seule : seul un responsable de pôle de la région peut arrêter le programme.",
                icon=":material/visibility:")
    with st.expander("Pondérations du score de risque", expanded=False):
        st.dataframe(pd.DataFrame(weights_table(p.weights), columns=["Élément", "Points"]), hide_index=True,
                     width="stretch")
        st.caption("Les alertes comptées sont celles en cours ; l'année de référence des alertes de qualité et "
                   "des objectifs CPOM est l'année précédant l'année programmée ; les échéances sont jugées au "
                   "31 décembre de l'année programmée.")
    edited = _editor(p, may_save)
    if may_save:
        comment = st.text_input("Commentaire (facultatif)", key="prog_comment", max_chars=500)
        if st.button("Enregistrer le programme", type="primary", icon=":material/save:", key="prog_save"):
            changes = {r["SIRET"]: (bool(r["Retenu"]), str(r["Motif du changement"] or ""))
                       for _, r in edited.iterrows()}
            ui.run_action(lambda: programme_model.save_programme(state.engine(), user.email, region, year,
                                                                 p.capacity, changes, comment),
                          "Programme enregistré.")
    d = st.columns(3)
    stem = f"programme-controle-{region}-{year}"
    d[0].download_button("Export CSV", programme_model.export_programme(p, "csv"), file_name=f"{stem}.csv",
                         mime="text/csv", icon=":material/download:", key="prog_csv")
    d[1].download_button("Export PDF", programme_pdf(p), file_name=f"{stem}.pdf", mime="application/pdf",
                         icon=":material/picture_as_pdf:", key="prog_pdf")
    d[2].download_button("Export partenaire (ARS)", programme_model.partner_export(p),
                         file_name=f"{stem}-partenaire.csv", mime="text/csv", icon=":material/share:",
                         key="prog_partner", help="Les seuls services retenus, avec les colonnes du programme.")
    history = programme_model.programme_history(state.engine(), user.email, region, year)
    if history:
        with st.expander(f"Historique des enregistrements ({len(history)})"):
            st.dataframe(pd.DataFrame([{"Version": h["version"], "Par": h["saved_by"],
                                        "Le": ui.fr_datetime(h["saved_at"]), "Capacité": h["capacity"],
                                        "Retenus": h["selected"], "Changements motivés": h["changes"],
                                        "Commentaire": h["comment"] or ""} for h in history]),
                         hide_index=True, width="stretch")


if __name__ == "__main__":
    render()
