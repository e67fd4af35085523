"""The production sign-in tested for real: a standards-compliant OpenID Connect provider
(panva/oidc-provider, OpenID Certified, under Node; tests/oidc/) on 127.0.0.1, and the whole
authorization-code flow in Chromium through ``spsti-monitor dashboard`` with
``SPSTI_MONITOR_AUTH=oidc`` (Streamlit's ``st.login``, Authlib):

* « Se connecter avec ProConnect » → the provider's sign-in form → back to the dashboard,
  signed in as the local account with the identity's e-mail, with its role and regions;
* an identity without a local account is refused with a French message and sees no data;
* « Se déconnecter » signs out: the next visit offers the provider's button again.

Skipped when Node or the provider's packages are absent (`.ci/run` runs `npm ci` in tests/oidc).
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_dashboard_browser import (Dashboard, _free_port, browser, no_exception,  # noqa: E402,F401
                                    settle, stop_process_group)
from test_dashboard_apptest import USERS, build_dashboard_db  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
OIDC_DIR = Path(__file__).parent / "oidc"
NODE = shutil.which("node")
if NODE is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
    pytest.skip("Node ou oidc-provider absent : « cd tests/oidc && npm ci » (fait par .ci/run)",
                allow_module_level=True)

pytest.importorskip("authlib", reason="st.login a besoin d'Authlib (dépendance du projet)")


def urllib_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Provider:
    """``node tests/oidc/provider.mjs`` in its own process group, stopped with it."""

    def __init__(self, port: int, redirect_uri: str, client_id: str, client_secret: str, log: Path):
        self.issuer = f"http://127.0.0.1:{port}"
        self.log = open(log, "w")
        self.proc = subprocess.Popen([NODE, str(OIDC_DIR / "provider.mjs"), str(port), redirect_uri, client_id,
                                      client_secret], stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline()            # "ready <issuer>" (blocks until it listens)
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the OIDC provider did not start: {line!r} {log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def oidc_dashboard(tmp_path_factory):
    world = build_dashboard_db(tmp_path_factory.mktemp("oidc"), n_services=20, n_months=12)
    run = tmp_path_factory.mktemp("oidc-run")
    port, provider_port = _free_port(), _free_port()
    client_id, client_secret = "supervision-spsti", secrets.token_urlsafe(24)
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    provider = Provider(provider_port, redirect, client_id, client_secret, run / "provider.log")
    (run / ".streamlit").mkdir()
    (run / ".streamlit" / "secrets.toml").write_text(f'''[auth]
redirect_uri = "{redirect}"
cookie_secret = "{secrets.token_urlsafe(32)}"

[auth.proconnect]
client_id = "{client_id}"
client_secret = "{client_secret}"
server_metadata_url = "{provider.issuer}/.well-known/openid-configuration"
client_kwargs = {{ scope = "openid email profile", prompt = "login" }}
''')
    try:
        dash = Dashboard(world.url, run / "dashboard.log", port=port,
                         extra_env={"SPSTI_MONITOR_AUTH": "oidc", "SPSTI_MONITOR_OIDC_PROVIDER": "proconnect"})
    except Exception:
        provider.stop()
        raise
    yield dash, provider
    dash.stop()
    provider.stop()


def _sign_in_at_provider(page, base: str, issuer: str, login: str) -> None:
    page.goto(f"{base}/")
    page.get_by_role("button", name="Se connecter avec ProConnect").click()
    page.wait_for_url(f"{issuer}/**", timeout=60_000)          # the provider's own page
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("nimporte-quoi")
    page.locator('button[type="submit"]').click()
    page.wait_for_url(f"{base}/**", timeout=60_000)            # back through /oauth2callback


def test_the_authorization_code_flow_maps_the_identity_to_its_local_account(oidc_dashboard, browser):
    dash, provider = oidc_dashboard
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    _sign_in_at_provider(page, dash.base, provider.issuer, USERS["agent"][0].upper())
    page.get_by_role("button", name="Se déconnecter").wait_for(timeout=60_000)
    settle(page)
    no_exception(page)
    assert page.locator("h1").first.inner_text() == "File d'alertes"
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Alice Agent" in sidebar and "Agent de contrôle" in sidebar and "Auvergne-Rhône-Alpes" in sidebar
    # a reload keeps the identity (Streamlit's signed identity cookie)
    page.reload()
    page.get_by_role("button", name="Se déconnecter").wait_for(timeout=60_000)
    # the follow-up CSV is served to the signed-in identity, and to no one else
    page.get_by_role("link", name="Suites").click()
    settle(page)
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Exporter (CSV)").click()
    csv_url = download.value.url
    assert context.request.get(csv_url).status == 200
    assert urllib_status(csv_url) == 403
    # sign out: at the provider too (RP-initiated logout, confirmed on its page), then back
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(f"{provider.issuer}/session/end**", timeout=60_000)
    page.locator('button[name="logout"][value="yes"]').click()
    page.wait_for_url(f"{dash.base}/**", timeout=60_000)
    page.get_by_role("button", name="Se connecter avec ProConnect").wait_for(timeout=60_000)
    page.goto(f"{dash.base}/")
    page.get_by_role("button", name="Se connecter avec ProConnect").wait_for(timeout=60_000)
    settle(page)
    assert page.locator('[data-testid="stDataFrame"]').count() == 0
    context.close()


def test_an_identity_without_a_local_account_is_refused_in_french(oidc_dashboard, browser):
    dash, provider = oidc_dashboard
    context = browser.new_context()
    page = context.new_page()
    _sign_in_at_provider(page, dash.base, provider.issuer, "inconnu@exemple.fr")
    page.get_by_text("n'a pas d'accès à cet outil").wait_for(timeout=60_000)
    settle(page)
    assert "inconnu@exemple.fr" in page.locator("body").inner_text()
    assert page.locator('[data-testid="stDataFrame"]').count() == 0
    page.get_by_role("button", name="Se déconnecter de ProConnect").click()
    page.wait_for_url(f"{provider.issuer}/session/end**", timeout=60_000)
    page.locator('button[name="logout"][value="yes"]').click()
    page.get_by_role("button", name="Se connecter avec ProConnect").wait_for(timeout=60_000)
    context.close()
