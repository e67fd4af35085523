"""Every registered detector honours the contract: schema, configuration cited, no look-ahead."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.base import CATEGORIES, FINDING_COLUMNS, SEVERITIES, Detector
from detectors.panel import Panel
from detectors.registry import ALL, default_detectors
from monitor.vocabulary.periods import parse_periods


@pytest.fixture(scope="module")
def panel() -> Panel:
    from fixtures.generate import generate

    p = generate(seed=99, n_services=60, n_months=30)
    obs = p.observations.copy()
    for c in ("service_id", "indicator", "period"):
        obs[c] = obs[c].astype(object)
    per = parse_periods(obs["period"])
    obs = obs.join(per[["period_kind", "month_index"]])
    obs["value"] = pd.to_numeric(obs["value"], errors="coerce")
    for c in ("numerator", "denominator"):
        obs[c] = pd.to_numeric(obs[c], errors="coerce")
    # what ingest would accept: parsable, proportions within [0, 1], counts consistent, no duplicates
    prop = obs["indicator"].isin(["vip_init_in_delay_rate", "sir_overdue_rate", "reprise_within_8d_rate"])
    bad = prop & ((obs["value"] > 1) | (obs["numerator"] > obs["denominator"]))
    obs = obs[obs["month_index"].notna() & ~bad].drop_duplicates(["service_id", "indicator", "period"], keep=False)
    services = p.services.set_index("service_id", drop=False).rename_axis(None)
    return Panel(obs.reset_index(drop=True), services)


def _copy(panel: Panel, upto: int | None = None) -> Panel:
    p = panel.upto(upto) if upto is not None else Panel(panel.observations.copy(), panel.services, panel.quarantine.copy())
    return p


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_detector_returns_contract_findings(cls: type[Detector], panel: Panel):
    det = cls()
    assert det.name and det.version and det.category in CATEGORIES
    f = det.detect(_copy(panel), panel.months)
    assert list(f.columns) == FINDING_COLUMNS
    assert f["sustain"].map(lambda v: isinstance(v, (bool, np.bool_))).all()
    sustain = f["sustain"].astype(bool)
    held = f[sustain]               # hysteresis rows: they open nothing and explain nothing
    assert (held["score"] == 0).all() and held["explanation"].isna().all()
    f = f[~sustain]
    if len(f):
        assert set(f["category"]) <= set(CATEGORIES)
        assert set(f["severity"]) <= set(SEVERITIES)
        assert f["explanation"].map(lambda s: isinstance(s, str) and len(s) > 20).all()
        assert (f["config"].map(lambda c: c == det.config.to_dict())).all(), "each finding cites its configuration"
        assert f["month_index"].isin(panel.months).all()
        assert f["score"].notna().all()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_detector_has_no_look_ahead(cls: type[Detector], panel: Panel):
    """Findings up to month P are the same whether later months exist or not."""
    months = panel.months
    cut = int(months[len(months) * 2 // 3])
    full = cls().detect(_copy(panel), months)
    part = cls().detect(_copy(panel, cut), months[months <= cut])
    key = ["service_id", "indicator", "month_index", "category"]
    a = full[full["month_index"] <= cut][key + ["score"]].sort_values(key).reset_index(drop=True)
    b = part[key + ["score"]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, atol=1e-9)


def test_configuration_is_validated_and_overridable():
    from detectors.multivariate import MultivariateOutlier
    from detectors.temporal import TemporalDrift

    with pytest.raises(ValueError, match="model must be one of"):
        MultivariateOutlier(model="svm")
    det = TemporalDrift(k=0.75)
    assert det.config.k == 0.75 and det.config.h > 0
    assert MultivariateOutlier(model="copod").name == "multivariate_copod"


def test_registry_builds_every_family():
    families = {d.family for d in default_detectors()}
    assert families == {"data_quality", "rules", "peer", "temporal", "multivariate"}


@pytest.mark.parametrize("model", ["copod", "iforest"])
def test_selectable_multivariate_models_run(model, panel):
    from detectors.multivariate import MultivariateOutlier

    f = MultivariateOutlier(model=model).detect(_copy(panel), panel.months)
    assert list(f.columns) == FINDING_COLUMNS


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_exclusions_follow_the_contract(cls: type[Detector], panel: Panel):
    cells = cls().exclusions(_copy(panel))
    assert list(cells.columns)[:3] == ["service_id", "indicator", "month_index"] or set(
        ["service_id", "indicator", "month_index"]) <= set(cells.columns)
    assert cells["indicator"].isin(list(panel.observations["indicator"].unique()) + ["*"]).all()


def test_excluded_cells_never_reach_a_statistical_detector(panel: Panel):
    """A size jump declared by no merger: its service-month is faulty data, not a finding of the
    peer, temporal or multivariate detectors (through the contract, with no special case)."""
    from detectors.base import exclude_faulty_cells
    from detectors.quality import SizeJumps

    p = _copy(panel)
    obs = p.observations
    workers = obs[obs["indicator"] == "workers_followed"]
    month = int(workers["month_index"].max())
    sid = workers.loc[workers["month_index"] == month, "service_id"].iloc[0]
    size = (obs["service_id"] == sid) & (obs["month_index"] == month) & (obs["indicator"] == "workers_followed")
    assert size.sum() == 1
    obs.loc[size, "value"] *= 3            # a keying error: three times the workers
    cells = SizeJumps().exclusions(p)
    assert ((cells["service_id"] == sid) & (cells["month_index"] == month) & (cells["indicator"] == "*")).any()
    exclude_faulty_cells(p, default_detectors())
    for code in ("vip_init_in_delay_rate", "pdp_cases_per_1000", "physician_fte"):
        seen = p.indicator(code)
        assert not ((seen["service_id"] == sid) & (seen["month_index"] == month)).any()
        raw = p.indicator(code, statistical=False)
        assert ((raw["service_id"] == sid) & (raw["month_index"] == month)).any()   # kept, not dropped
    stats = [d for d in default_detectors() if d.family in ("peer", "temporal", "multivariate")]
    for det in stats:
        f = det.detect(p, np.array([month]))
        assert not ((f["service_id"] == sid) & (f["month_index"] == month)).any(), det.name
