"""The websocket behind the pages, driven without a browser: a client that knows a signed-in
user's Streamlit session id but not the user's cookie cannot reconnect to it (item 4 of
issue 12: ``["streamlit","PLACEHOLDER",sid]`` used to give the signed-in pages); the server
log never prints a full session id; developer messages (clear_cache) are dropped."""
from __future__ import annotations

import asyncio
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_dashboard_browser import Dashboard  # noqa: E402
from test_dashboard_apptest import PASSWORD, USERS, build_dashboard_db  # noqa: E402

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ClientState_pb2 import ClientState  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from dashboard.web import allowed_backmsg  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    world = build_dashboard_db(tmp_path_factory.mktemp("ws"), n_services=20, n_months=12)
    d = Dashboard(world.url, tmp_path_factory.mktemp("server") / "dashboard.log")
    yield d
    d.stop()


def _sign_in(base: str, email: str) -> str:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    data = urllib.parse.urlencode({"email": email, "password": PASSWORD, "suite": "/"}).encode()
    try:
        urllib.request.build_opener(NoRedirect).open(urllib.request.Request(f"{base}/connexion", data=data),
                                                     timeout=30)
    except urllib.error.HTTPError as e:
        assert e.code == 303, e.code
        return re.search(r"spsti_session=([^;]+)", e.headers["set-cookie"]).group(1)
    raise AssertionError("no redirect after sign-in")


def _rerun() -> bytes:
    return BackMsg(rerun_script=ClientState(query_string="", page_script_hash="")).SerializeToString()


async def _open(base: str, cookie: str | None, sid: str | None = None):
    headers = {"Cookie": f"spsti_session={cookie}"} if cookie else {}
    return await connect(base.replace("http", "ws") + "/_stcore/stream", origin=base, additional_headers=headers,
                         subprotocols=["streamlit", "PLACEHOLDER"] + ([sid] if sid else []), open_timeout=30)


async def _session_id(ws) -> tuple[str, str]:
    """(session id, texts sent) of the first script run on this connection."""
    await ws.send(_rerun())
    sid, texts = None, []
    while True:
        msg = ForwardMsg()
        msg.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            sid = msg.new_session.initialize.session_id
        elif kind == "delta":
            texts.append(str(msg.delta))
        elif kind == "script_finished":
            return sid, "\n".join(texts)


def test_a_known_session_id_without_the_cookie_gets_nothing(server):
    cookie = _sign_in(server.base, USERS["agent"][0])

    async def scenario():
        victim = await _open(server.base, cookie)
        sid, shown = await _session_id(victim)
        assert sid and "open_by_number" in shown           # the victim's signed-in queue page
        # the attacker knows the id, not the cookie: refused before any page is sent
        for attempt in (None, "forged.value", cookie[:-4] + "AAAA"):
            with pytest.raises(InvalidStatus) as refused:
                await _open(server.base, attempt, sid)
            assert refused.value.response.status_code == 403
        # the same id reconnected twice with the cookie: Streamlit warns, and the log keeps 8 characters
        again = await _open(server.base, cookie, sid)
        twice = await _open(server.base, cookie, sid)
        await asyncio.sleep(1)
        for ws in (again, twice, victim):
            await ws.close()
        return sid

    sid = asyncio.run(scenario())
    # nor can it upload a file into that session
    put = urllib.request.Request(f"{server.base}/_stcore/upload_file/{sid}/f1", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=30)
    assert refused.value.code == 403
    log = Path(server.log.name).read_text()
    assert sid not in log
    assert sid[:8] + "…" in log                          # the warning is there, shortened


def test_developer_messages_are_dropped_and_others_pass():
    assert not allowed_backmsg(BackMsg(clear_cache=True).SerializeToString())
    assert not allowed_backmsg(BackMsg(debug_shutdown_runtime=True).SerializeToString())
    assert allowed_backmsg(_rerun())
    assert allowed_backmsg(BackMsg(app_heartbeat=True).SerializeToString())
