"""Streamlit entry point: sign-in, then the pages (declared here, laid out in dashboard/views)."""
from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.views import login, queue

st.set_page_config(page_title="Supervision des SPSTI", page_icon="🩺", layout="wide")

user = state.current_user()
if user is None:
    login.render()
    st.stop()

with st.sidebar:
    st.markdown(f"**{user.name}**  \n{user.email} · rôle {user.role}")
    if st.button("Se déconnecter"):
        state.sign_out()
        st.rerun()

nav = st.navigation([st.Page(queue.render, title="File d'alertes", icon="🔔", url_path="alertes", default=True)])
nav.run()
