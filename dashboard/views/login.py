"""Connexion: local accounts sign in on their own page (``/connexion``, dashboard/web.py), which
sets the session cookie; ProConnect (OIDC) signs in here through ``st.login``.

With local accounts a visitor without a session is redirected to ``/connexion`` before
Streamlit starts; this page is only seen when a session ends while a tab is open (expired,
signed out in another tab, password changed): it says so and links back to the sign-in page,
which returns to the same address. With ``SPSTI_MONITOR_AUTH=oidc`` the page offers « Se
connecter avec ProConnect » (see the README, section « Connexion ProConnect (OIDC) »); the
identity's e-mail must match an active local account, which carries the role and the
regions. The local sign-in page stays available as a fallback.
"""
from __future__ import annotations

from urllib.parse import quote, urlsplit

import streamlit as st

from dashboard import state, ui

SIGN_IN = "/connexion"


def _here() -> str:
    """The path and query of this page, for the sign-in page to come back to."""
    try:
        parts = urlsplit(st.context.url or "")
    except Exception:
        return "/"
    path = parts.path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def sign_in_link(label: str = "Se connecter") -> None:
    href = f"{SIGN_IN}?suite={quote(_here(), safe='')}"
    st.html(f'<p><a href="{ui.esc(href)}" target="_self" style="font-weight:600">{ui.esc(label)}</a></p>')


def _oidc() -> None:
    unknown = st.session_state.get("oidc_unknown")
    if unknown:
        ui.error(f"Le compte ProConnect {unknown} n'a pas d'accès à cet outil : demandez à un administrateur "
                 "de créer votre compte (même adresse électronique).")
        if st.button("Se déconnecter de ProConnect"):
            state.oidc_logout()
            st.stop()         # not st.rerun(): a rerun may drop the redirect st.logout has queued
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
                sign_in_link("Se connecter avec un compte local")
        else:
            st.info("Votre session a pris fin (déconnexion, expiration ou changement de mot de passe) : "
                    "reconnectez-vous.", icon=":material/lock:")
            sign_in_link()
        st.caption("Après 5 échecs, le compte est verrouillé 15 minutes. Les données affichées sont des "
                   "indicateurs agrégés par service : aucune donnée personnelle ou médicale.")
