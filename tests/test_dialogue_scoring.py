"""The control programme's score: pure arithmetic that follows its stated weights."""
from __future__ import annotations

import pandas as pd

from monitor.dialogue.scoring import INPUT_COLUMNS, OUTPUT_COLUMNS, WEIGHT_LABELS, Weights, score_services


def _row(sid, name, **kw):
    base = dict(service_id=sid, service_name=name, alerts_high=0, alerts_medium=0, alerts_low=0, persistent=0,
                rule_breaches=0, data_quality=0, objectives_missed=0, agrement_ending=False,
                certification_ending=False, years_since_control=1.0)
    base.update(kw)
    return base


def _inputs():
    return pd.DataFrame([
        _row("A", "Alpha", alerts_high=2, persistent=1),                 # 3*2 + 2 + 1 (1 year) = 9
        _row("B", "Bêta", objectives_missed=3, data_quality=1),          # 2*3 + 1 + 1 = 8
        _row("C", "Gamma", agrement_ending=True, years_since_control=None),  # 4 + 5 (never) = 9
        _row("D", "Delta"),                                              # 1
    ], columns=INPUT_COLUMNS)


def test_score_is_the_weighted_sum_with_reasons_and_numbers():
    out = score_services(_inputs(), Weights(), capacity=2)
    assert list(out.columns) == OUTPUT_COLUMNS
    scores = dict(zip(out["service_id"], out["score"]))
    assert scores == {"A": 9.0, "B": 8.0, "C": 9.0, "D": 1.0}
    # tie between A and C: the one never controlled comes first
    assert out["service_id"].tolist() == ["C", "A", "B", "D"]
    assert out["selected"].tolist() == [True, True, False, False]
    assert out["rank"].tolist() == [1, 2, 3, 4]
    reasons = dict(zip(out["service_id"], out["reasons"]))
    assert "2 alertes ouvertes de gravité élevée (6 pts)" in reasons["A"]
    assert "1 alerte ouverte depuis 6 mois ou plus (2 pts)" in reasons["A"]
    assert "3 objectifs CPOM non atteints (6 pts)" in reasons["B"]
    assert "aucun contrôle enregistré (5 pts)" in reasons["C"]
    assert "agrément à renouveler" in reasons["C"]


def test_changing_a_weight_changes_the_order_as_predicted():
    # objectives weigh 4 instead of 2: B goes from 8 to 14 and comes first
    heavier = Weights(objective_missed=4.0)
    out = score_services(_inputs(), heavier, capacity=1)
    assert out["service_id"].tolist()[:3] == ["B", "C", "A"]
    assert out.loc[out["service_id"] == "B", "score"].item() == 14.0
    assert out["selected"].tolist() == [True, False, False, False]
    # high alerts weigh nothing: A falls from 9 to 3 points, behind B (8), still ahead of D (1)
    out = score_services(_inputs(), Weights(alert_high=0.0), capacity=0)
    assert out["service_id"].tolist() == ["C", "B", "A", "D"]
    assert not out["selected"].any()


def test_reasons_name_the_reference_year():
    inp = _inputs().assign(reference_year=2025)
    out = score_services(inp, Weights()).set_index("service_id")
    assert "3 objectifs CPOM non atteints en 2025 (6 pts)" in out.loc["B", "reasons"]
    assert "1 alerte de qualité des données en 2025 (1 pt)" in out.loc["B", "reasons"]


def test_changing_an_input_changes_the_order():
    inp = _inputs()
    inp.loc[inp["service_id"] == "D", "rule_breaches"] = 3      # 1 + 9 = 10
    out = score_services(inp, Weights(), capacity=1)
    assert out["service_id"].iloc[0] == "D"
    assert "3 manquements à une règle légale ou d'agrément (9 pts)" in out["reasons"].iloc[0]


def test_years_since_control_are_capped_and_a_clean_service_says_so():
    inp = pd.DataFrame([_row("E", "Epsilon", years_since_control=12.0),
                        _row("F", "Phi", years_since_control=0.2)], columns=INPUT_COLUMNS)
    out = score_services(inp, Weights())
    assert dict(zip(out["service_id"], out["score"])) == {"E": 5.0, "F": 0.0}
    assert out.loc[out["service_id"] == "F", "reasons"].item() == "dernier contrôle il y a moins d'un an (0 pt)"
    assert "dernier contrôle il y a 12 ans (5 pts)" in out.loc[out["service_id"] == "E", "reasons"].item()
    nothing = pd.DataFrame([_row("G", "Gimel", years_since_control=None)], columns=INPUT_COLUMNS)
    assert score_services(nothing, Weights(control_years_cap=0)).loc[0, "reasons"] == "aucun signal"


def test_every_weight_has_a_french_label():
    assert set(WEIGHT_LABELS) == set(Weights().as_dict())
    assert Weights.from_dict({"alert_high": 7, "unknown": 1}).alert_high == 7.0
