"""Sessions that last, in Chromium against ``spsti-monitor dashboard`` (st.App with the
sign-in routes and the session gate):

* a digest link asks for a sign-in once and comes back to its alert; a wrong password is
  announced with role="alert"; reloads, new tabs and other digest links need no sign-in;
* the cookie is HttpOnly and SameSite=Lax; a forged, expired or revoked one leads to the
  sign-in page; signing out in one tab signs out the others;
* the follow-up CSV (``/media/…``) is refused without a valid session;
* a bad alert number gets a French message, never a traceback; every response carries
  X-Frame-Options and a Content-Security-Policy.
"""
from __future__ import annotations

import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from test_dashboard_browser import Dashboard, browser, no_exception, settle  # noqa: E402,F401
from test_dashboard_apptest import PASSWORD, USERS, build_dashboard_db  # noqa: E402

from monitor.store import db  # noqa: E402
from monitor.store.models import WebSession  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
COOKIE = "spsti_session"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_dashboard_db(tmp_path_factory.mktemp("sessions"))


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    d = Dashboard(world.url, tmp_path_factory.mktemp("server") / "dashboard.log")
    yield d
    d.stop()


def _get(url: str, cookie: str | None = None, accept: str = "*/*"):
    """(status, headers, body) of a GET without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    req = urllib.request.Request(url, headers={"Accept": accept, **({"Cookie": f"{COOKIE}={cookie}"} if cookie else {})})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _on_sign_in_page(page) -> None:
    page.wait_for_url("**/connexion**", timeout=60_000)
    page.get_by_label("Mot de passe").wait_for(timeout=30_000)


def _signed_in_on(page, title_start: str) -> None:
    page.get_by_role("button", name="Se déconnecter").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    assert page.locator("h1").first.inner_text().startswith(title_start)


def test_a_sign_in_lasts_across_reloads_tabs_and_digest_links_and_ends_everywhere(server, browser, world):
    first, second = world.alerts["84"][:2]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    blocked: list[str] = []          # what the Content-Security-Policy stopped (it must stop nothing of ours)
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    # a digest link « Voir l'alerte », not signed in: the sign-in page, then the alert
    page.goto(f"{server.base}/alerte?id={first}")
    _on_sign_in_page(page)
    page.get_by_label("Adresse électronique").fill(USERS["agent"][0])
    page.get_by_label("Mot de passe").fill("pas-le-bon")
    page.get_by_role("button", name="Se connecter").click()
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=30_000)
    assert "incorrect" in alert.inner_text()
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"**/alerte?id={first}", timeout=60_000)
    _signed_in_on(page, f"Alerte n° {first}")
    page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for(
        timeout=60_000)                               # the charts draw under the CSP
    (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("() => document.cookie").find(COOKIE) == -1       # invisible to scripts
    # reload: still signed in, same page
    page.reload()
    _signed_in_on(page, f"Alerte n° {first}")
    # a new tab, and another digest link: no sign-in
    tab = context.new_page()
    tab.goto(f"{server.base}/")
    _signed_in_on(tab, "File d'alertes")
    link = context.new_page()
    link.goto(f"{server.base}/alerte?id={second}")
    _signed_in_on(link, f"Alerte n° {second}")
    link.close()
    # the follow-up CSV: served with the session, refused without one
    tab.get_by_role("link", name="Suites").click()
    settle(tab)
    with tab.expect_download(timeout=60_000) as download:
        tab.get_by_role("button", name="Exporter (CSV)").click()
    csv_url = download.value.url
    assert "/media/" in csv_url
    assert _get(csv_url, cookie["value"])[0] == 200
    assert _get(csv_url)[0] == 403
    assert _get(csv_url, cookie["value"][:-3] + "AAA")[0] == 403
    # sign out in the first tab: the other tab's next action finds its session ended
    page.get_by_role("button", name="Se déconnecter").click()
    _on_sign_in_page(page)
    assert "déconnecté" in page.get_by_role("status").inner_text()
    tab.get_by_role("link", name="File d'alertes").click()
    tab.get_by_text("Votre session a pris fin").wait_for(timeout=60_000)
    assert tab.locator('[data-testid="stDataFrame"]').count() == 0
    tab.reload()
    _on_sign_in_page(tab)
    # the old cookie, replayed, opens nothing; nor does the CSV address
    assert _get(f"{server.base}/alerte?id={first}", cookie["value"], accept="text/html")[0] == 303
    assert _get(csv_url, cookie["value"])[0] == 403
    assert not blocked, blocked
    context.close()


def test_forged_and_expired_cookies_lead_to_the_sign_in_page(server, browser, world):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.base}/")
    _on_sign_in_page(page)
    page.get_by_label("Adresse électronique").fill(USERS["manager"][0])
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    _signed_in_on(page, "File d'alertes")
    (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
    token, signature = cookie["value"].rsplit(".", 1)
    forged = browser.new_context()
    forged.add_cookies([dict(name=COOKIE, value=f"{token}.{signature[::-1]}", url=server.base)])
    other = forged.new_page()
    other.goto(f"{server.base}/")
    _on_sign_in_page(other)
    forged.close()
    # the session left idle beyond the delay (2 h by default): the next load asks to sign in
    eng = db.get_engine(world.url)
    with db.session_scope(eng) as s:
        s.execute(sa.update(WebSession).values(last_seen_at=datetime.now(timezone.utc) - timedelta(hours=3)))
    page.reload()
    _on_sign_in_page(page)
    context.close()


def test_bad_addresses_get_french_messages_and_every_response_security_headers(server, browser, world):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.base}/alerte?id=99999999999999999999")
    _on_sign_in_page(page)
    page.get_by_label("Adresse électronique").fill(USERS["agent"][0])
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_text("n'est pas un numéro d'alerte valide").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "OverflowError" not in body and ".py" not in body
    (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE]
    for path, who in (("/", cookie["value"]), ("/connexion", None), ("/_stcore/health", None)):
        status, headers, _ = _get(f"{server.base}{path}", who, accept="text/html")
        assert status == 200, path
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # a sign-in form posted from another site is refused (login CSRF)
    req = urllib.request.Request(f"{server.base}/connexion", method="POST",
                                 data=f"email={USERS['agent'][0]}&password={PASSWORD}".encode(),
                                 headers={"Origin": "https://evil.example",
                                          "Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 403
    context.close()
