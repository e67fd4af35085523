"""Administration (administrators only): accounts, roles, regions and digest subscriptions.

Every call goes through monitor.accounts.users, which reloads the acting user and refuses anyone who
is not an administrator; every change is recorded in the account's history."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from monitor.vocabulary import dates as timefmt
from monitor.vocabulary.errors import ServiceError
from dashboard import state, ui
from monitor.accounts import users
from monitor.vocabulary.catalogue import REGIONS

DIGESTS = {"daily": "quotidien", "weekly": "hebdomadaire", "off": "désactivé"}
SEVERITIES = {"low": "faible et plus", "medium": "moyenne et plus", "high": "élevée seulement"}
KIND_FR = {"created": "création", "name": "nom", "role": "rôle", "regions": "régions", "digest": "récapitulatif",
           "min_severity": "gravité minimale", "active": "compte actif", "password": "mot de passe"}


def _region_fmt(code: str) -> str:
    return f"{REGIONS[code][0]} ({code})"


def _create(eng, user) -> None:
    with st.form("create_user", clear_on_submit=True):
        c = st.columns(3)
        email = c[0].text_input("Adresse électronique")
        name = c[1].text_input("Nom")
        role = c[2].selectbox("Rôle", list(users.ROLES), format_func=ui.ROLE_LABELS.get)
        c = st.columns(3)
        regions = c[0].multiselect("Régions (agent, responsable)", list(REGIONS), format_func=_region_fmt,
                                     placeholder="Toutes pour les rôles national et administrateur")
        digest = c[1].selectbox("Récapitulatif par courriel", list(DIGESTS), format_func=DIGESTS.get)
        min_sev = c[2].selectbox("Gravité minimale du récapitulatif", list(SEVERITIES), index=1,
                                 format_func=SEVERITIES.get)
        password = st.text_input("Mot de passe initial (8 caractères au moins)", type="password")
        if st.form_submit_button("Créer le compte", type="primary"):
            def action():
                users.create_user(eng, user.email, email=email, name=name, role=role, regions=",".join(regions),
                                  digest=digest, min_severity=min_sev, password=password)
            ui.run_action(action, f"Compte {email.strip().lower()} créé.")


def _edit(eng, user, u: users.UserView) -> None:
    with st.form(f"edit_user_{u.id}"):
        c = st.columns(3)
        name = c[0].text_input("Nom", value=u.name)
        role = c[1].selectbox("Rôle", list(users.ROLES), index=list(users.ROLES).index(u.role),
                              format_func=ui.ROLE_LABELS.get)
        active = c[2].toggle("Compte actif", value=u.active)
        c = st.columns(3)
        regions = c[0].multiselect("Régions", list(REGIONS), default=[r for r in u.regions if r in REGIONS],
                                   format_func=_region_fmt,
                                   placeholder="Toutes pour les rôles national et administrateur")
        digest = c[1].selectbox("Récapitulatif", list(DIGESTS), index=list(DIGESTS).index(u.digest),
                                format_func=DIGESTS.get)
        min_sev = c[2].selectbox("Gravité minimale", list(SEVERITIES), index=list(SEVERITIES).index(u.min_severity),
                                 format_func=SEVERITIES.get)
        comment = st.text_input("Motif de la modification (facultatif)")
        if st.form_submit_button("Enregistrer", type="primary"):
            changes = {}
            if name != u.name:
                changes["name"] = name
            if role != u.role:
                changes["role"] = role
            if sorted(regions) != sorted(u.regions):
                changes["regions"] = regions
            if digest != u.digest:
                changes["digest"] = digest
            if min_sev != u.min_severity:
                changes["min_severity"] = min_sev
            if active != u.active:
                changes["active"] = active
            ui.run_action(lambda: users.update_user(eng, user.email, u.id, comment=comment or None, **changes),
                          f"Compte {u.email} modifié.")
    with st.form(f"password_{u.id}", clear_on_submit=True):
        c = st.columns([2, 1], vertical_alignment="bottom")
        pw = c[0].text_input("Nouveau mot de passe (déverrouille le compte)", type="password")
        if c[1].form_submit_button("Réinitialiser le mot de passe"):
            ui.run_action(lambda: users.reset_password(eng, user.email, u.id, pw),
                          f"Mot de passe de {u.email} réinitialisé.")
    events = users.user_history(eng, user.email, u.id)
    if events:
        st.markdown("**Historique du compte**")
        st.dataframe(pd.DataFrame([{
            "Date": ui.fr_datetime(timefmt.as_utc(e.at)), "Par": e.actor, "Changement": KIND_FR.get(e.kind, e.kind),
            "Avant": e.from_value or "", "Après": e.to_value or "", "Motif": e.comment or ""} for e in events][::-1]),
            hide_index=True, width="stretch")


def render() -> None:
    user = state.current_user()
    ui.header("Administration", caption="Comptes, rôles, régions et abonnements aux récapitulatifs par courriel.")
    ui.show_flash()
    eng = state.engine()
    try:
        accounts = users.list_users(eng, user.email)
    except ServiceError as exc:
        ui.error(exc.message)
        return
    st.dataframe(pd.DataFrame([{
        "Adresse": u.email, "Nom": u.name, "Rôle": ui.ROLE_LABELS.get(u.role, u.role),
        "Régions": ", ".join(u.regions) or "toutes", "Récapitulatif": DIGESTS.get(u.digest, u.digest),
        "Gravité minimale": SEVERITIES.get(u.min_severity, u.min_severity),
        "Dernier récapitulatif": ui.fr_datetime(timefmt.as_utc(u.last_digest_at)) if u.last_digest_at else "—",
        "Actif": "oui" if u.active else "non", "Verrouillé": "oui" if u.locked else "",
        "Créé le": ui.fr_date(u.created_at)} for u in accounts]), hide_index=True, width="stretch")
    tabs = st.tabs(["Modifier un compte", "Créer un compte"])
    with tabs[0]:
        by_id = {u.id: u for u in accounts}
        chosen = st.selectbox("Compte", list(by_id), format_func=lambda i: f"{by_id[i].name} ({by_id[i].email})",
                              key="admin_user")
        if chosen is not None:
            _edit(eng, user, by_id[chosen])
    with tabs[1]:
        _create(eng, user)


if __name__ == "__main__":
    render()
