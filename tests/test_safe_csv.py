"""No exported CSV cell can become a formula, even once a French spreadsheet splits it on `;`."""
from __future__ import annotations

import csv
import io
import re
import sys
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from world import make_world  # noqa: E402

from alerts import followups  # noqa: E402
from alerts.export import export_alerts  # noqa: E402
from alerts.safe_csv import safe_cell  # noqa: E402
from monitor.store.models import Service  # noqa: E402

HOSTILE = ["x;=1+2;y", "a,@SUM(A1)", "note\n=HYPERLINK(\"http://evil\")", "b|+cmd|' /C calc'!A0",
           "c\t-2+3", "ok ; -A1"]
# what a spreadsheet evaluates: a part (after any separator it may split on) that starts,
# after blanks, with = @ or a sign that is not a plain number
_DANGER = re.compile(r"^[ \u00a0]*(?:[=@]|[+\-](?![0-9.]+[ \u00a0]*%?[ \u00a0]*$))")


def _formula_parts(text: str) -> list[str]:
    out = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            out += [p for p in re.split(r"[;,\t\r\n|]", cell) if _DANGER.match(p)]
    return out


def test_formulas_after_separators_are_neutralised():
    for value in HOSTILE:
        assert _formula_parts(f'"{safe_cell(value)}"'.replace("\n", " ")) == [], value
    assert safe_cell("x;=1+2;y") == "x;'=1+2;y"
    # plain numbers and prose stay as they were
    for value in ["-3", "61 % ; 84 %", "Hors limite ; -12 %", "0,84", "Service de Lyon", 4.5]:
        assert safe_cell(value) == value


def test_alert_and_follow_up_exports_split_on_semicolons_hold_no_formula(engine, tmp_path):
    w = make_world(engine, tmp_path)
    with engine.begin() as c:
        c.execute(sa.update(Service).where(Service.service_id == w.svc(0)).values(name=HOSTILE[0]))
    alerts_csv = export_alerts(engine)
    assert "x;'=1+2;y" in alerts_csv
    assert _formula_parts(alerts_csv) == []

    agent = w.users["agent84"]
    for note in HOSTILE:
        followups.create_follow_up(engine, agent, [w.alerts["s0"]], "controle_sur_pieces", agent.id,
                                   date.today() + timedelta(days=10), note)
    follow_csv = followups.export_follow_ups_csv(engine, agent)
    assert "c\t'-2+3" in follow_csv and "x;'=1+2;y" in follow_csv
    assert _formula_parts(follow_csv) == []
