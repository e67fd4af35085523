"""The dashboard's HTTP edge: sign-in and sign-out routes, the session gate, security headers.

A cookie can only be set by an HTTP response, so signing in and out are plain routes of the
``st.App`` (``dashboard/server.py``), outside Streamlit's websocket: the form POSTs an e-mail
and a password, the route checks them (``monitor.accounts.users.authenticate``), opens a
server-side session (``monitor.accounts.sessions``), sets the signed HttpOnly cookie and
redirects to the page asked for (a digest link « Voir l'alerte » comes back to its alert).

The gate (``SessionGate``, pure ASGI so that it sees websockets too) with local accounts:
a page without a valid session is redirected to the sign-in page; the websocket, the
media files (``/media/…``, the follow-up CSV) and file uploads are refused. With OIDC the
pages and the websocket stay open (``st.login`` signs in inside the app; Streamlit itself
refuses to reconnect a session to another identity), the media files and uploads do not. On every
response it adds X-Frame-Options and a Content-Security-Policy; on every websocket it drops
the developer messages (``clear_cache``, ``debug_*``) that no user needs.
"""
from __future__ import annotations

import html
import json
import logging
import os
import posixpath
import re
import threading
from functools import lru_cache
from pathlib import Path
from http.cookies import SimpleCookie
from urllib.parse import quote, urlsplit

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from monitor.accounts import sessions
from monitor.accounts.users import authenticate
from monitor.config.env import SessionSettings, database_url
from monitor.store import db

SIGN_IN = "/connexion"
SIGN_OUT = "/deconnexion"
AUTH_ENV = "SPSTI_MONITOR_AUTH"

SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    # Streamlit needs inline styles, eval-free scripts of its own origin, data:/blob: images
    # (and the favicon of a :material/…: page icon, drawn by fonts.gstatic.com), and its
    # websocket; nothing may frame it and forms post only to itself.
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data: blob: https://fonts.gstatic.com; font-src 'self' data:; connect-src 'self' ws: wss:; "
     b"worker-src 'self' blob:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
     b"base-uri 'self'; object-src 'none'"),
]
# paths that never need a session: the sign-in routes, Streamlit's assets and health checks
_OPEN_PREFIXES = (SIGN_IN, SIGN_OUT, "/_stcore/health", "/_stcore/host-config", "/static/", "/favicon",
                  "/auth/", "/oauth2callback", "/manifest.json", "/robots.txt")
_DROPPED_BACKMSGS = {"clear_cache", "debug_disconnect_websocket", "debug_shutdown_runtime"}


def _auth_mode() -> str:
    return "oidc" if os.environ.get(AUTH_ENV, "local").strip().lower() == "oidc" else "local"


def _engine():
    return db.get_engine(database_url(None))


def safe_next(target: str | None) -> str:
    """A local path to return to after signing in (never another site: no scheme, no host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith(SIGN_IN) or parts.path.startswith(SIGN_OUT):
        return "/"
    return target


def _same_origin(request: Request) -> bool:
    """A form POST comes from this site (login CSRF): Origin, when sent, must name our host."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")
    return origin != "null" and urlsplit(origin).netloc == request.headers.get("host")


# --------------------------------------------------------------------------- the first screen's assets

# Streamlit's front end is fetched only once the browser leaves the sign-in page: about 130
# files (4.6 MB) for the queue, its entry module first, then the lazily loaded elements the
# queue draws. The sign-in page preloads them while the user types, so that after « Se
# connecter » they come from the browser's cache (they are content-hashed and served immutable).
# The list is read from Streamlit's own index.html and entry module, so it follows upgrades;
# if their format changes, the page simply preloads less.
FIRST_SCREEN_ELEMENTS = ("DataFrame", "Metric", "Multiselect", "Selectbox", "Slider", "TextInput", "Checkbox",
                         "NumberInput", "Html")
_LAZY = re.compile(r"import\(`\./([^`]+)`\)(?:\.then\([^)]*\))?,__vite__mapDeps\(\[([\d,]*)\]\)")
_LOG = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def first_screen_assets() -> tuple[str, ...]:
    """Paths (``static/…``) of the front-end files the queue's first screen needs."""
    try:
        from streamlit import file_util

        root = Path(file_util.get_static_dir())
        index = (root / "index.html").read_text(encoding="utf-8")
        paths = re.findall(r'(?:src|href)="\./(static/[^"?#]+)"', index)
        entry = re.search(r'<script type="module"[^>]*src="\./(static/js/[^"]+)"', index)
        if entry:
            source = (root / entry.group(1)).read_text(encoding="utf-8")
            files = re.search(r"m\.f=\[([^\]]*)\]", source)
            deps = [f.strip().strip('"`\'') for f in files.group(1).split(",")] if files else []
            for name, indices in _LAZY.findall(source):
                if name.split(".", 1)[0] in FIRST_SCREEN_ELEMENTS:
                    paths.append(f"static/js/{name}")
                    paths += [posixpath.normpath(posixpath.join("static/js", deps[int(i)]))
                              for i in indices.split(",") if i and int(i) < len(deps)]
        paths += [f"static/media/{p.name}" for p in (root / "static" / "media").glob("MaterialSymbols-Rounded.*.woff2")]
        wanted = dict.fromkeys(p for p in paths if not p.endswith((".html", ".json", ".png"))
                               and (root / p).is_file())
        return tuple(wanted)
    except Exception as exc:          # never let a preload list stop the sign-in page
        _LOG.warning("liste des fichiers à précharger indisponible : %r", exc)
        return ()


def _preload_links() -> str:
    links = []
    for path in first_screen_assets():
        kind = "script" if path.endswith(".js") else "style" if path.endswith(".css") else "font"
        extra = ' type="font/woff2"' if path.endswith(".woff2") else ""
        links.append(f'<link rel="preload" href="/{html.escape(path, quote=True)}" as="{kind}"{extra} crossorigin>')
    return "".join(links)


# --------------------------------------------------------------------------- the sign-in page

_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connexion · Supervision des SPSTI</title>
{preload}
<style>
 body {{ font-family: Marianne, Arial, sans-serif; color: #161616; margin: 0; background: #F6F6F6; }}
 header {{ background: #fff; border-bottom: 1px solid #DDD; padding: 1rem 2rem; }}
 header span {{ display: inline-block; width: 54px; height: 6px; vertical-align: middle;
   background: linear-gradient(90deg, #000091 0 33.3%, #fff 33.3% 66.6%, #E1000F 66.6% 100%); outline: 1px solid #DDD; }}
 header b {{ margin-left: .6rem; font-size: .8rem; letter-spacing: .04em; text-transform: uppercase; }}
 main {{ max-width: 28rem; margin: 2rem auto; background: #fff; padding: 2rem; border: 1px solid #DDD; }}
 h1 {{ font-size: 1.6rem; margin-top: 0; }}
 label {{ display: block; margin: 1rem 0 .3rem; font-weight: 500; }}
 input {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; border: 0;
   border-bottom: 2px solid #3A3A3A; background: #EEE; }}
 input:focus, button:focus, a:focus {{ outline: 2px solid #0a76f6; outline-offset: 2px; }}
 button {{ margin-top: 1.5rem; background: #000091; color: #fff; border: 0; padding: .6rem 1.2rem; font-size: 1rem;
   cursor: pointer; }}
 .error {{ border-left: 4px solid #E1000F; background: #FFE9E9; padding: .7rem 1rem; margin-bottom: 1rem; }}
 .info {{ border-left: 4px solid #000091; background: #E3E3FD; padding: .7rem 1rem; margin-bottom: 1rem; }}
 p.note {{ color: #666; font-size: .85rem; }}
</style></head>
<body><header><span></span><b>Supervision des SPSTI</b></header>
<main>
<p class="note">Ministère du Travail · DREETS, pôle politique du travail</p>
<h1>Connexion</h1>
{message}
<form method="post" action="{action}">
 <input type="hidden" name="suite" value="{suite}">
 <label for="email">Adresse électronique</label>
 <input id="email" name="email" type="email" autocomplete="username" required value="{email}">
 <label for="password">Mot de passe</label>
 <input id="password" name="password" type="password" autocomplete="current-password" required>
 <button type="submit">Se connecter</button>
</form>
<p class="note">Après 5 échecs, le compte est verrouillé 15 minutes. Les données affichées sont des indicateurs
agrégés par service : aucune donnée personnelle ou médicale.</p>
</main></body></html>
"""


def sign_in_page(suite: str, error: str | None = None, info: str | None = None, email: str = "",
                 status: int = 200) -> HTMLResponse:
    if error:
        message = f'<div class="error" role="alert">{html.escape(error)}</div>'
    elif info:
        message = f'<div class="info" role="status">{html.escape(info)}</div>'
    else:
        message = ""
    body = _PAGE.format(message=message, action=SIGN_IN, suite=html.escape(suite, quote=True),
                        email=html.escape(email, quote=True), preload=_preload_links())
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def _set_cookie(response: Response, value: str, settings: SessionSettings) -> None:
    response.set_cookie(sessions.COOKIE_NAME, value, max_age=settings.max_hours * 3600, path="/",
                        httponly=True, samesite="lax", secure=settings.secure_cookie)


def _clear_cookie(response: Response, settings: SessionSettings) -> None:
    response.delete_cookie(sessions.COOKIE_NAME, path="/", httponly=True, samesite="lax",
                           secure=settings.secure_cookie)


async def sign_in_get(request: Request) -> Response:
    suite = safe_next(request.query_params.get("suite"))
    settings = SessionSettings.from_env()
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if cookie and await run_in_threadpool(sessions.resolve, _engine(), cookie, settings):
        return RedirectResponse(suite, status_code=303)
    info = "Vous êtes déconnecté." if request.query_params.get("sortie") else None
    return sign_in_page(suite, info=info)


async def sign_in_post(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
    suite = safe_next(str(form.get("suite") or "/"))
    email = str(form.get("email") or "")[:254]
    password = str(form.get("password") or "")[:1024]
    if not _same_origin(request):
        return sign_in_page(suite, error="Formulaire refusé : il ne vient pas de ce site.", status=403)
    settings = SessionSettings.from_env()
    user, message = await run_in_threadpool(authenticate, _engine(), email, password)
    if user is None:
        text = message[:1].upper() + message[1:] + "." if message else "Connexion refusée."
        return sign_in_page(suite, error=text, email=email, status=401)
    cookie = await run_in_threadpool(sessions.open_session, _engine(), user.email, settings)
    # the queue is computed (or found in the cache) while the browser loads the app after the
    # redirect, instead of after its websocket asks for it
    response = RedirectResponse(suite, status_code=303, background=BackgroundTask(prepare_queue, user.email))
    _set_cookie(response, cookie, settings)
    return response


class _Preparing(logging.Filter):
    """Streamlit warns, once per call, that a cached function runs outside a page run: expected
    from :func:`prepare_queue`, so its thread's warning is dropped (the others are kept)."""
    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "on", False)


_PREPARING = _Preparing()
logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_PREPARING)


def prepare_queue(email: str) -> None:
    """Fill the queue's cache for this account's scope (dashboard/state.py, the same cache and
    key as its first page run, which waits for this computation rather than repeating it)."""
    _PREPARING.active.on = True
    try:
        from dashboard import state
        from monitor.readmodels.common import session_user

        user = session_user(state.engine(), email)
        if user is not None:
            state.queue(user)
    except Exception as exc:       # the page run computes it then, and reports any error itself
        _LOG.info("file d'alertes non préparée à la connexion : %r", exc)
    finally:
        _PREPARING.active.on = False


async def sign_out(request: Request) -> Response:
    """Revoke every session of the account (all tabs and browsers) and clear the cookie.
    A GET is accepted from this site only (Sec-Fetch-Site), so another site cannot sign a user out."""
    if request.method == "GET" and request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        return Response("Requête refusée.", status_code=403)
    if request.method == "POST" and not _same_origin(request):
        return Response("Requête refusée.", status_code=403)
    settings = SessionSettings.from_env()
    await run_in_threadpool(sessions.revoke, _engine(), request.cookies.get(sessions.COOKIE_NAME), settings)
    response = RedirectResponse(f"{SIGN_IN}?sortie=1", status_code=303)
    _clear_cookie(response, settings)
    return response


ROUTES = [
    Route(SIGN_IN, sign_in_get, methods=["GET"]),
    Route(SIGN_IN, sign_in_post, methods=["POST"]),
    Route(SIGN_OUT, sign_out, methods=["GET", "POST"]),
]


# --------------------------------------------------------------------------- the gate

def allowed_backmsg(data: bytes) -> bool:
    """False for the developer messages no user needs (clear the caches, drop the socket,
    stop the server); everything else goes through to Streamlit, which parses it again."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    try:
        msg.ParseFromString(data)
    except Exception:
        return True          # Streamlit closes the socket on a malformed frame itself
    return msg.WhichOneof("type") not in _DROPPED_BACKMSGS


def _cookies(scope) -> dict[str, str]:
    jar = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return {}
    return {k: m.value for k, m in jar.items()}


def _oidc_account(cookies: dict[str, str]) -> str | None:
    """With OIDC, the e-mail of Streamlit's signed identity cookie (``st.login``) when it is an
    active local account. Read with Streamlit's own reader of that cookie (signature checked
    with its cookie_secret); any failure counts as no identity."""
    try:
        from streamlit.web.server.starlette.starlette_websocket import _get_signed_cookie_with_chunks

        raw = _get_signed_cookie_with_chunks(cookies, "_streamlit_user")
        payload = json.loads(raw) if raw else {}
    except Exception:
        return None
    email = payload.get("email") if payload.get("is_logged_in") else None
    if not email:
        return None
    from monitor.readmodels.common import session_user

    user = session_user(_engine(), str(email).strip().lower())       # None if unknown or disabled
    return user.email if user is not None else None


def _signed_in(scope) -> bool:
    cookies = _cookies(scope)
    if sessions.resolve(_engine(), cookies.get(sessions.COOKIE_NAME)) is not None:
        return True
    return _auth_mode() == "oidc" and _oidc_account(cookies) is not None


def _is_page(scope) -> bool:
    if scope.get("method") not in ("GET", "HEAD"):
        return False
    path = scope["path"]
    if path.startswith("/_stcore/") or path.startswith("/media/") or path.startswith("/component/") \
            or any(path.startswith(p) for p in _OPEN_PREFIXES):
        return False
    accept = dict(scope.get("headers", [])).get(b"accept", b"")
    return b"text/html" in accept


class SessionGate:
    """Pure ASGI middleware: security headers, the session gate, the websocket message filter."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"]
        local = _auth_mode() == "local"
        needs = (kind == "http" and (path.startswith("/media/") or path.startswith("/_stcore/upload_file"))) \
            or (local and kind == "websocket" and path.endswith("/_stcore/stream")) \
            or (local and kind == "http" and _is_page(scope))
        if needs:
            if not await run_in_threadpool(_signed_in, scope):
                if kind == "websocket":
                    await send({"type": "websocket.close", "code": 4401})
                    return
                if _is_page(scope):
                    target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
                    response = RedirectResponse(f"{SIGN_IN}?suite={quote(target, safe='')}", status_code=303)
                else:
                    response = Response("Session requise.", status_code=403, media_type="text/plain")
                return await response(scope, receive, self._with_headers(send))
        if kind == "websocket":
            return await self.app(scope, self._filtered(receive), send)
        return await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message, headers=list(message.get("headers", []))
                               + [(k, v) for k, v in SECURITY_HEADERS if k not in names])
            await send(message)
        return wrapped

    @staticmethod
    def _filtered(receive):
        async def wrapped():
            while True:
                message = await receive()
                if message["type"] == "websocket.receive" and message.get("bytes") is not None \
                        and not allowed_backmsg(message["bytes"]):
                    continue
                return message
        return wrapped
