"""The dashboard under streamlit.testing: every page for every role, region isolation of
what each page sends to the browser, triage actions, follow-ups, administration, sign-in.

The database is a small generated national panel (40 services, 24 months) run through the
real ingest and detection, plus a few alerts opened by the real lifecycle so that both test
regions (Auvergne-Rhône-Alpes 84 and PACA 93) have alerts with charts. It is built once per
module; tests that write work on a copy.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from monitor.vocabulary import dates as timefmt
from alerts import triage
from alerts.lifecycle import apply_findings
from monitor.store import db
from monitor.store.models import Alert, AlertEvent, FollowUp, FollowUpAlert, Service, User
from monitor.accounts import sessions
from monitor.accounts.users import add_user
from dashboard import state as dash_state
from dashboard.ui import md_escape

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PASSWORD = "mot-de-passe-test"
SEED = 7
USERS = {
    # role key: (email, name, role, regions)
    "agent": ("agent84@dreets.test", "Alice Agent", "agent", "84"),
    "manager": ("manager84@dreets.test", "Marie Responsable", "manager", "84"),
    "agent93": ("agent93@dreets.test", "Paul Agent", "agent", "93"),
    "national": ("dgt@travail.test", "Nadia DGT", "national", ""),
    "admin": ("admin@dreets.test", "Adam Admin", "admin", ""),
}
ROLES = ("agent", "manager", "national", "admin")
PAGES = ("views/queue.py", "views/alert.py", "views/service.py", "views/overview.py", "views/followups.py",
         "views/data.py", "views/admin.py")


@dataclass
class DashWorld:
    path: Path                                   # the SQLite file
    services: pd.DataFrame                       # service_id, name, region_code
    alerts: dict[str, list[int]] = field(default_factory=dict)   # region -> open alert ids (injected)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def names(self, region: str, inside: bool = True) -> list[str]:
        s = self.services
        return s.loc[(s["region_code"] == region) == inside, "name"].tolist()

    def sirets(self, region: str, inside: bool = True) -> list[str]:
        s = self.services
        return s.loc[(s["region_code"] == region) == inside, "service_id"].tolist()

    def service(self, region: str) -> str:
        return self.services.loc[self.services["region_code"] == region, "service_id"].iloc[0]


def build_dashboard_db(base: Path, seed: int = SEED, n_services: int = 40, n_months: int = 24) -> DashWorld:
    """A generated panel ingested and detected, users of every role, and open alerts in 84 and 93."""
    from fixtures._io import write_panel
    from fixtures.generate import generate
    from fixtures.harness.datasets import load_dataset
    from monitor.pipeline.detection import run_detection

    base.mkdir(parents=True, exist_ok=True)
    write_panel(generate(seed=seed, n_services=n_services, n_months=n_months), base / "data")
    path = base / "dashboard.db"
    eng = db.get_engine(f"sqlite:///{path}")
    load_dataset(eng, base / "data")
    run_detection(eng)
    for email, name, role, regions in USERS.values():
        add_user(eng, email=email, name=name, role=role, regions=regions, password=PASSWORD)
    with eng.connect() as conn:
        services = pd.DataFrame(conn.execute(sa.select(Service.service_id, Service.name, Service.region_code)
                                             .order_by(Service.service_id)).all(),
                                columns=["service_id", "name", "region_code"])
        last = conn.execute(sa.text("select max(month_index) from observations where period_kind = 'M'")).scalar()
    world = DashWorld(path, services)
    rows = []
    for region, specs in (("84", [("vip_init_in_delay_rate", "peer_outlier", "high", 6.2),
                                  ("sir_overdue_rate", "drift", "medium", 3.1)]),
                          ("93", [("reprise_within_8d_rate", "peer_outlier", "high", 5.4)])):
        sid = world.service(region)
        for indicator, category, severity, score in specs:
            rows.append(dict(service_id=sid, indicator=indicator, category=category, month_index=int(last),
                             severity=severity, score=score, detectors="peer_funnel",
                             explanation=f"Signal de test sur {indicator} (z ajusté {score:.1f})"))
    with db.session_scope(eng) as s:
        apply_findings(s, pd.DataFrame(rows), [int(last)])
    with eng.connect() as conn:
        for region in ("84", "93"):
            world.alerts[region] = [r[0] for r in conn.execute(
                sa.select(Alert.id).join(Service, Service.service_id == Alert.service_id)
                .where(Service.region_code == region, Alert.status == "open", Alert.detectors == "peer_funnel",
                       Alert.explanation.like("Signal de test%")).order_by(Alert.id))]
    with eng.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    db.get_engine.cache_clear()
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> DashWorld:
    return build_dashboard_db(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def dash(world, monkeypatch) -> DashWorld:
    """The module's database, read-only use."""
    monkeypatch.setenv("SPSTI_MONITOR_DB", world.url)
    return world


@pytest.fixture
def wdash(world, tmp_path, monkeypatch) -> DashWorld:
    """A private copy of the module's database, for tests that write."""
    path = tmp_path / "copy.db"
    shutil.copy(world.path, path)
    monkeypatch.setenv("SPSTI_MONITOR_DB", f"sqlite:///{path}")
    return DashWorld(path, world.services, world.alerts)


# --------------------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def _no_cookie(monkeypatch):
    """AppTest cannot send cookies: the session cookie the browser would send is given by
    replacing ``state.session_cookie`` (restored after each test); none by default."""
    monkeypatch.setattr(dash_state, "session_cookie", lambda: None)


def sign_in_cookie(role: str) -> str:
    """A session opened as the sign-in route does, and the cookie value it gives the browser."""
    return sessions.open_session(db.get_engine(os.environ["SPSTI_MONITOR_DB"]), USERS[role][0])


def signed_in(role: str, page: str | None = None, **query) -> AppTest:
    """The app with ``role``'s user signed in, on ``page`` with ``query`` parameters."""
    cookie = sign_in_cookie(role)
    dash_state.session_cookie = lambda: cookie          # undone by the _no_cookie fixture
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page)
        for k, v in query.items():
            at.query_params[k] = str(v)
        at.run()
    return at


def page_bytes(at: AppTest) -> bytes:
    """Everything the page sends to the browser (texts, tables as Arrow, chart specs and data)."""
    out: list[bytes] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "SerializeToString"):
            out.append(proto.SerializeToString())
        children = getattr(node, "children", None) or {}
        for child in children.values():
            walk(child)

    walk(at._tree)
    return b"\n".join(out)


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.title] + [e.value for e in at.markdown] + [e.value for e in at.caption] \
        + [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning] \
        + [str(e.value) for e in at.metric] + [e.label for e in at.metric]
    return "\n".join(map(str, parts))


def table(at: AppTest, i: int = 0) -> pd.DataFrame:
    return at.dataframe[i].value


# --------------------------------------------------------------------------- sign-in

def test_without_a_session_nothing_is_shown_and_the_sign_in_page_is_linked(dash):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value.startswith("Supervision")
    assert not at.dataframe                       # nothing of the data without a session
    assert "/connexion?suite=" in "\n".join(str(h.proto.body) for h in at.get("html"))


def test_a_forged_cookie_signs_nobody_in(dash):
    cookie = sign_in_cookie("agent")
    token, signature = cookie.rsplit(".", 1)
    for forged in (token + ".AAAA" + signature[4:], "x" + cookie[1:], token, "", "a" * 5000):
        dash_state.session_cookie = lambda: forged
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert not at.exception
        assert at.title[0].value.startswith("Supervision"), forged
        assert not at.dataframe


def test_revoking_the_session_signs_out_the_open_page(wdash):
    """Sign-out in another tab, a password change or a lock end the session of an open page
    at its next run."""
    at = signed_in("manager", "views/queue.py")
    assert at.title[0].value == "File d'alertes"
    eng = db.get_engine(wdash.url)
    with db.session_scope(eng) as s:
        uid = s.execute(sa.select(User.id).where(User.email == USERS["manager"][0])).scalar_one()
        assert sessions.revoke_account(s, uid) >= 1
    at.run()
    assert at.title[0].value.startswith("Supervision")
    assert not at.dataframe
    assert any("session a pris fin" in i.value for i in at.info)


def test_oidc_identity_mapped_to_local_account(dash, monkeypatch):
    monkeypatch.setenv("SPSTI_MONITOR_AUTH", "oidc")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert any(b.label == "Se connecter avec ProConnect" for b in at.button)
    assert not at.exception
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": True, "email": "Agent84@dreets.test", "name": "Alice"}
    at.run()
    assert not at.exception
    assert at.title[0].value == "File d'alertes"
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": True, "email": "inconnu@exemple.fr"}
    at.run()
    assert at.error and "n'a pas d'accès" in at.error[0].value
    assert not at.dataframe


# --------------------------------------------------------------------------- every page, every role

@pytest.mark.parametrize("role", ROLES)
def test_every_page_runs_for_every_role(dash, role):
    own_alert = dash.alerts["84"][0]
    own_service = dash.service("84")
    for page in PAGES:
        query = {"id": own_alert} if page == "views/alert.py" else \
            {"siret": own_service} if page == "views/service.py" else {}
        if page == "views/admin.py" and role != "admin":
            at = signed_in(role)
            with pytest.raises(ValueError):          # not declared: unreachable
                at.switch_page(page)
            continue
        at = signed_in(role, page, **query)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title, page
        body = texts(at)
        if page == "views/queue.py":
            assert at.title[0].value == "File d'alertes"
            assert len(table(at)) >= 1
            assert "Gravité élevée" in body
        elif page == "views/alert.py":
            assert at.title[0].value.startswith(f"Alerte n° {own_alert}")
            assert len(at.get("vega_lite_chart")) == 2              # series and funnel
            assert "Historique" in [s.value for s in at.subheader]
            has_actions = any(b.label == "Prendre en charge" for b in at.button)
            assert has_actions == (role != "national")
            if role == "national":
                assert any("Lecture seule" in i.value for i in at.info)
        elif page == "views/service.py":
            assert at.title[0].value == dash.services.set_index("service_id").at[own_service, "name"]
            assert own_service.encode() in page_bytes(at)
            assert at.get("vega_lite_chart")                         # small multiples
        elif page == "views/overview.py":
            assert at.title[0].value == ("Vue nationale" if role in ("national", "admin") else "Vue régionale")
            assert len(at.get("vega_lite_chart")) >= 2              # tile map and heat map
        elif page == "views/followups.py":
            assert at.title[0].value == "Suites"
            assert at.get("download_button")
        elif page == "views/data.py":
            assert at.title[0].value == "Données"
            assert len(table(at)) >= 1
        elif page == "views/admin.py":
            assert at.title[0].value == "Administration"
            assert set(table(at)["Adresse"]) >= {u[0] for u in USERS.values()}


def test_alert_page_for_every_kind_of_alert(dash):
    """One alert of each (indicator, category) present: missing report, agrément, rules,
    funnel and robust peer comparisons, drifts, data quality."""
    with db.get_engine(dash.url).connect() as conn:
        ids = [r[0] for r in conn.execute(sa.select(sa.func.min(Alert.id)).group_by(Alert.indicator, Alert.category))]
    assert len(ids) >= 8
    at = signed_in("national")
    for alert_id in ids:
        at.switch_page("views/alert.py")
        at.query_params["id"] = str(alert_id)
        at.run()
        assert not at.exception, (alert_id, [e.value for e in at.exception])
        assert at.title[0].value.startswith(f"Alerte n° {alert_id}")


def test_navigation_declares_administration_only_for_admins(dash):
    for role in ROLES:
        at = signed_in(role)
        try:
            at.switch_page("views/admin.py")
            declared = True
        except ValueError:
            declared = False
        assert declared == (role == "admin"), role


# --------------------------------------------------------------------------- region isolation

def _own_and_foreign(world: DashWorld, region: str) -> tuple[list[str], list[str], list[str]]:
    own = world.names(region)
    foreign = [n for n in world.names(region, inside=False) if not any(n in o for o in own)]
    return own, foreign, world.sirets(region, inside=False)


def test_agent_pages_contain_no_trace_of_other_regions(dash):
    """Everything the pages send (texts, tables, chart data) names only the agent's region's
    services: other regions appear at most as anonymous grey points of a funnel plot."""
    own, foreign_names, foreign_sirets = _own_and_foreign(dash, "84")
    own_alert, own_service = dash.alerts["84"][0], dash.service("84")
    seen_own = False
    for page, query in [("views/queue.py", {}), ("views/alert.py", {"id": own_alert}), ("views/alert.py", {}),
                        ("views/service.py", {"siret": own_service}), ("views/service.py", {}),
                        ("views/overview.py", {}), ("views/followups.py", {}), ("views/data.py", {})]:
        at = signed_in("agent", page, **query)
        assert not at.exception, page
        blob = page_bytes(at)
        seen_own |= any(n.encode() in blob for n in own)
        for name in foreign_names:
            assert name.encode() not in blob, (page, name)
        for siret in foreign_sirets:
            assert siret.encode() not in blob, (page, siret)
    assert seen_own      # the search does find names when they are there


def test_out_of_region_addresses_are_refused(dash):
    other_alert, other_service = dash.alerts["93"][0], dash.service("93")
    at = signed_in("agent", "views/alert.py", id=other_alert)
    assert at.error and "Accès refusé" in at.error[0].value
    assert other_service.encode() not in page_bytes(at)
    at = signed_in("agent", "views/service.py", siret=other_service)
    assert at.error and "Accès refusé" in at.error[0].value
    assert not at.get("vega_lite_chart")


def test_funnel_shows_other_regions_anonymously(dash):
    at = signed_in("agent", "views/alert.py", id=dash.alerts["84"][0])
    charts = at.get("vega_lite_chart")
    blob = b"".join(c.proto.SerializeToString() for c in charts)
    assert dash.names("84")[0].encode() in blob or dash.service("84").encode() in blob
    assert b"service d'une autre r" in blob             # the anonymous grey points' tooltip
    for siret in dash.sirets("84", inside=False):
        assert siret.encode() not in blob


def test_national_sees_every_region(dash):
    at = signed_in("national", "views/queue.py")
    regions = set(table(at)["Région"])
    assert {"Auvergne-Rhône-Alpes", "Provence-Alpes-Côte d'Azur"} <= regions


# --------------------------------------------------------------------------- queue

def test_queue_filters_and_counts(dash):
    at = signed_in("national", "views/queue.py")
    full = table(at)
    at.multiselect(key="q_severities").set_value(["high"]).run()
    high = table(at)
    assert len(high) < len(full) and set(high["Gravité"]) == {"Élevée"}
    assert at.metric[1].value == str(len(high))
    at.multiselect(key="q_severities").set_value([])
    at.multiselect(key="q_regions").set_value(["93"]).run()
    assert set(table(at)["Région"]) == {"Provence-Alpes-Côte d'Azur"}
    at.text_input(key="q_text").input(dash.names("93")[0]).run()
    assert not at.exception
    assert len(table(at)) >= 1


def test_queue_assigned_to_me(wdash):
    eng = db.get_engine(wdash.url)
    alert_id = wdash.alerts["84"][0]
    a = triage.get_alert(eng, USERS["agent"][0], alert_id)
    with db.session_scope(eng) as s:
        me = s.scalar(sa.select(User.id).where(User.email == USERS["agent"][0]))
    triage.assign(eng, USERS["agent"][0], alert_id, a.version, me)
    at = signed_in("agent", "views/queue.py")
    at.toggle(key="q_mine").set_value(True).run()
    assert list(table(at)["N°"]) == [alert_id]
    assert set(table(at)["Attribuée à"]) == {"Alice Agent"}


# --------------------------------------------------------------------------- alert actions

def _form_button(at: AppTest, label: str):
    for b in at.button:
        if b.label == label:
            return b
    raise AssertionError(f"no button {label!r} among {[b.label for b in at.button]}")


def test_acknowledge_then_follow_up_through_the_page(wdash):
    alert_id = wdash.alerts["84"][0]
    at = signed_in("agent", "views/alert.py", id=alert_id)
    _form_button(at, "Prendre en charge").click().run()
    assert not at.exception
    assert any("prise en charge" in s.value for s in at.success)
    eng = db.get_engine(wdash.url)
    assert triage.get_alert(eng, USERS["agent"][0], alert_id).status == "acknowledged"
    # then a follow-up: compliance request, due in two months
    form_kind = [s for s in at.selectbox if s.label == "Type de suite"][0]
    form_kind.set_value("mise_en_conformite")
    [d for d in at.date_input if d.label == "Échéance"][0].set_value(timefmt.today() + timedelta(days=60))
    [t for t in at.text_area if t.label == "Notes"][0].input("Demande adressée au président du service.")
    _form_button(at, "Créer la suite").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("créée" in s.value for s in at.success), [e.value for e in at.error]
    with eng.connect() as conn:
        fu = conn.execute(sa.select(FollowUp.kind, FollowUp.notes, FollowUp.legal_reference)
                          .join(FollowUpAlert, FollowUpAlert.follow_up_id == FollowUp.id)
                          .where(FollowUpAlert.alert_id == alert_id)).one()
        status = conn.execute(sa.select(Alert.status).where(Alert.id == alert_id)).scalar()
        kinds = [k for (k,) in conn.execute(sa.select(AlertEvent.kind).where(AlertEvent.alert_id == alert_id)
                                            .order_by(AlertEvent.id))]
    assert fu.kind == "mise_en_conformite" and fu.legal_reference == "D4622-51"
    assert status == "follow_up"
    assert kinds[-2:] == ["acknowledged", "follow_up"]


def test_compliance_request_beyond_six_months_is_refused(wdash):
    at = signed_in("manager", "views/alert.py", id=wdash.alerts["84"][0])
    [s for s in at.selectbox if s.label == "Type de suite"][0].set_value("mise_en_conformite")
    [d for d in at.date_input if d.label == "Échéance"][0].set_value(timefmt.today() + timedelta(days=250))
    _form_button(at, "Créer la suite").click().run()
    assert at.error and "6 mois" in at.error[0].value


def test_dismiss_needs_a_comment_and_records_the_reason(wdash):
    alert_id = wdash.alerts["84"][1]
    at = signed_in("manager", "views/alert.py", id=alert_id)
    _form_button(at, "Classer l'alerte").click().run()
    assert at.error and "obligatoire" in at.error[0].value
    [s for s in at.selectbox if s.label == "Motif du classement"][0].set_value("erreur_donnees")
    [t for t in at.text_area if t.label == "Commentaire (obligatoire)"][0].input("Valeur corrigée par le service.")
    _form_button(at, "Classer l'alerte").click().run()
    assert not at.error
    with db.get_engine(wdash.url).connect() as conn:
        row = conn.execute(sa.select(Alert.status, Alert.dismiss_reason).where(Alert.id == alert_id)).one()
    assert tuple(row) == ("dismissed", "erreur_donnees")


def test_concurrent_change_shows_who_changed_the_alert(wdash):
    alert_id = wdash.alerts["84"][0]
    at = signed_in("agent", "views/alert.py", id=alert_id)        # the agent reads version v
    eng = db.get_engine(wdash.url)
    a = triage.get_alert(eng, USERS["manager"][0], alert_id)
    triage.acknowledge(eng, USERS["manager"][0], alert_id, a.version, "je m'en charge")   # the manager acts
    [t for t in at.text_input if t.label == "Motif"][0].input("attente du rapport annuel")
    _form_button(at, "Mettre en sourdine").click().run()       # the agent acts on what they saw
    assert at.error and "modifiée par Marie Responsable" in at.error[0].value
    with eng.connect() as conn:
        assert conn.execute(sa.select(Alert.snoozed_until).where(Alert.id == alert_id)).scalar() is None
    # the page now shows the new state, and a retry on it goes through
    [t for t in at.text_input if t.label == "Motif"][0].input("attente du rapport annuel")
    _form_button(at, "Mettre en sourdine").click().run()
    assert not at.error
    assert any("sourdine" in s.value for s in at.success)


def test_national_cannot_act(dash):
    at = signed_in("national", "views/alert.py", id=dash.alerts["93"][0])
    assert not at.get("form")
    assert not any(b.label in ("Prendre en charge", "Classer l'alerte", "Créer la suite") for b in at.button)
    at = signed_in("national", "views/followups.py")
    assert not at.exception


# --------------------------------------------------------------------------- follow-ups, data, admin

def test_follow_up_board_overdue_first_and_export(wdash):
    eng = db.get_engine(wdash.url)
    from alerts import followups

    today = timefmt.today()
    ids = wdash.alerts["84"]
    with db.session_scope(eng) as s:
        agent_id = s.scalar(sa.select(User.id).where(User.email == USERS["agent"][0]))
    later = followups.create_follow_up(eng, USERS["agent"][0], [ids[0]], "demande_explications", agent_id,
                                       today + timedelta(days=20))
    soon = followups.create_follow_up(eng, USERS["agent"][0], [ids[1]], "controle_sur_pieces", agent_id,
                                      today + timedelta(days=3))
    with eng.begin() as conn:           # make the second one overdue (as if created long ago)
        conn.execute(sa.update(FollowUp).where(FollowUp.id == soon.id).values(due_date=today - timedelta(days=4)))
    at = signed_in("agent", "views/followups.py")
    board = table(at)
    assert list(board["N°"])[:2] == [soon.id, later.id]
    assert board.iloc[0]["Retard"] == "4 j"
    # the change form of a follow-up
    at = signed_in("agent", "views/followups.py", id=later.id)
    [s for s in at.selectbox if s.label == "Statut"][-1].set_value("en_cours")
    _form_button(at, "Enregistrer").click().run()
    assert not at.error, [e.value for e in at.error]
    assert followups.get_follow_up(eng, USERS["agent"][0], later.id).status == "en_cours"
    text = followups.export_follow_ups_csv(eng, USERS["agent"][0])
    assert text.splitlines()[0].startswith("follow_up_id,")


def test_data_page_scopes_rows_and_hides_error_details(dash):
    at = signed_in("agent", "views/data.py")
    rec = table(at)
    assert set(rec["Région"]) == {"84"}
    at = signed_in("national", "views/data.py")
    assert len(table(at)) == len(dash.services)


def test_admin_creates_and_changes_an_account(wdash):
    at = signed_in("admin", "views/admin.py")
    [t for t in at.text_input if t.label == "Adresse électronique"][0].input("nouvel.agent@dreets.test")
    [t for t in at.text_input if t.label == "Nom"][-1].input("Nouvel Agent")
    [m for m in at.multiselect if m.label == "Régions (agent, responsable)"][0].set_value(["93"])
    [t for t in at.text_input if t.label.startswith("Mot de passe initial")][0].input("un-mot-de-passe-solide")
    _form_button(at, "Créer le compte").click().run()
    assert not at.error, [e.value for e in at.error]
    assert "nouvel.agent@dreets.test" in set(table(at)["Adresse"])
    with db.get_engine(wdash.url).connect() as conn:
        u = conn.execute(sa.select(User.role, User.regions).where(User.email == "nouvel.agent@dreets.test")).one()
    assert tuple(u) == ("agent", "93")
    # an agent-only form error is shown in French
    [t for t in at.text_input if t.label == "Adresse électronique"][0].input("sans-region@dreets.test")
    [t for t in at.text_input if t.label == "Nom"][-1].input("Sans Région")
    [t for t in at.text_input if t.label.startswith("Mot de passe initial")][0].input("un-mot-de-passe-solide")
    _form_button(at, "Créer le compte").click().run()
    assert at.error and "au moins une région" in at.error[0].value


def test_disabled_account_is_signed_out(wdash):
    at = signed_in("agent", "views/queue.py")
    assert at.title[0].value == "File d'alertes"
    with db.get_engine(wdash.url).begin() as conn:
        conn.execute(sa.update(User).where(User.email == USERS["agent"][0]).values(active=False))
    at.run()
    assert at.title[0].value.startswith("Supervision")       # back to the sign-in form


# --------------------------------------------------------------------------- analytics on both databases

def test_analytics_on_sqlite_and_postgresql(engine, tmp_path):
    """The read models answer the same on SQLite and PostgreSQL, within the user's regions."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import INDICATOR_COLUMNS, REGISTER_COLUMNS, indicator_rows, register_rows, write_csv

    from monitor.readmodels import common as readmodel

    from monitor.readmodels import funnel as funnel_model

    from monitor.readmodels import overview as overview_model

    from monitor.readmodels import queue as queue_model

    from monitor.readmodels import reception as reception_model

    from monitor.readmodels import services as service_model
    from monitor.pipeline.detection import run_detection
    from monitor.ingest.indicators import ingest_file
    from monitor.ingest.register import load_register

    svcs = register_rows(18, regions=("84", "93"))
    rows = indicator_rows(svcs, [f"2025-{m:02d}" for m in range(1, 10)])
    dropped = {svcs[0]["service_id"], svcs[1]["service_id"]}
    rows = [r for r in rows if not (r["service_id"] in dropped and r["period"] == "2025-09")]
    write_csv(tmp_path / "reg.csv", svcs, REGISTER_COLUMNS)
    write_csv(tmp_path / "ind.csv", rows, INDICATOR_COLUMNS)
    load_register(engine, tmp_path / "reg.csv")
    ingest_file(engine, tmp_path / "ind.csv")
    run_detection(engine)
    add_user(engine, email="a84@test.fr", name="A", role="agent", regions="84", password=PASSWORD)
    add_user(engine, email="dgt@test.fr", name="N", role="national", password=PASSWORD)
    mine = {s["service_id"] for s in svcs if s["region_code"] == "84"}

    q = queue_model.queue_frame(engine, "a84@test.fr")
    assert len(q) >= 1 and set(q["service_id"]) <= mine
    assert len(queue_model.queue_frame(engine, "dgt@test.fr")) > len(q)
    f = queue_model.filter_queue(q, queue_model.QueueFilters(statuses=(), departments=("69",)))
    assert len(f) == len(q[q["departments"].str.contains("69")])
    assert set(service_model.services_frame(engine, "a84@test.fr")["service_id"]) == mine
    summary = overview_model.region_summary(engine, "a84@test.fr")
    assert list(summary["region_code"]) == ["84"] and summary.at[0, "services"] == len(mine)
    assert summary.at[0, "median_vip_init_in_delay_rate"] > 0.5
    deps = overview_model.department_summary(engine, "a84@test.fr", "84")
    assert set(deps["department_code"]) == {"69", "38"}
    sid = sorted(mine - dropped)[0]
    series = service_model.indicator_series(engine, "a84@test.fr", sid, "vip_init_in_delay_rate")
    assert len(series) == 9 and series["peer_median"].notna().all()
    fd = funnel_model.funnel_data(engine, "a84@test.fr", "vip_init_in_delay_rate", highlight=sid)
    assert fd.method == "funnel" and fd.points["highlight"].sum() == 1
    outside = fd.points[~fd.points["in_scope"]]
    assert len(outside) == 8 and outside["service_id"].isna().all() and outside["name"].isna().all()
    heat = overview_model.peer_heatmap(engine, "a84@test.fr")
    assert set(heat["service_id"]) == mine - dropped        # the month shown is the last one
    rec = reception_model.service_reception(engine, "a84@test.fr", sid)
    assert rec["submissions"]["rows"].sum() > 0
    tables = reception_model.steward_tables(engine, "a84@test.fr")
    assert set(tables["reception"]["service_id"]) == mine
    v1 = readmodel.data_version(engine)
    a = triage.list_alerts(engine, "a84@test.fr")[0]
    triage.acknowledge(engine, "a84@test.fr", a.id, a.version)
    assert readmodel.data_version(engine) != v1
    other = next(s for s in svcs if s["region_code"] == "93")["service_id"]
    from monitor.vocabulary.errors import AccessDenied

    for call in (lambda: service_model.service_profile(engine, "a84@test.fr", other),
                 lambda: service_model.indicator_series(engine, "a84@test.fr", other, "vip_init_in_delay_rate"),
                 lambda: overview_model.department_summary(engine, "a84@test.fr", "93"),
                 lambda: reception_model.service_reception(engine, "a84@test.fr", other)):
        with pytest.raises(AccessDenied):
            call()


def test_uninitialised_database_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SPSTI_MONITOR_DB", f"sqlite:///{tmp_path / 'vide.db'}")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert at.error and "spsti-monitor init" in at.error[0].value


def test_triage_feedback_is_shown_to_managers_and_the_national_level(wdash):
    """Precision from dismissals and response delays, on the regional view, for the right roles."""
    from alerts import triage

    eng = db.get_engine(os.environ["SPSTI_MONITOR_DB"])
    triage.dismiss(eng, USERS["manager"][0], wdash.alerts["84"][0], None, "faux_positif", "vérifié")
    for role in ("manager", "national"):
        at = signed_in(role, "views/overview.py")
        assert not at.exception, at.exception
        labels = [e.label for e in at.expander]
        assert "Retour du triage : précision des détecteurs et délais de réponse" in labels, labels
        frames = [d.value for d in at.dataframe]
        precision = next(f for f in frames if "Précision" in f.columns)
        assert (precision["Faux positifs"] >= 1).any() and "0 %" in set(precision["Précision"])
        delays = next(f for f in frames if "Délai de prise en charge" in f.columns)
        assert set(delays["Région"]) <= ({"Auvergne-Rhône-Alpes (84)"} if role == "manager" else set(delays["Région"]))
    at = signed_in("agent", "views/overview.py")
    assert "Retour du triage : précision des détecteurs et délais de réponse" not in [e.label for e in at.expander]


def test_a_known_anomaly_is_silenced_shown_and_lifted_on_the_alert_page(wdash):
    from alerts.silences import list_silences

    alert_id = wdash.alerts["84"][1]
    at = signed_in("manager", "views/alert.py", id=alert_id)
    [s for s in at.selectbox if s.label == "Motif du classement"][0].set_value("deja_connu")
    [t for t in at.text_area if t.label == "Commentaire (obligatoire)"][0].input("Signalé par la CARSAT en mars.")
    _form_button(at, "Classer l'alerte").click().run()
    assert not at.error and not at.exception
    at = signed_in("manager", "views/alert.py", id=alert_id)
    shown = " ".join(i.value for i in at.info)
    assert "Sous silence jusqu'au" in shown and "déjà connu" in shown
    assert md_escape(USERS["manager"][0]) in shown           # the e-mail, shown as typed (no mailto link)
    _form_button(at, "Lever le silence").click().run()
    assert not at.exception
    eng = db.get_engine(wdash.url)
    assert list_silences(eng, USERS["manager"][0]) == []
    (lifted,) = list_silences(eng, USERS["manager"][0], active_only=False)
    assert lifted.ended_reason == "revoked"


# --------------------------------------------------------------------------- the yearly work (issue 14)

def _load_objectives(world: DashWorld, tmp_path: Path) -> str:
    from monitor.ingest.objectives import load_objectives

    sid = world.service("84")
    (tmp_path / "obj.csv").write_text(
        "service_id,indicator,year,target,label\n"
        f"{sid},vip_init_in_delay_rate,2025,0.99,Objectif VIP très ambitieux\n"
        f"{sid},vip_init_median_delay_days,2025,500,Délai tenu\n", encoding="utf-8")
    eng = db.get_engine(world.url)
    load_objectives(eng, tmp_path / "obj.csv")
    eng.dispose()
    return sid


def test_service_page_shows_objectives_and_produces_the_dossier(wdash, tmp_path):
    import subprocess

    sid = _load_objectives(wdash, tmp_path)
    at = signed_in("agent", "views/service.py", siret=sid)
    assert not at.exception
    objectives = next(d.value for d in at.dataframe if "Atteinte" in d.value.columns)
    status = dict(zip(objectives["Objectif"], objectives["Atteinte"]))
    assert status["Objectif VIP très ambitieux"].startswith("non atteint")
    assert status["Délai tenu"].startswith("atteint")
    assert not at.get("download_button") or all(b.proto.label != "Télécharger le dossier"
                                               for b in at.get("download_button"))
    next(b for b in at.button if b.label == "Préparer le dossier de dialogue (PDF)").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(b.proto.label == "Télécharger le dossier" for b in at.get("download_button"))
    data = at.session_state[f"dossier_pdf_{sid}"]
    assert data[:5] == b"%PDF-"
    (tmp_path / "d.pdf").write_bytes(data)
    text = subprocess.run(["pdftotext", str(tmp_path / "d.pdf"), "-"], capture_output=True, text=True,
                          timeout=60).stdout
    name = wdash.services.set_index("service_id").at[sid, "name"]
    assert "Dossier de dialogue de gestion" in text and name in text and "Objectif VIP très ambitieux" in text


def test_regional_view_shows_territorial_steering_in_scope(wdash, tmp_path):
    _load_objectives(wdash, tmp_path)
    at = signed_in("agent", "views/overview.py")
    assert "Pilotage territorial : objectifs CPOM atteints" in [s.value for s in at.subheader]
    steer = next(d.value for d in at.dataframe if "Région" in d.value.columns and len(d.value.columns) == 3)
    assert steer["Région"].tolist() == ["Auvergne-Rhône-Alpes (84)"]
    assert set(steer.columns) == {"Région", "Taux de VIP initiales dans le délai", "Délai médian avant VIP initiale"}
    assert steer["Taux de VIP initiales dans le délai"].iloc[0] == "0 % (0/1)"
    assert steer["Délai médian avant VIP initiale"].iloc[0] == "100 % (1/1)"
    at = signed_in("agent93", "views/overview.py")
    assert any("Aucun objectif CPOM" in c.value for c in at.caption)


def test_programme_page_for_managers_read_only_for_national(wdash):
    for role in ("agent", "agent93"):
        with pytest.raises(ValueError):                       # not declared for agents
            signed_in(role).switch_page("views/programme.py")
    at = signed_in("national", "views/programme.py")
    assert not at.exception and at.title[0].value == "Programme de contrôle"
    assert any("Lecture seule" in i.value for i in at.info)
    assert not any(b.label == "Enregistrer le programme" for b in at.button)
    at = signed_in("manager", "views/programme.py")
    assert not at.exception, [e.value for e in at.exception]
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {"Export CSV", "Export PDF", "Export partenaire (ARS)"}
    assert "Proposition calculée (non enregistrée)" in texts(at).replace("\\", "")
    next(b for b in at.button if b.label == "Enregistrer le programme").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Programme enregistré par manager84@dreets.test" in texts(at).replace("\\", "")
    from monitor.dialogue.programme import programme_history

    eng = db.get_engine(wdash.url)
    assert len(programme_history(eng, "dgt@travail.test", "84", timefmt.today().year + 1)) == 1
    eng.dispose()


# --------------------------------------------------------------------------- hostile addresses and text

@pytest.mark.parametrize("bad", ["99999999999999999999", "-1", "0", "abc", "1e5", "12;drop", "٣"])
def test_a_bad_alert_number_gets_a_french_message_not_a_traceback(dash, bad):
    at = signed_in("agent", "views/alert.py", id=bad)
    assert not at.exception, at.exception
    assert at.error and "n'est pas un numéro d'alerte valide" in at.error[0].value
    assert "Traceback" not in texts(at) and ".py" not in texts(at)


def test_a_long_or_odd_siret_in_the_address_is_refused_in_french(dash):
    for bad in ("9" * 5000, "<script>", "%00"):
        at = signed_in("agent", "views/service.py", siret=bad)
        assert not at.exception, at.exception
        assert at.error


HOSTILE = "www.evil.example :red[ALERTE] [lien](http://evil.example) <b>gras</b> **x** a@b.fr :material/home:"


def _markdown_sources(at: AppTest) -> list[str]:
    """The Markdown source of every element that renders Markdown (titles, texts, notices, captions)."""
    return [e.value for e in at.title] + [e.value for e in at.markdown] + [e.value for e in at.caption] \
        + [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning] \
        + [e.value for e in at.subheader] + [m.value for m in at.sidebar.markdown]


def test_service_names_and_comments_are_shown_as_typed_never_as_markdown(wdash):
    """A service name, a user name and a silence comment carrying GFM autolinks, Streamlit
    colour directives, links and HTML reach the page escaped: the source of every Markdown
    element holds them only in escaped form, and HTML elements only HTML-escaped."""
    eng = db.get_engine(wdash.url)
    alert_id = wdash.alerts["84"][1]
    with db.session_scope(eng) as s:
        sid = s.execute(sa.select(Alert.service_id).where(Alert.id == alert_id)).scalar_one()
        s.execute(sa.update(Service).where(Service.service_id == sid).values(name=HOSTILE))
        s.execute(sa.update(User).where(User.email == USERS["manager"][0]).values(name=HOSTILE))
    at = signed_in("manager", "views/alert.py", id=alert_id)
    [x for x in at.selectbox if x.label == "Motif du classement"][0].set_value("deja_connu")
    [t for t in at.text_area if t.label == "Commentaire (obligatoire)"][0].input(HOSTILE)
    _form_button(at, "Classer l'alerte").click().run()
    assert not at.exception
    for page, query in (("views/alert.py", {"id": alert_id}), ("views/service.py", {"siret": sid})):
        at = signed_in("manager", page, **query)
        assert not at.exception
        sources = "\n".join(_markdown_sources(at))
        assert md_escape(HOSTILE) in sources, page                     # shown, and escaped
        for raw in ("www.evil", ":red[", "](http", "<b>", "**x**", "a@b.fr", ":material/home:"):
            assert raw not in sources, (page, raw)
        html_bodies = "\n".join(str(h.proto.body) for h in at.get("html"))
        assert "<b>gras</b>" not in html_bodies, [b for b in html_bodies.split("\n") if "<b>gras" in b]


def test_an_unassigned_alert_shows_a_dash_not_none(dash):
    at = signed_in("agent", "views/queue.py")
    assigned = table(at)["Attribuée à"]
    assert len(assigned) and "—" in set(assigned)
    assert not any(v is None or str(v) in ("None", "nan", "<NA>") for v in assigned)


# --------------------------------------------------------------------------- the queue's cache

@pytest.fixture
def queue_computations(monkeypatch) -> list[str]:
    """The e-mails the queue was computed for (not served from the cache), cache emptied first."""
    from monitor.readmodels import queue as queue_model

    calls: list[str] = []
    real = queue_model.queue_frame

    def counting(engine, actor, *args, **kwargs):
        calls.append(actor)
        return real(engine, actor, *args, **kwargs)

    monkeypatch.setattr(queue_model, "queue_frame", counting)
    dash_state._queue.clear()
    return calls


def _actor(email: str):
    from monitor.readmodels.common import session_user

    return session_user(db.get_engine(os.environ["SPSTI_MONITOR_DB"]), email)


def test_the_queue_cache_never_serves_one_scope_to_another(dash, queue_computations):
    """The national user loads the queue first; the regional agent then gets only region 84's
    alerts, on the page and from the cache, and each scope is computed once."""
    national, agent = _actor(USERS["national"][0]), _actor(USERS["agent"][0])
    everything, _ = dash_state.queue(national)
    assert {"84", "93"} <= set(everything["region_code"])
    mine, options = dash_state.queue(agent)
    assert set(mine["region_code"]) == {"84"} and options["regions"] == ["84"]
    assert set(mine["service_id"]) <= set(dash.sirets("84")) and len(mine) < len(everything)
    dash_state.queue(national)
    dash_state.queue(agent)
    assert queue_computations == [USERS["national"][0], USERS["agent"][0]]    # then from the cache
    signed_in("national", "views/queue.py")
    at = signed_in("agent", "views/queue.py")
    assert not at.exception
    shown = page_bytes(at).decode("utf-8", "replace")
    foreign = [n for n in dash.names("84", inside=False) if not any(n in o for o in dash.names("84"))]
    assert not [n for n in foreign if n in shown]
    assert not [s for s in dash.sirets("84", inside=False) if s in shown]


def test_a_change_shows_on_the_next_load_and_a_sign_in_changes_nothing(wdash, queue_computations):
    from monitor.accounts.users import authenticate

    eng = db.get_engine(wdash.url)
    agent = _actor(USERS["agent"][0])
    alert_id = wdash.alerts["84"][0]
    before, _ = dash_state.queue(agent)
    assert before.set_index("id").at[alert_id, "status"] == "open"
    # signing in (any user, any outcome) leaves the cached queue valid
    assert authenticate(eng, USERS["manager"][0], PASSWORD)[0] is not None
    assert authenticate(eng, USERS["manager"][0], "pas le bon mot de passe")[0] is None
    dash_state.queue(agent)
    assert len(queue_computations) == 1
    # an action on an alert shows at once
    a = triage.get_alert(eng, USERS["agent"][0], alert_id)
    triage.acknowledge(eng, USERS["agent"][0], alert_id, a.version)
    after, _ = dash_state.queue(agent)
    assert after.set_index("id").at[alert_id, "status"] == "acknowledged"
    # so does an assignment, with the assignee's name
    with db.session_scope(eng) as s:
        me = s.scalar(sa.select(User.id).where(User.email == USERS["agent"][0]))
    triage.assign(eng, USERS["agent"][0], alert_id, a.version + 1, me)
    assert dash_state.queue(agent)[0].set_index("id").at[alert_id, "assignee_name"] == "Alice Agent"
    # a service moved to another region by the register leaves the agent's queue at once
    sid = after.set_index("id").at[alert_id, "service_id"]
    with eng.begin() as conn:
        conn.execute(sa.update(Service).where(Service.service_id == sid)
                     .values(region_code="93", updated_at=datetime.now(timezone.utc)))
    moved, _ = dash_state.queue(agent)
    assert sid not in set(moved["service_id"]) and alert_id not in set(moved["id"])
    assert sid in set(dash_state.queue(_actor(USERS["agent93"][0]))[0]["service_id"])


def test_the_queue_page_sends_one_page_of_rows(dash, monkeypatch):
    """The table holds one page of the filtered queue (counts cover all of it); the page
    chooser shows the others."""
    from monitor.readmodels import queue as queue_model

    monkeypatch.setattr(queue_model, "PAGE_ROWS", 2)
    at = signed_in("national", "views/queue.py")
    total = int(at.metric[0].value.replace("\u202f", ""))
    assert total > 2
    first = table(at)
    assert len(first) == 2
    assert any("Lignes 1 à 2 sur" in c.value for c in at.caption)
    at.selectbox(key="q_page").set_value(2).run()
    assert not at.exception
    second = table(at)
    assert len(second) == min(2, total - 2) and not set(second["N°"]) & set(first["N°"])
    assert int(at.metric[0].value.replace("\u202f", "")) == total
    at.selectbox(key="q_sort").set_value("numero").run()              # another order: back to page 1
    assert not at.exception and at.selectbox(key="q_page").value == 1
    assert any("Lignes 1 à 2 sur" in c.value for c in at.caption)


def test_signing_in_prepares_the_queue_of_that_scope_only(dash, queue_computations):
    """The sign-in route fills the queue's cache for the account it signs in (while the
    browser loads the app); the page run then finds it there."""
    from dashboard import web

    web.prepare_queue(USERS["agent"][0])
    assert queue_computations == [USERS["agent"][0]]
    mine, _ = dash_state.queue(_actor(USERS["agent"][0]))
    assert set(mine["region_code"]) == {"84"}
    assert queue_computations == [USERS["agent"][0]]                  # from the cache
    web.prepare_queue("inconnu@dreets.test")                           # no account: nothing, no error
    assert queue_computations == [USERS["agent"][0]]


def test_the_sign_in_page_preloads_the_first_screen():
    """The sign-in page preloads Streamlit's entry module and the elements the queue draws,
    files that exist in the installed Streamlit."""
    from streamlit import file_util

    from dashboard import web

    assets = web.first_screen_assets()
    assert any(a.startswith("static/js/index.") for a in assets)
    assert any(a.startswith("static/js/DataFrame.") for a in assets)
    root = Path(file_util.get_static_dir())
    assert all((root / a).is_file() for a in assets)
    page = web.sign_in_page("/").body.decode()
    assert page.count('rel="preload"') == len(assets)
