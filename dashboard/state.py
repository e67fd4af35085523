"""Session state, sign-in and cached reads: the one place the dashboard touches Streamlit caching.

Reads are cached with ``st.cache_data`` for a short time and keyed on the database URL, the
user's scope (e-mail, role, regions, as stored now) and a data version (the newest alert
event, follow-up event, detection run, submission, observation and account change), so a
cached answer is never stale after a change and never shared between scopes. The panel of
observations is cached once per database and panel version (``st.cache_resource``).
"""
from __future__ import annotations

import os
from datetime import date

import pandas as pd
import streamlit as st

from alerts import followups, triage
from monitor.readmodels import common as readmodel
from monitor.readmodels import funnel as funnel_model
from monitor.readmodels import overview as overview_model
from monitor.readmodels import queue as queue_model
from monitor.readmodels import reception as reception_model
from monitor.readmodels import services as service_model
from monitor.store import db
from monitor.accounts import sessions, users

TTL = 120           # seconds; the data version makes cached answers safe, the TTL bounds memory
QUEUE_TTL = 1800    # the first screen: kept longer (about 3 MB for 10,000 alerts), its version is exact
AUTH_ENV = "SPSTI_MONITOR_AUTH"
PROVIDER_ENV = "SPSTI_MONITOR_OIDC_PROVIDER"


# --------------------------------------------------------------------------- engine

@st.cache_resource
def _engine(url: str | None):
    eng = db.get_engine(url)
    db.require_schema(eng)
    return eng


def db_url() -> str:
    from monitor.config.env import database_url

    return database_url(None)


def engine():
    return _engine(db_url())


# --------------------------------------------------------------------------- signing in

def auth_mode() -> str:
    """``local`` (default: accounts with passwords) or ``oidc`` (ProConnect through st.login)."""
    mode = os.environ.get(AUTH_ENV, "local").strip().lower()
    return mode if mode in ("local", "oidc") else "local"


def oidc_provider() -> str | None:
    return os.environ.get(PROVIDER_ENV) or None


def _oidc_email() -> str | None:
    """The e-mail of the OIDC identity; "" when signed in without one; None when not signed in."""
    try:
        if st.user.is_logged_in:
            return (st.user.get("email") or "").strip().lower()
    except Exception:       # auth not configured: no OIDC identity
        return None
    return None


def session_cookie() -> str | None:
    """The signed session cookie this browser sent with its websocket (None without one).

    Read from the connection of the current run, never from ``st.session_state``: a client
    that reconnects to someone else's Streamlit session id brings its own cookies, not theirs."""
    try:
        return st.context.cookies.get(sessions.COOKIE_NAME)
    except Exception:         # no browser connection (e.g. a bare script run)
        return None


def current_user():
    """The signed-in user as stored now (an :class:`monitor.accounts.access.Actor`), or None.

    Checked on every run against the server-side session (``monitor.accounts.sessions``:
    revoked, expired, password changed or account locked ends it) and reloaded, so a role or
    region changed by an administrator applies at once and a disabled account is signed out.
    With OIDC, the identity provider's e-mail is mapped to the local account that carries the
    role and regions.
    """
    signed = sessions.resolve(engine(), session_cookie())
    if signed is not None:
        return readmodel.session_user(engine(), signed.email)
    if auth_mode() != "oidc":
        return None
    email = _oidc_email()
    if email == "":
        st.session_state["oidc_unknown"] = "(identité sans adresse électronique)"
        return None
    if not email:
        return None
    user = readmodel.session_user(engine(), email)
    if user is None:
        st.session_state["oidc_unknown"] = email
    return user


def oidc_logout() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    try:
        st.logout()
    except Exception:
        pass


# --------------------------------------------------------------------------- flash messages

def flash(message: str, kind: str = "success") -> None:
    """A message shown once, after the rerun that follows an action."""
    st.session_state["_flash"] = (kind, message)


# --------------------------------------------------------------------------- cache keys

def _scope_key(user) -> tuple:
    return (user.email, user.role, user.regions)


def version() -> str:
    return readmodel.data_version(engine())


@st.cache_resource(max_entries=2, show_spinner="Chargement des indicateurs…")
def _panel(url: str, panel_version: str):
    return readmodel.load_analysis_panel(_engine(url))


def panel():
    return _panel(db_url(), readmodel.panel_version(engine()))


# --------------------------------------------------------------------------- cached reads

@st.cache_data(ttl=QUEUE_TTL, max_entries=32, show_spinner=False)
def _queue(url: str, scope: tuple, version: str) -> tuple[pd.DataFrame, dict]:
    frame = queue_model.queue_frame(_engine(url), scope[0])
    return frame, queue_model.queue_options(frame)


def queue(user) -> tuple[pd.DataFrame, dict]:
    """The user's queue (:func:`monitor.readmodels.queue.queue_frame`) and the values its
    filters offer, computed once per scope and queue version: any change to an alert, the
    register or an account shows on the next load, while a sign-in changes nothing, so a user
    signing in again finds the queue already computed."""
    return _queue(db_url(), _scope_key(user), queue_model.queue_version(engine()))


@st.cache_data(ttl=TTL, max_entries=64, show_spinner=False)
def _services(url: str, scope: tuple, version: str, region: str | None, department: str | None) -> pd.DataFrame:
    return service_model.services_frame(_engine(url), scope[0], region=region, department=department)


def services(user, region: str | None = None, department: str | None = None) -> pd.DataFrame:
    return _services(db_url(), _scope_key(user), version(), region, department)


@st.cache_data(ttl=TTL, max_entries=32, show_spinner=False)
def _regions(url: str, scope: tuple, version: str, pversion: str) -> pd.DataFrame:
    return overview_model.region_summary(_engine(url), scope[0], panel=_panel(url, pversion))


def region_summary(user) -> pd.DataFrame:
    return _regions(db_url(), _scope_key(user), version(), readmodel.panel_version(engine()))


@st.cache_data(ttl=TTL, max_entries=32, show_spinner=False)
def _feedback(url: str, scope: tuple, version: str, today: str):
    from alerts.feedback import triage_feedback

    return triage_feedback(_engine(url), scope[0])


def triage_feedback(user):
    """Precision from dismissals, response delays and untouched alerts (managers, national)."""
    from monitor.vocabulary import dates

    return _feedback(db_url(), _scope_key(user), version(), dates.today().isoformat())


@st.cache_data(ttl=TTL, max_entries=32, show_spinner=False)
def _departments(url: str, scope: tuple, version: str, region: str) -> pd.DataFrame:
    return overview_model.department_summary(_engine(url), scope[0], region)


def department_summary(user, region: str) -> pd.DataFrame:
    return _departments(db_url(), _scope_key(user), version(), region)


@st.cache_data(ttl=TTL, max_entries=64, show_spinner="Calcul de la carte de chaleur…")
def _heatmap(url: str, scope: tuple, version: str, pversion: str, month: int | None, region: str | None,
             department: str | None) -> pd.DataFrame:
    return overview_model.peer_heatmap(_engine(url), scope[0], month, region=region, department=department,
                                  panel=_panel(url, pversion))


def heatmap(user, month: int | None, region: str | None = None, department: str | None = None) -> pd.DataFrame:
    return _heatmap(db_url(), _scope_key(user), version(), readmodel.panel_version(engine()), month, region,
                    department)


def analysis_months() -> list[int]:
    return overview_model.analysis_months(panel())


@st.cache_data(ttl=TTL, max_entries=128, show_spinner=False)
def _series(url: str, scope: tuple, version: str, pversion: str, service_id: str, indicator: str,
            last_months: int | None) -> pd.DataFrame:
    return service_model.indicator_series(_engine(url), scope[0], service_id, indicator,
                                      panel=_panel(url, pversion), last_months=last_months)


def series(user, service_id: str, indicator: str, last_months: int | None = None) -> pd.DataFrame:
    return _series(db_url(), _scope_key(user), version(), readmodel.panel_version(engine()), service_id,
                   indicator, last_months)


@st.cache_data(ttl=TTL, max_entries=128, show_spinner=False)
def _references(url: str, scope: tuple, version: str, service_id: str, indicator: str) -> list:
    return service_model.reference_lines(_engine(url), scope[0], service_id, indicator)


def reference_lines(user, service_id: str, indicator: str) -> list:
    return _references(db_url(), _scope_key(user), version(), service_id, indicator)


@st.cache_data(ttl=TTL, max_entries=64, show_spinner="Calcul des séries…")
def _small_multiples(url: str, scope: tuple, version: str, pversion: str, service_id: str) -> pd.DataFrame:
    return service_model.service_small_multiples(_engine(url), scope[0], service_id, panel=_panel(url, pversion))


def small_multiples(user, service_id: str) -> pd.DataFrame:
    return _small_multiples(db_url(), _scope_key(user), version(), readmodel.panel_version(engine()), service_id)


@st.cache_data(ttl=TTL, max_entries=128, show_spinner=False)
def _funnel(url: str, scope: tuple, version: str, pversion: str, indicator: str, month: int | None,
            highlight: str | None):
    return funnel_model.funnel_data(_engine(url), scope[0], indicator, month, highlight=highlight,
                                 panel=_panel(url, pversion))


def funnel(user, indicator: str, month: int | None, highlight: str | None = None):
    return _funnel(db_url(), _scope_key(user), version(), readmodel.panel_version(engine()), indicator, month,
                   highlight)


@st.cache_data(ttl=TTL, max_entries=16, show_spinner=False)
def _steward(url: str, scope: tuple, version: str) -> dict:
    return reception_model.steward_tables(_engine(url), scope[0])


def steward_tables(user) -> dict:
    return _steward(db_url(), _scope_key(user), version())


# --------------------------------------------------------------------------- uncached reads
# (small, and they must show the latest state before an action)

def alert(user, alert_id: int) -> triage.AlertView:
    return triage.get_alert(engine(), user.email, alert_id)


def alert_history(user, alert_id: int):
    return triage.alert_history(engine(), user.email, alert_id)


def service_alerts(user, service_id: str):
    return triage.list_alerts(engine(), user.email, statuses=None, service_id=service_id, include_snoozed=True)


def follow_ups(user, **filters):
    return followups.list_follow_ups(engine(), user.email, **filters)


def assignable(user, region: str):
    if not _can_write(user):
        return []
    return users.assignable_users(engine(), user.email, region)


def _can_write(user) -> bool:
    return user.role in ("agent", "manager", "admin")


def today() -> date:
    from monitor.vocabulary import dates as timefmt

    return timefmt.today()


def silences(user, alert_id: int):
    """The silences in force that this alert's dismissal set (not cached: they change on click)."""
    from alerts.silences import list_silences

    return list_silences(engine(), user.email, alert_id=alert_id)
