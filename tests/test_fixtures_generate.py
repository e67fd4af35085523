"""Tests of the synthetic panel generator (fixtures/generate.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures._common import ALL_INDICATORS, PROPORTIONS, RATES_PER
from fixtures._geo import REGIONS
from fixtures._io import file_format, indicator_file_name
from fixtures.generate import (
    DEFAULT_OUT, LABEL_COLUMNS, OBS_COLUMNS, SERVICE_COLUMNS, Panel, generate, main,
    write_panel,
)

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
REGISTER_RULE_FIELDS = {"agrement_end", "certification_level"}


@pytest.fixture(scope="module")
def panel() -> Panel:
    return generate()


def _luhn(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        v = int(ch) * (2 if i % 2 else 1)
        total += v - 9 if v > 9 else v
    return total % 10 == 0


def _fault_cells(labels: pd.DataFrame, subtypes=None) -> set[tuple[str, str, str]]:
    f = labels[labels["kind"] == "fault"]
    if subtypes is not None:
        f = f[f["subtype"].isin(subtypes)]
    return set(zip(f["service_id"], f["indicator"], f["start_period"]))


def _cell_keys(obs: pd.DataFrame) -> pd.Series:
    return obs["service_id"] + "|" + obs["indicator"] + "|" + obs["period"]


# ------------------------------------------------------------------ determinism
def test_same_seed_same_panel():
    a = generate(seed=11, n_services=40, n_months=30, end="2025-12")
    b = generate(seed=11, n_services=40, n_months=30, end="2025-12")
    pd.testing.assert_frame_equal(a.services, b.services)
    pd.testing.assert_frame_equal(a.observations, b.observations)
    pd.testing.assert_frame_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.mergers, b.mergers)


def test_different_seed_different_panel():
    a = generate(seed=11, n_services=40, n_months=30)
    b = generate(seed=12, n_services=40, n_months=30)
    assert not a.services["service_id"].equals(b.services["service_id"])
    assert len(a.observations) != len(b.observations) or not np.allclose(
        a.observations["value"].to_numpy(), b.observations["value"].to_numpy(),
        equal_nan=True)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_services"):
        generate(n_services=10)
    with pytest.raises(ValueError, match="YYYY-MM"):
        generate(end="September 2026")
    with pytest.raises(ValueError, match="n_months"):
        generate(n_months=3)


# ------------------------------------------------------------------------ shapes
def test_frames_have_contract_columns(panel):
    assert list(panel.observations.columns) == OBS_COLUMNS
    assert list(panel.labels.columns) == LABEL_COLUMNS
    assert list(panel.services.columns) == SERVICE_COLUMNS
    assert len(panel.services) == 176
    months = panel.observations["period"].str.fullmatch(r"\d{4}-\d{2}")
    assert panel.observations.loc[months, "period"].nunique() == 60
    assert panel.observations.loc[months, "period"].max() == "2026-09"
    assert panel.observations.loc[months, "period"].min() == "2021-10"
    assert set(panel.observations["indicator"]) == set(ALL_INDICATORS)
    q = panel.observations[panel.observations["indicator"] == "sir_overdue_rate"]
    assert q["period"].str.fullmatch(r"\d{4}-Q[1-4]").all()
    y = panel.observations[panel.observations["indicator"] == "cotisation_vs_cmn_ratio"]
    assert sorted(y["period"].unique()) == [str(x) for x in range(2021, 2027)]
    cmn = y[y["period"] == "2025"]["denominator"]
    assert (cmn == 115.50).all()


def test_siret_luhn_valid_and_unique(panel):
    ids = panel.services["service_id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"\d{14}").all()
    assert all(_luhn(s) for s in ids)
    assert set(panel.observations["service_id"]) <= set(ids)


def test_regions_and_departments(panel):
    s = panel.services
    assert set(s["region_code"]) == set(REGIONS)
    assert s["region_code"].nunique() == 18
    counts = s["region_code"].value_counts()
    assert (counts >= 1).all()
    assert counts.to_dict() == {c: v[1] for c, v in REGIONS.items()}
    for code, depts in zip(s["region_code"], s["departments"]):
        assert set(depts.split(";")) <= set(REGIONS[code][3]), (code, depts)
    small = generate(seed=3, n_services=18, n_months=12)
    assert sorted(small.services["region_code"]) == sorted(REGIONS)


def test_register_values_plausible(panel):
    s = panel.services
    w = s["workers_followed"]
    assert 40_000 <= w.median() <= 85_000
    assert 80_000 <= w.mean() <= 125_000
    assert (w > 500_000).sum() >= 1 and (w < 15_000).sum() >= 5
    per_company = w / s["companies"]
    assert 10 <= per_company.median() <= 14 and per_company.between(6, 25).all()
    assert s["certification_level"].between(0, 3).all()
    assert s.loc[s["certification_level"] == 0, "certification_end"].isna().all()
    ceil = s["max_workers_per_physician_fte"]
    assert 0.5 <= ceil.notna().mean() <= 0.7
    assert ceil.dropna().between(5000, 6500).all()
    fee = s["cotisation_per_worker"]
    assert 105 <= fee.median() <= 126
    assert 1 <= (~fee.between(92.40, 138.60)).sum() <= 6
    start = pd.to_datetime(s["agrement_start"])
    end = pd.to_datetime(s["agrement_end"])
    years = ((end - start).dt.days / 365.25).round()
    assert set(years) <= {2, 5} and (years == 2).sum() >= 2
    assert (end < pd.Timestamp("2026-09-30")).sum() >= 1


# ------------------------------------------------------------------- identities
def test_proportion_and_rate_identities_hold_except_labelled_faults(panel):
    obs = panel.observations
    faulty = {f"{s}|{i}|{p}" for s, i, p in _fault_cells(panel.labels)}
    clean = obs[~_cell_keys(obs).isin(faulty)]
    prop = clean[clean["indicator"].isin(PROPORTIONS)]
    assert (prop["numerator"] <= prop["denominator"]).all()
    assert (prop["numerator"] == prop["numerator"].round()).all()
    assert (prop["denominator"] == prop["denominator"].round()).all()
    assert np.allclose(prop["value"], (prop["numerator"] / prop["denominator"]).round(4))
    for ind, per in RATES_PER.items():
        r = clean[clean["indicator"] == ind]
        assert (r["numerator"] >= 0).all()
        assert np.allclose(r["value"], (per * r["numerator"] / r["denominator"]).round(4))
    w = clean[clean["indicator"] == "workers_per_physician_fte"]
    assert np.allclose(w["value"], (w["numerator"] / w["denominator"]).round(1))
    for ind in ("workers_followed", "vip_init_median_delay_days", "physician_fte", "nurse_fte"):
        r = obs[obs["indicator"] == ind]
        assert r[["numerator", "denominator"]].isna().all().all()
        assert (r["value"] >= 0).all()
    fee = obs[obs["indicator"] == "cotisation_vs_cmn_ratio"]
    assert np.allclose(fee["value"], (fee["numerator"] / fee["denominator"]).round(4))


# ------------------------------------------------------------------------ labels
def test_labels_reference_existing_services_and_indicators(panel):
    lab = panel.labels
    assert lab["service_id"].isin(panel.services["service_id"]).all()
    allowed = set(ALL_INDICATORS) | {"*"} | REGISTER_RULE_FIELDS
    assert set(lab["indicator"]) <= allowed
    assert set(lab["kind"]) == {"drift", "structural", "fault", "rule"}
    for col in ("start_period", "end_period"):
        assert lab[col].str.fullmatch(r"\d{4}-\d{2}").all()
        assert lab[col].between("2021-10", "2026-09").all()
    assert (lab["start_period"] <= lab["end_period"]).all()
    assert not lab.duplicated(["event_id", "indicator"]).any()
    assert lab["description"].str.len().gt(20).all()
    # every (service, indicator) label of a statistical kind has data behind it
    obs_pairs = set(zip(panel.observations["service_id"], panel.observations["indicator"]))
    stat = lab[lab["kind"].isin(["drift", "structural"])]
    assert set(zip(stat["service_id"], stat["indicator"])) <= obs_pairs
    st = lab[lab["kind"] == "structural"]
    assert (st["start_period"] == "2021-10").all() and (st["end_period"] == "2026-09").all()


def test_default_event_counts(panel):
    ev = panel.labels.drop_duplicates("event_id")
    n = ev.groupby("kind").size()
    assert 12 <= n["drift"] <= 16
    assert 4 <= n["structural"] <= 6
    sub = ev.groupby("subtype").size()
    for s in ("physician_departure", "slow_degradation", "pdp_collapse", "complaints_surge"):
        assert sub[s] >= 2
    assert sub["percent_instead_of_fraction"] == 6
    assert sub["conflicting_duplicate"] == 4
    assert sub["missing_report"] == 6
    assert sub["identity_break"] == 3
    assert sub["size_jump"] == 2
    for s in ("fee_out_of_band", "agrement_expired", "agrement_expiring", "no_certification",
              "median_delay_above_90", "above_agrement_ceiling"):
        assert sub[s] >= 1, s
    assert 2 <= len(panel.mergers) <= 4
    phys = panel.labels[panel.labels["subtype"] == "physician_departure"]
    for _, g in phys.groupby("event_id"):
        start = g.set_index("indicator")["start_period"]
        assert start["workers_per_physician_fte"] == start["physician_fte"]
        for ind in ("reprise_within_8d_rate", "vip_init_in_delay_rate"):
            lag = (pd.Period(start[ind], "M") - pd.Period(start["physician_fte"], "M")).n
            assert 2 <= lag <= 4


def test_drift_events_leave_a_baseline(panel):
    drift = panel.labels[panel.labels["kind"] == "drift"]
    assert (drift["start_period"] >= "2023-04").all()   # none in the first 18 months
    sizes = panel.services.set_index("service_id")["workers_followed"]
    ev = drift.drop_duplicates("event_id")
    big = (sizes[ev["service_id"]] >= 40_000).mean()
    assert 0.6 <= big < 1.0                            # mostly medium/large, a few small


def test_drift_events_move_the_data(panel):
    obs = panel.observations
    lab = panel.labels
    for _, r in lab[lab["kind"] == "drift"].iterrows():
        if r["indicator"] == "sir_overdue_rate":
            continue
        x = obs[(obs["service_id"] == r["service_id"]) & (obs["indicator"] == r["indicator"])]
        x = x[~_cell_keys(x).isin({f"{s}|{i}|{p}" for s, i, p in _fault_cells(lab)})]
        x = x.set_index("period")["value"]
        before = x[x.index < r["start_period"]].tail(12).mean()
        during = x[(x.index > r["start_period"]) & (x.index <= r["end_period"])].mean()
        rel = during / before
        if r["indicator"] in ("vip_init_in_delay_rate", "reprise_within_8d_rate",
                              "physician_fte", "pdp_cases_per_1000", "prereprise_per_1000"):
            assert rel < 0.92, (r["event_id"], r["indicator"], rel)
        else:
            assert rel > 1.10, (r["event_id"], r["indicator"], rel)


def test_structural_outliers_sit_outside_their_peers(panel):
    obs = panel.observations
    for _, r in panel.labels[panel.labels["kind"] == "structural"].iterrows():
        x = obs[obs["indicator"] == r["indicator"]]
        x = x[x["value"] <= (1 if r["indicator"] in PROPORTIONS else np.inf)]
        level = x.groupby("service_id")["value"].median()
        peers = level.drop(r["service_id"])
        lo, hi = peers.quantile([0.01, 0.99])
        assert not lo <= level[r["service_id"]] <= hi, r["indicator"]


# ------------------------------------------------------------------------ faults
def test_fault_rows_present_in_observations(panel):
    obs = panel.observations
    lab = panel.labels[panel.labels["kind"] == "fault"]
    for _, r in lab.iterrows():
        cell = obs[(obs["service_id"] == r["service_id"]) & (obs["period"] == r["start_period"])
                   & (obs["indicator"] == r["indicator"])]
        st = r["subtype"]
        if st == "percent_instead_of_fraction":
            assert len(cell) == 1 and cell["value"].iloc[0] > 1
        elif st == "conflicting_duplicate":
            assert len(cell) == 2 and cell["value"].nunique() == 2
        elif st == "identity_break":
            assert len(cell) == 1
            assert cell["numerator"].iloc[0] > cell["denominator"].iloc[0]
        elif st == "size_jump":
            series = obs[(obs["service_id"] == r["service_id"])
                         & (obs["indicator"] == "workers_followed")].set_index("period")["value"]
            i = series.index.get_loc(r["start_period"])
            neighbours = series.iloc[[j for j in (i - 1, i + 1) if 0 <= j < len(series)]]
            assert series.iloc[i] > 1.8 * neighbours.max()
        elif st == "missing_report":
            months = pd.period_range(r["start_period"], r["end_period"], freq="M").strftime("%Y-%m")
            assert r["indicator"] == "*"
            rows = obs[(obs["service_id"] == r["service_id"]) & obs["period"].isin(months)]
            assert rows.empty
            before = obs[(obs["service_id"] == r["service_id"])
                         & (obs["period"] < r["start_period"])]
            assert not before.empty
        else:  # pragma: no cover
            pytest.fail(f"unknown fault subtype {st}")
    # no duplicate cells other than the labelled ones
    dup = obs[obs.duplicated(["service_id", "period", "indicator"], keep=False)]
    labelled = _fault_cells(lab, ["conflicting_duplicate"])
    assert set(zip(dup["service_id"], dup["indicator"], dup["period"])) == labelled


# ------------------------------------------------------------------------ realism
def test_august_activity_lower_than_june(panel):
    obs = panel.observations
    vip = obs[obs["indicator"] == "vip_init_in_delay_rate"]
    month = vip["period"].str.slice(5, 7)
    aug = vip.loc[month == "08", "denominator"].sum()
    jun = vip.loc[month == "06", "denominator"].sum()
    assert 0.5 <= aug / jun <= 0.7
    for ind in ("prereprise_per_1000", "amt_per_1000", "pdp_cases_per_1000"):
        x = obs[obs["indicator"] == ind]
        m = x["period"].str.slice(5, 7)
        assert x.loc[m == "08", "value"].mean() < 0.75 * x.loc[m == "06", "value"].mean()
    dec = vip.loc[month == "12", "denominator"].sum()
    assert 0.7 <= dec / jun <= 0.9


def test_national_physician_trend_negative(panel):
    obs = panel.observations
    fte = obs[obs["indicator"] == "physician_fte"].groupby("period")["value"].sum()
    t = np.arange(len(fte)) / 12.0
    slope = np.polyfit(t, np.log(fte.to_numpy()), 1)[0]
    assert -0.035 < slope < -0.005
    wpp = obs[obs["indicator"] == "workers_per_physician_fte"]
    nat = wpp.groupby("period")[["numerator", "denominator"]].sum()
    ratio = nat["numerator"] / nat["denominator"]
    assert 4000 < ratio.iloc[0] < 5000 and ratio.iloc[-1] > ratio.iloc[0] * 1.08


def test_mergers_move_counts_not_ratios(panel):
    obs = panel.observations
    s = panel.services.set_index("service_id")
    assert len(panel.mergers) >= 2
    lab_services = set(panel.labels.loc[panel.labels["kind"] != "rule", "service_id"])

    def window(sid, ind, per, before):
        x = obs[(obs["service_id"] == sid) & (obs["indicator"] == ind)].set_index("period")
        return x[x.index < per].tail(12) if before else x[x.index >= per].head(12)

    def relative(sid, ind, per, before):
        """Service ratio over 12 months against the national ratio of the same months
        (seasonality and trend cancel out)."""
        x = window(sid, ind, per, before)
        nat = obs[(obs["indicator"] == ind) & obs["period"].isin(x.index)]
        return (x["numerator"].sum() / x["denominator"].sum()) / (
            nat["numerator"].sum() / nat["denominator"].sum())

    for m in panel.mergers.itertuples():
        assert s.loc[m.absorbing_id, "merger_periods"] == m.period
        assert s.loc[m.absorbed_id, "absorbed_by"] == m.absorbing_id
        assert m.absorbing_id not in lab_services and m.absorbed_id not in lab_services
        w0 = window(m.absorbing_id, "workers_followed", m.period, True)["value"].mean()
        w1 = window(m.absorbing_id, "workers_followed", m.period, False)["value"].mean()
        assert w1 > 1.1 * w0
        for ind in ("workers_per_physician_fte", "vip_init_in_delay_rate",
                    "reprise_within_8d_rate", "pdp_cases_per_1000", "amt_per_1000"):
            ra = relative(m.absorbing_id, ind, m.period, True)
            rb = relative(m.absorbing_id, ind, m.period, False)
            tol = 0.20 if ind.endswith("_1000") else 0.10   # counts of events are noisier
            assert abs(rb / ra - 1) < tol, (ind, ra, rb)
        # the absorbed service stops reporting at the merger
        monthly = obs["period"].str.fullmatch(r"\d{4}-\d{2}")
        later = obs[(obs["service_id"] == m.absorbed_id) & monthly & (obs["period"] >= m.period)]
        assert later.empty


# --------------------------------------------------------------------- benchmark
@pytest.mark.slow
@pytest.mark.timeout(300)     # a guard against a hang; make bench --large prints the time
def test_large_panel_is_complete():
    big = generate(n_services=18_000, n_months=24)
    assert big.services["service_id"].is_unique
    assert big.services["region_code"].nunique() == 18
    assert len(big.observations) > 18_000 * 24 * 11 * 0.95


# ----------------------------------------------------------------------- writing
def test_write_panel_round_trips(tmp_path, panel):
    paths = write_panel(panel, tmp_path)
    names = {p.name for p in paths}
    assert {"services.csv", "labels.csv"} <= names
    years = sorted(panel.observations["period"].str.slice(0, 4).astype(int).unique())
    assert {indicator_file_name(y) for y in years} <= names
    assert sum(p.stat().st_size for p in paths) < 15 * 1024 * 1024

    raw = (tmp_path / "indicators_2023.csv").read_bytes()
    assert raw.split(b"\r\n", 1)[0].startswith(b"service_id;period;indicator;value")
    assert b"\xe9" in raw  # 'é' in Windows-1252
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert (tmp_path / "indicators_2024.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert not (tmp_path / "indicators_2025.csv").read_bytes().startswith(b"\xef\xbb\xbf")

    back = []
    for y in years:
        df = pd.read_csv(tmp_path / indicator_file_name(y), **file_format(y).read_kwargs())
        assert list(df.columns[:6]) == OBS_COLUMNS
        back.append(df[OBS_COLUMNS])
    back = pd.concat(back, ignore_index=True)
    obs = panel.observations.reset_index(drop=True)
    assert len(back) == len(obs)
    for col in ("service_id", "period", "indicator"):
        assert back[col].astype(str).tolist() == obs[col].astype(str).tolist()
    for col in ("value", "numerator", "denominator"):
        assert np.allclose(back[col].astype(float), obs[col], equal_nan=True, rtol=0, atol=1e-9)

    svc = pd.read_csv(tmp_path / "services.csv", dtype={"service_id": str, "region_code": str})
    assert svc["service_id"].tolist() == panel.services["service_id"].tolist()
    assert svc["region_code"].tolist() == panel.services["region_code"].tolist()
    assert svc["region_code"].str.len().eq(2).all()
    assert svc["name"].tolist() == panel.services["name"].tolist()
    lab = pd.read_csv(tmp_path / "labels.csv", dtype=str)
    pd.testing.assert_frame_equal(lab, panel.labels.astype(object), check_dtype=False)


def test_cli_writes_files(tmp_path, capsys):
    assert main(["--seed", "5", "--services", "30", "--months", "24", "--end", "2025-06",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "services.csv" in out and "indicators_2025.csv" in out
    svc = pd.read_csv(tmp_path / "services.csv", dtype=str)
    assert len(svc) == 30
    assert main(["--services", "5", "--out", str(tmp_path)]) == 2


# -------------------------------------------------------------- bundled data/docs
def test_bundled_data_are_the_default_panel(panel):
    if not (DEFAULT_OUT / "labels.csv").exists():
        pytest.skip("fixtures/data not generated (run python -m fixtures.generate)")
    lab = pd.read_csv(DEFAULT_OUT / "labels.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(lab, panel.labels.astype(object), check_dtype=False)
    svc = pd.read_csv(DEFAULT_OUT / "services.csv", dtype={"service_id": str, "region_code": str})
    assert svc["service_id"].tolist() == panel.services["service_id"].tolist()
    assert svc["workers_followed"].tolist() == panel.services["workers_followed"].tolist()


def test_readme_documents_every_label_subtype(panel):
    text = (FIXTURES_DIR / "README.md").read_text(encoding="utf-8")
    for st in panel.labels["subtype"].unique():
        assert f"`{st}`" in text, st
    for m in panel.mergers.itertuples():
        assert m.absorbing_id in text and m.absorbed_id in text
