"""Connexion: local accounts (argon2, lockout)."""
from __future__ import annotations

import streamlit as st

from dashboard import state
from monitor.users import authenticate


def render() -> None:
    st.title("Supervision des services de prévention et de santé au travail")
    st.caption("DREETS · pôle politique du travail")
    with st.form("login"):
        email = st.text_input("Adresse électronique")
        password = st.text_input("Mot de passe", type="password")
        submitted = st.form_submit_button("Se connecter")
    if submitted:
        user, message = authenticate(state.engine(), email, password)
        if user is None:
            st.error(message.capitalize())
        else:
            state.sign_in(user)
            st.rerun()
