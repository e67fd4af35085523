"""Streamlit entry point: declares the pages (dashboard/views) and requires a signed-in user.

Every page is declared on every run, so that an address such as ``/alerte?id=12`` (the links
of the e-mail digests) survives the sign-in; a visitor whose session has ended sees the
sign-in notice instead of the page. Administration is only declared for administrators.
``server.py`` wraps this script in an ``st.App`` with the sign-in routes and the session gate.
"""
from __future__ import annotations

import streamlit as st

from dashboard import state, ui
from dashboard.views import login
from monitor.store.db import DatabaseError

st.set_page_config(page_title="Supervision des SPSTI", page_icon=":material/health_and_safety:", layout="wide")
ui.style()

try:
    state.engine()
    user = state.current_user()
except DatabaseError as exc:          # not initialised, old schema, unreachable: say how to fix it
    ui.error(ui.upper_first(str(exc)) + ".")
    st.stop()

queue = st.Page(ui.PAGE_QUEUE, title="File d'alertes", icon=":material/notifications:", url_path="alertes",
                default=True)
alert = st.Page(ui.PAGE_ALERT, title="Alerte", icon=":material/report:", url_path="alerte")
service = st.Page(ui.PAGE_SERVICE, title="Service", icon=":material/apartment:", url_path="service")
overview = st.Page(ui.PAGE_OVERVIEW, icon=":material/map:", url_path="regions",
                   title="Vue nationale" if user is None or user.regions is None else "Vue régionale")
follow_ups = st.Page(ui.PAGE_FOLLOW_UPS, title="Suites", icon=":material/assignment:", url_path="suites")
data = st.Page(ui.PAGE_DATA, title="Données", icon=":material/database:", url_path="donnees")
programme = st.Page(ui.PAGE_PROGRAMME, title="Programme de contrôle", icon=":material/event_note:",
                    url_path="programme")
admin = st.Page(ui.PAGE_ADMIN, title="Administration", icon=":material/manage_accounts:", url_path="administration")

if user is None:
    st.navigation([queue, alert, service, overview, follow_ups, data, programme, admin], position="hidden")
    login.render()
    st.stop()

sections = {"Surveillance": [queue, alert, service, overview], "Suivi": [follow_ups, data]}
if user.role in ("manager", "national", "admin"):
    # the yearly control programme: arrêté by managers, read by the national level
    sections["Suivi"].append(programme)
if user.role == "admin":
    sections["Administration"] = [admin]
nav = st.navigation(sections)

with st.sidebar:
    st.markdown(f"**{ui.md_escape(user.name)}**  \n{ui.md_escape(user.email)}")
    st.caption(f"{ui.ROLE_LABELS.get(user.role, user.role)} · {ui.regions_text(user)}")
    if state.session_cookie() is not None:
        # the cookie is HttpOnly: only an HTTP response can clear it, so signing out is a form
        # posted to /deconnexion (dashboard/web.py), which revokes every session of the account
        st.html('<form method="post" action="/deconnexion" class="spsti-signout">'
                '<button type="submit">Se déconnecter</button></form>')
    elif st.button("Se déconnecter", icon=":material/logout:", key="sign_out"):
        state.oidc_logout()
        st.stop()             # not st.rerun(): a rerun may drop the redirect st.logout has queued

nav.run()
