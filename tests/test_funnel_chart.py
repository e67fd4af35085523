"""One funnel parameterisation: the chart an agent sees draws the limits that raised the alert.

The funnel chart (``funnel_model.funnel_data``) passes through every service's own size; there,
its 99.8 % limits must be the peer detector's ``lower`` / ``upper`` for that month, for
proportions (arcsine) and rates (square root), whatever over-dispersion the month had.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_dashboard_apptest import USERS, build_dashboard_db  # noqa: E402

from detectors.peer import FUNNEL_SPECS, PeerConfig, funnel_curves, peer_scores  # noqa: E402
from monitor.readmodels import common as readmodel  # noqa: E402
from monitor.readmodels import funnel as funnel_model  # noqa: E402
from monitor.store import db  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_dashboard_db(tmp_path_factory.mktemp("funnel"), n_services=40, n_months=18)
    engine = db.get_engine(f"sqlite:///{w.path}")
    yield w, engine, readmodel.load_analysis_panel(engine)
    engine.dispose()


@pytest.mark.parametrize("indicator", ["vip_init_in_delay_rate", "sir_overdue_rate", "pdp_cases_per_1000",
                                       "complaints_per_10k"])
def test_chart_limits_are_the_detectors_limits(world, indicator):
    w, engine, panel = world
    national = USERS["national"][0]
    scores = peer_scores(panel, indicator, PeerConfig())
    months = sorted(scores["month_index"].unique())
    for month in (months[len(months) // 2], months[-1]):
        data = funnel_model.funnel_data(engine, national, indicator, month_index=int(month), panel=panel)
        assert data.method == "funnel" and data.month_index == month
        detector = scores[scores["month_index"] == month].set_index("service_id")
        curve = data.curves.set_index("x")
        for _, p in data.points.iterrows():
            limits = curve.loc[p["x"]]
            row = detector.loc[p["service_id"]]
            assert limits["lower_998"] == pytest.approx(row["lower"], rel=1e-9, abs=1e-12)
            assert limits["upper_998"] == pytest.approx(row["upper"], rel=1e-9, abs=1e-12)
            # the point is drawn outside exactly when the detector had it outside
            assert bool(p["outside"]) == bool(row["value"] < row["lower"] or row["value"] > row["upper"])


def test_funnel_curves_follow_the_fitted_adjustment(world):
    """A month fitted without over-dispersion is redrawn without it (no re-derivation)."""
    _, _, panel = world
    scores = peer_scores(panel, "vip_init_in_delay_rate", PeerConfig())
    month = scores[scores["month_index"] == scores["month_index"].max()].copy()
    xs = month["denominator"].to_numpy(dtype=float)
    applied = funnel_curves("vip_init_in_delay_rate", month, xs)
    assert np.allclose(applied["lower_998"], month["lower"]) and np.allclose(applied["upper_998"], month["upper"])
    changed = month.assign(adjustment="none" if month["adjustment"].iloc[0] != "none" else "additive",
                           tau2=month["tau2"].iloc[0] or 0.01)
    assert not np.allclose(funnel_curves("vip_init_in_delay_rate", changed, xs)["lower_998"], month["lower"])
    assert set(FUNNEL_SPECS) == {"proportion", "rate"}
