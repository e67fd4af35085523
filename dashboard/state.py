"""Session state and the cached engine: the one place the dashboard touches Streamlit caching."""
from __future__ import annotations

import streamlit as st

from monitor import db


@st.cache_resource
def engine():
    eng = db.get_engine(None)
    db.require_schema(eng)
    return eng


def current_user():
    return st.session_state.get("user")


def sign_in(user) -> None:
    st.session_state["user"] = user


def sign_out() -> None:
    st.session_state.pop("user", None)
