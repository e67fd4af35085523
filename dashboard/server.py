"""The dashboard as an ASGI app (``st.App``): the Streamlit pages of ``app.py`` plus the
sign-in and sign-out routes and the session gate of ``dashboard/web.py``.

``spsti-monitor dashboard`` runs ``streamlit run dashboard/server.py``. Streamlit's own
warnings name websocket session ids (« Session with id … is already connected »): a full id
in a log is what a takeover needs, so only its first 8 characters are kept.
"""
from __future__ import annotations

import logging
import re

import streamlit as st
from starlette.middleware import Middleware

from dashboard import web

# The first screen after « Se connecter » is the alert queue: what its run imports (pandas,
# the SQLAlchemy models, the alert services and read models: about 1.5 s on a busy 2-core
# machine) is loaded here, once, when the server starts, not in the first signed-in user's run.
from dashboard import state, ui  # noqa: E402,F401
from dashboard.views import login  # noqa: E402,F401
from monitor.readmodels import queue  # noqa: E402,F401

_UUID = re.compile(r"\b([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_factory = logging.getLogRecordFactory()


def _redacting_factory(*args, **kwargs):
    record = _factory(*args, **kwargs)
    if record.name.startswith("streamlit"):
        text = record.getMessage()
        if _UUID.search(text):
            record.msg, record.args = _UUID.sub(r"\1…", text), ()
    return record


logging.setLogRecordFactory(_redacting_factory)



def _script_error(exc: Exception) -> bool:
    """An unexpected error in a page: one French sentence for the user, the details in the
    server log only (client.showErrorDetails is "none" as well)."""
    logging.getLogger("dashboard").error("erreur dans une page : %r", exc, exc_info=exc)
    st.error("Une erreur inattendue empêche d'afficher cette page. Revenez à la file d'alertes ; si "
             "l'erreur persiste, signalez-la à l'administrateur (le détail est dans le journal du serveur).",
             icon=":material/error:")
    return True


app = st.App("app.py", routes=web.ROUTES, middleware=[Middleware(web.SessionGate)], on_script_error=_script_error)
