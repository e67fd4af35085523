"""Connexion: local accounts (argon2, lockout after repeated failures) or ProConnect (OIDC).

With ``SPSTI_MONITOR_AUTH=oidc`` the page offers « Se connecter avec ProConnect »
(``st.login``; see the README, section « Connexion ProConnect (OIDC) »); the identity's
e-mail must match an active local account, which carries the role and the regions. The
local form stays available below it as a fallback.
"""
from __future__ import annotations

import streamlit as st

from dashboard import state, ui
from monitor.accounts.users import authenticate


def _local_form() -> None:
    with st.form("login"):
        email = st.text_input("Adresse électronique", autocomplete="username")
        password = st.text_input("Mot de passe", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Se connecter", type="primary")
    if submitted:
        user, message = authenticate(state.engine(), email, password)
        if user is None:
            ui.error(ui.upper_first(message) + ".")
        else:
            state.sign_in(user)
            st.rerun()


def _oidc() -> None:
    unknown = st.session_state.get("oidc_unknown")
    if unknown:
        ui.error(f"Le compte ProConnect {unknown} n'a pas d'accès à cet outil : demandez à un administrateur "
                 "de créer votre compte (même adresse électronique).")
        if st.button("Se déconnecter de ProConnect"):
            state.oidc_logout()
            st.rerun()
        return
    if st.button("Se connecter avec ProConnect", type="primary", icon=":material/login:"):
        try:
            provider = state.oidc_provider()
            st.login(provider) if provider else st.login()
        except Exception as exc:     # st.login not configured (secrets.toml [auth])
            ui.error("Connexion ProConnect indisponible : la section [auth] de secrets.toml est absente ou "
                     f"incomplète ({exc}).")


def render() -> None:
    ui.header("Supervision des services de prévention et de santé au travail",
              kicker="Ministère du Travail · DREETS, pôle politique du travail")
    left, _ = st.columns([2, 3])
    with left:
        st.subheader("Connexion", anchor=False)
        if state.auth_mode() == "oidc":
            _oidc()
            with st.expander("Compte local (secours)"):
                _local_form()
        else:
            _local_form()
        st.caption("Après 5 échecs, le compte est verrouillé 15 minutes. Les données affichées sont des "
                   "indicateurs agrégés par service : aucune donnée personnelle ou médicale.")
