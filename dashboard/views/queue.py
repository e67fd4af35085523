"""File d'alertes: the alerts of the user's regions, counted by severity and status, with
filters, sorting, and a click on a row to open the alert."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from monitor.vocabulary.statuses import ALERT_STATUSES, QUEUE, status_label, status_title
from dashboard import state, ui
from monitor.config import env
from monitor.readmodels import queue as queue_model
from monitor.readmodels.common import indicator_label

TABLE_COLUMNS = {
    "id": "N°", "sev": "Gravité", "service_name": "Service", "region_name": "Région",
    "indicator_label": "Indicateur", "cat_txt": "Catégorie", "status_txt": "Statut",
    "opened_period": "Depuis", "last_period": "Dernière période", "assignee_name": "Attribuée à",
    "score": "Score", "explanation": "Explication",
}


def _filters(user, opts: dict) -> tuple[queue_model.QueueFilters, str]:
    multi_region = user.regions is None or len(user.regions) > 1
    with st.container(border=True):
        c = st.columns(4)
        regions = ()
        if multi_region:
            regions = tuple(c[0].multiselect("Région", opts["regions"], format_func=lambda r: f"{ui.region_name(r)} ({r})",
                                             placeholder="Toutes", key="q_regions"))
        else:
            c[0].text_input("Région", value=ui.regions_text(user), disabled=True, key="q_region_fixed")
        departments = tuple(c[1].multiselect("Département", opts["departments"], placeholder="Tous",
                                             key="q_departments"))
        categories = tuple(c[2].multiselect("Catégorie", opts["categories"], placeholder="Toutes",
                                            format_func=lambda k: ui.CATEGORY_LABELS.get(k, k), key="q_categories"))
        indicators = tuple(c[3].multiselect("Indicateur", opts["indicators"], placeholder="Tous",
                                            format_func=indicator_label, key="q_indicators"))
        c = st.columns(4)
        severities = tuple(c[0].multiselect("Gravité", ["high", "medium", "low"], placeholder="Toutes",
                                            format_func=ui.SEVERITY_LABELS.get, key="q_severities"))
        statuses = tuple(c[1].multiselect("Statut", [s.value for s in ALERT_STATUSES], default=[s.value for s in QUEUE],
                                          format_func=status_title, placeholder="Tous", key="q_statuses"))
        period_from = period_to = None
        months = opts["months"]
        if len(months) >= 2:
            lo, hi = c[2].select_slider("Période (alertes actives entre)", options=months,
                                        value=(months[0], months[-1]), key="q_period")
            if (lo, hi) != (months[0], months[-1]):
                period_from, period_to = lo, hi
        sort = c[3].selectbox("Trier par", list(queue_model.SORTS), format_func=lambda k: queue_model.SORTS[k][0],
                              key="q_sort")
        c = st.columns([1, 1, 2])
        mine = c[0].toggle("Attribuées à moi", key="q_mine")
        snoozed = c[1].toggle("Inclure les alertes en sourdine", key="q_snoozed")
        text = c[2].text_input("Recherche (service, SIRET, texte)", key="q_text", placeholder="ex. : Rhône, 8920…")
    f = queue_model.QueueFilters(regions=regions, departments=departments, categories=categories,
                               indicators=indicators, severities=severities, statuses=statuses,
                               period_from=period_from, period_to=period_to,
                               assignee_id=user.id if mine else None, include_snoozed=snoozed, text=text)
    return f, sort


def _counts(view: pd.DataFrame, by_status: pd.DataFrame) -> None:
    counts = queue_model.queue_counts(view)
    status_counts = queue_model.queue_counts(by_status)["status"]
    c = st.columns(4)
    c[0].metric("Alertes affichées", ui.fr_int(len(view)))
    for col, sev in zip(c[1:], ("high", "medium", "low")):
        col.metric(f"Gravité {ui.SEVERITY_LABELS[sev].lower()}",
                   ui.fr_int(counts["severity"][sev]))
    st.caption("Par statut (avec les autres filtres) : " + " · ".join(
        f"{status_label(k)} {ui.fr_int(v)}" for k, v in status_counts.items()))
    late = int(view["untouched"].sum())
    if late:
        st.warning(f"{ui.fr_int(late)} alerte(s) sans aucune action depuis {env.untouched_days()} jours ou plus "
                   "(marquées « sans action » dans le tableau).")


def _pager(rows: pd.DataFrame, total: int, page: int, pages: int) -> None:
    """Which page of the table is shown: the browser receives and draws one page of rows
    (queue_model.PAGE_ROWS), not 10,000 (3 MB and seconds to draw)."""
    if pages == 1:
        return
    start = (page - 1) * queue_model.PAGE_ROWS
    text = (f"Lignes {ui.fr_int(start + 1)} à {ui.fr_int(start + len(rows))} sur {ui.fr_int(total)}, "
            "dans l'ordre choisi ci-dessus.")
    c = st.columns([1, 4], vertical_alignment="center")
    c[0].selectbox("Page", list(range(1, pages + 1)), key="q_page", format_func=lambda p: f"{p} / {pages}")
    c[1].caption(text)


def _page_number(f: queue_model.QueueFilters, sort: str, total: int) -> int:
    """The page to show: the one chosen, back to the first when the filters or the order change,
    and never past the last (set before the page chooser is drawn, which then shows it)."""
    chosen = repr((f, sort))
    if st.session_state.get("q_page_of") != chosen:
        st.session_state["q_page_of"] = chosen
        st.session_state["q_page"] = 1
    pages = max(1, -(-total // queue_model.PAGE_ROWS))
    if not isinstance(st.session_state.get("q_page"), int) or not 1 <= st.session_state["q_page"] <= pages:
        st.session_state["q_page"] = min(max(1, int(st.session_state.get("q_page") or 1)), pages)
    return st.session_state["q_page"]


def render() -> None:
    user = state.current_user()
    ui.header("File d'alertes", kicker=ui.upper_first(ui.regions_text(user)),
              caption="Alertes ouvertes et prises en charge, les plus graves d'abord. Cliquez sur une ligne "
                      "pour ouvrir l'alerte.")
    ui.show_flash()
    df, opts = state.queue(user)
    if df.empty:
        st.info("Aucune alerte dans vos régions pour le moment.")
        return
    f, sort = _filters(user, opts)
    view = queue_model.sort_queue(queue_model.filter_queue(df, f), sort)
    _counts(view, queue_model.filter_queue(df, replace(f, statuses=())))
    if view.empty:
        st.info("Aucune alerte ne correspond à ces filtres.")
        return
    rows, page, pages = queue_model.queue_page(view, _page_number(f, sort, len(view)))
    table = pd.DataFrame({
        "id": rows["id"],
        "sev": rows["severity"].map(ui.SEVERITY_LABELS).astype(str),
        "service_name": rows["service_name"],
        "region_name": rows["region_name"].astype(str),
        "indicator_label": rows["indicator_label"].astype(str),
        "cat_txt": rows["category"].map(ui.CATEGORY_LABELS).astype(object).fillna(rows["category_label"].astype(object)),
        "status_txt": rows["status"].map(status_title).astype(str)
        + rows["snoozed"].map({True: " (en sourdine)", False: ""})
        + rows["untouched"].map({True: " (sans action)", False: ""}),
        "opened_period": rows["opened_period"], "last_period": rows["last_period"],
        "assignee_name": rows["assignee_name"].astype(object).where(rows["assignee_name"].notna(), "—"),
        "score": rows["score"], "explanation": rows["explanation"],
    })[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
    if user.regions is not None and len(user.regions) == 1:
        table = table.drop(columns=["Région"])
    event = st.dataframe(
        table, hide_index=True, width="stretch", height=560, key="queue_table", on_select="rerun",
        selection_mode="single-row",
        column_config={
            "N°": st.column_config.NumberColumn(width="small", format="%d"),
            "Gravité": st.column_config.TextColumn(width="small"),
            "Service": st.column_config.TextColumn(width="medium"),
            "Score": st.column_config.NumberColumn(format="%.1f", width="small",
                                                   help="Intensité du signal (z ajusté, rapport au seuil…)"),
            "Explication": st.column_config.TextColumn(width="large"),
        })
    row = ui.selected_row(event)
    if row is not None:
        ui.open_alert(int(table.iloc[row]["N°"]))
    _pager(rows, len(view), page, pages)
    with st.form("open_by_number", border=False):
        c = st.columns([1, 1, 3], vertical_alignment="bottom")
        number = c[0].number_input("Ouvrir l'alerte n°", min_value=1, step=1, value=None, key="q_open_id")
        if c[1].form_submit_button("Ouvrir") and number:
            ui.open_alert(int(number))


if __name__ == "__main__":
    render()
