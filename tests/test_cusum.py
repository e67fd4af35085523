"""Tests for detectors.cusum: ARL (vs R spc::xcusum.arl), calibration, CUSUM recursion."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors.cusum import CusumResult, calibrate_h, cusum_arl, upper_cusum

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
SPC_CSV = REFERENCE_DIR / "cusum_arl_normal" / "expected_arl_spc.csv"


def _spc_rows() -> list[dict[str, str]]:
    if not SPC_CSV.is_file():
        return []
    with SPC_CSV.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


_ROWS = _spc_rows()


def _skip_without_reference() -> None:
    if not _ROWS:
        pytest.skip(
            f"reference file {SPC_CSV} absent (the shared reference folder "
            "../shared/reference is not available in this checkout)"
        )


def _row_id(row: dict[str, str]) -> str:
    return f"h{row['h']}-mu{row['mu']}-{row['sided']}"


# One parametrised case per CSV row; a single skipped placeholder when the file is absent.
_PARAMS = [pytest.param(r, id=_row_id(r)) for r in _ROWS] or [
    pytest.param(None, id="reference-absent")
]


# ---------------------------------------------------------------------------------------
# Reference file sanity
# ---------------------------------------------------------------------------------------


def test_reference_file_layout():
    _skip_without_reference()
    assert list(_ROWS[0].keys()) == ["k", "h", "mu", "sided", "arl"]
    assert len(_ROWS) == 36
    assert {r["sided"] for r in _ROWS} == {"one", "two"}
    assert {float(r["k"]) for r in _ROWS} == {0.5}
    assert {float(r["h"]) for r in _ROWS} == {4.0, 5.0}
    assert {float(r["mu"]) for r in _ROWS} == {0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3}


# ---------------------------------------------------------------------------------------
# ARL against spc
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", _PARAMS)
def test_arl_integral_matches_spc(row):
    _skip_without_reference()
    expected = float(row["arl"])
    got = cusum_arl(float(row["k"]), float(row["h"]), float(row["mu"]), sides=row["sided"])
    assert got == pytest.approx(expected, rel=1e-4)
    # in fact the Nystrom solution reproduces spc to rounding level
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("row", _PARAMS)
def test_arl_markov_matches_spc(row):
    _skip_without_reference()
    expected = float(row["arl"])
    got = cusum_arl(
        float(row["k"]), float(row["h"]), float(row["mu"]), sides=row["sided"], method="markov"
    )
    assert got == pytest.approx(expected, rel=1e-2)
    # with the default 400 states the Brook-Evans chain is much better than 1e-2
    assert got == pytest.approx(expected, rel=1e-3)


def test_arl_known_values_without_reference():
    # Values printed in the reference README (spc), usable even without the folder.
    assert cusum_arl(0.5, 4.0) == pytest.approx(335.37, abs=0.005)
    assert cusum_arl(0.5, 5.0) == pytest.approx(930.89, abs=0.005)
    assert cusum_arl(0.5, 4.0, sides="two") == pytest.approx(167.68, abs=0.005)
    assert cusum_arl(0.5, 5.0, shift=1.0) == pytest.approx(10.38, abs=0.005)


def test_two_sided_is_siegmund_relation():
    for shift in (0.0, 0.3, 1.0):
        up = cusum_arl(0.5, 4.0, shift)
        lo = cusum_arl(0.5, 4.0, -shift)
        assert cusum_arl(0.5, 4.0, shift, sides="two") == pytest.approx(
            1.0 / (1.0 / up + 1.0 / lo), rel=1e-14
        )
    assert cusum_arl(0.5, 4.0, 0.7, sides="two") == pytest.approx(
        cusum_arl(0.5, 4.0, -0.7, sides="two"), rel=1e-12
    )


def test_arl_quadrature_converged():
    for h in (0.5, 3.0, 5.0, 8.0):
        a = cusum_arl(0.5, h, n_nodes=None)
        b = cusum_arl(0.5, h, n_nodes=200)
        assert a == pytest.approx(b, rel=1e-10)


def test_arl_h_zero_is_geometric():
    p = stats.norm.sf(0.5 - 0.2)
    assert cusum_arl(0.5, 0.0, shift=0.2) == pytest.approx(1.0 / p, rel=1e-14)
    assert cusum_arl(0.5, 1e-8, shift=0.2) == pytest.approx(1.0 / p, rel=1e-6)
    assert cusum_arl(0.5, 0.0, sides="two") == pytest.approx(0.5 / stats.norm.sf(0.5))


def test_arl_monotone():
    hs = np.linspace(0.0, 6.0, 25)
    arl = [cusum_arl(0.5, h) for h in hs]
    assert np.all(np.diff(arl) > 0)
    shifts = np.linspace(-1.0, 3.0, 17)
    arl = [cusum_arl(0.5, 4.0, s) for s in shifts]
    assert np.all(np.diff(arl) < 0)


def test_arl_invalid_arguments():
    with pytest.raises(ValueError):
        cusum_arl(0.5, -1.0)
    with pytest.raises(ValueError):
        cusum_arl(0.5, 4.0, sides="both")
    with pytest.raises(ValueError):
        cusum_arl(0.5, 4.0, method="simulation")
    with pytest.raises(ValueError):
        cusum_arl(-0.5, 4.0, sides="two")


# ---------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------


def test_calibrate_h_round_trip():
    assert calibrate_h(0.5, cusum_arl(0.5, 4.0)) == pytest.approx(4.0, abs=1e-8)
    assert calibrate_h(0.5, cusum_arl(0.5, 5.0, sides="two"), sides="two") == pytest.approx(
        5.0, abs=1e-8
    )
    for k, h in ((0.25, 6.0), (1.0, 2.5)):
        assert calibrate_h(k, cusum_arl(k, h)) == pytest.approx(h, abs=1e-8)


def test_calibrate_h_against_spc_values():
    _skip_without_reference()
    for row in _ROWS:
        if float(row["mu"]) == 0.0:
            h = calibrate_h(float(row["k"]), float(row["arl"]), sides=row["sided"])
            assert h == pytest.approx(float(row["h"]), abs=1e-6)


def test_calibrate_h_project_values():
    h120 = calibrate_h(0.5, 120)
    h240 = calibrate_h(0.5, 240)
    assert cusum_arl(0.5, h120) == pytest.approx(120.0, rel=1e-9)
    assert cusum_arl(0.5, h240) == pytest.approx(240.0, rel=1e-9)
    # documented values (k = 0.5, one-sided)
    assert h120 == pytest.approx(3.018903, abs=1e-6)
    assert h240 == pytest.approx(3.676810, abs=1e-6)
    # two-sided in-control ARL is half the one-sided one for a symmetric scheme
    assert calibrate_h(0.5, 120, sides="two") == pytest.approx(h240, abs=1e-8)


def test_calibrate_h_is_cached():
    calibrate_h(0.5, 777.0)
    hits = calibrate_h.cache_info().hits
    calibrate_h(0.5, 777.0)
    calibrate_h(0.5, 777)  # int and float keys are the same cache entry
    assert calibrate_h.cache_info().hits == hits + 2


def test_calibrate_h_unattainable():
    with pytest.raises(ValueError, match="not attainable"):
        calibrate_h(0.5, 2.0)  # h = 0 already gives ARL 3.24
    with pytest.raises(ValueError):
        calibrate_h(0.5, 120, sides="upper")


# ---------------------------------------------------------------------------------------
# CUSUM recursion
# ---------------------------------------------------------------------------------------


def _naive_cusum(z, k, h, reset):
    """Scalar reference implementation, one series at a time."""
    z = np.asarray(z, dtype=float)
    n_t, n_s = z.shape
    stat = np.zeros((n_t, n_s))
    sig = np.zeros((n_t, n_s), dtype=bool)
    rs = np.full((n_t, n_s), -1)
    for j in range(n_s):
        s, start = 0.0, -1
        for t in range(n_t):
            if not math.isnan(z[t, j]):
                s = max(0.0, s + z[t, j] - k)
                if s > 0 and start < 0:
                    start = t
                if s == 0:
                    start = -1
                sig[t, j] = s > h
            stat[t, j], rs[t, j] = s, start
            if sig[t, j] and reset:
                s, start = 0.0, -1
    return stat, sig, rs


def test_hand_computed_trajectory_with_reset():
    z = np.array([0.2, 1.5, 1.0, -0.3, 2.0, 0.8, -3.0, 1.7])
    r = upper_cusum(z, k=0.5, h=2.0)
    assert isinstance(r, CusumResult)
    np.testing.assert_allclose(
        r.statistic, [0.0, 1.0, 1.5, 0.7, 2.2, 0.3, 0.0, 1.2], rtol=0, atol=1e-9
    )
    assert np.flatnonzero(r.signal).tolist() == [4]
    assert r.run_start.tolist() == [-1, 1, 1, 1, 1, 5, -1, 7]
    assert not r.missing.any()
    assert (r.k, r.h, r.reset) == (0.5, 2.0, True)


def test_hand_computed_trajectory_without_reset():
    z = np.array([0.2, 1.5, 1.0, -0.3, 2.0, 0.8, -3.0, 1.7])
    r = upper_cusum(z, k=0.5, h=2.0, reset=False)
    np.testing.assert_allclose(
        r.statistic, [0.0, 1.0, 1.5, 0.7, 2.2, 2.5, 0.0, 1.2], rtol=0, atol=1e-9
    )
    assert np.flatnonzero(r.signal).tolist() == [4, 5]
    assert r.run_start.tolist() == [-1, 1, 1, 1, 1, 1, -1, 7]


def test_signal_is_strictly_above_h():
    r = upper_cusum(np.array([1.5, 1.0]), k=0.5, h=1.0)  # S = 1.0 (not > h), 1.5
    assert r.signal.tolist() == [False, True]


def test_nan_leaves_state_unchanged():
    z = np.array([1.0, np.nan, 1.0, np.nan, np.nan, -2.0, 1.5])
    r = upper_cusum(z, k=0.5, h=0.9)
    np.testing.assert_allclose(r.statistic, [0.5, 0.5, 1.0, 0.0, 0.0, 0.0, 1.0], atol=1e-12)
    assert r.missing.tolist() == [False, True, False, True, True, False, False]
    assert np.flatnonzero(r.signal).tolist() == [2, 6]
    assert r.run_start.tolist() == [0, 0, 0, -1, -1, -1, 6]


def test_nan_never_signals_even_above_h_without_reset():
    r = upper_cusum(np.array([3.0, np.nan, 0.5]), k=0.5, h=1.0, reset=False)
    np.testing.assert_allclose(r.statistic, [2.5, 2.5, 2.5], atol=1e-12)
    assert r.signal.tolist() == [True, False, True]
    assert r.run_start.tolist() == [0, 0, 0]


def test_excursion_start_skips_missing_months():
    # S = 0 at t=0, months 1-2 missing, excursion starts at the first observed month 3
    r = upper_cusum(np.array([0.0, np.nan, np.nan, 2.0, 2.0]), k=0.5, h=2.5)
    assert r.run_start.tolist() == [-1, -1, -1, 3, 3]
    assert r.signal.tolist() == [False, False, False, False, True]


@pytest.mark.parametrize("reset", [True, False])
def test_vectorised_matches_naive(reset):
    rng = np.random.default_rng(7)
    z = rng.normal(0.3, 1.0, size=(80, 40))
    z[rng.random(z.shape) < 0.15] = np.nan
    z[:, 0] = np.nan  # a fully missing service
    r = upper_cusum(z, k=0.5, h=2.5, reset=reset)
    stat, sig, rs = _naive_cusum(z, 0.5, 2.5, reset)
    np.testing.assert_allclose(r.statistic, stat, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.signal, sig)
    np.testing.assert_array_equal(r.run_start, rs)
    np.testing.assert_array_equal(r.missing, np.isnan(z))
    assert r.signal.any()
    # columns are independent: one column alone gives the same result
    alone = upper_cusum(z[:, 5], k=0.5, h=2.5, reset=reset)
    np.testing.assert_array_equal(alone.statistic, r.statistic[:, 5])


def test_numpy_output_is_read_only():
    r = upper_cusum(np.zeros((3, 2)), 0.5, 4.0)
    assert r.statistic.shape == (3, 2) and r.signal.dtype == bool
    assert r.run_start.dtype == np.int64
    with pytest.raises(ValueError):
        r.statistic[0, 0] = 1.0
    with pytest.raises(AttributeError):
        r.h = 1.0  # frozen dataclass


def test_dataframe_in_dataframe_out():
    rng = np.random.default_rng(3)
    idx = pd.date_range("2021-01-01", periods=24, freq="MS", name="month")
    cols = pd.Index(["SPSTI-001", "SPSTI-002", "SPSTI-003"], name="service")
    values = rng.normal(0.8, 1.0, size=(24, 3))
    values[5, 1] = np.nan
    df = pd.DataFrame(values, index=idx, columns=cols)
    r = upper_cusum(df, k=0.5, h=3.0)
    ref = upper_cusum(values, k=0.5, h=3.0)
    for name in ("statistic", "signal", "run_start", "missing"):
        out = getattr(r, name)
        assert isinstance(out, pd.DataFrame)
        pd.testing.assert_index_equal(out.index, idx)
        pd.testing.assert_index_equal(out.columns, cols)
        np.testing.assert_array_equal(out.to_numpy(), getattr(ref, name))
    assert r.statistic.dtypes.eq("float64").all()
    assert r.signal.dtypes.eq(bool).all()
    assert r.run_start.dtypes.eq("int64").all()
    assert bool(r.missing.loc["2021-06-01", "SPSTI-002"])
    # positions translated to dates
    labels = r.run_start_labels()
    assert isinstance(labels, pd.DataFrame)
    pos = r.run_start.to_numpy()
    t, j = np.argwhere(pos >= 0)[0]
    assert labels.iloc[t, j] == idx[pos[t, j]]
    assert labels.isna().to_numpy().tolist() == (pos < 0).tolist()


def test_nullable_dataframe_and_series():
    df = pd.DataFrame({"a": [1.0, None, 2.0]}, dtype="Float64")
    r = upper_cusum(df, k=0.5, h=1.5)
    assert r.missing["a"].tolist() == [False, True, False]
    np.testing.assert_allclose(r.statistic["a"].to_numpy(), [0.5, 0.5, 2.0])
    s = pd.Series([1.0, np.nan, 2.0], index=list("xyz"), name="svc")
    rs = upper_cusum(s, k=0.5, h=1.5)
    assert isinstance(rs.statistic, pd.Series) and rs.statistic.name == "svc"
    assert rs.signal.tolist() == [False, False, True]
    assert rs.run_start_labels().tolist() == ["x", "x", "x"]


def test_invalid_inputs():
    with pytest.raises(ValueError):
        upper_cusum(np.array([1.0, np.inf]), 0.5, 4.0)
    with pytest.raises(ValueError):
        upper_cusum(np.zeros((2, 2, 2)), 0.5, 4.0)
    with pytest.raises(ValueError):
        upper_cusum(np.zeros(3), 0.5, -1.0)
    with pytest.raises(TypeError):
        upper_cusum(np.zeros(3), 0.5, 4.0).run_start_labels()


# ---------------------------------------------------------------------------------------
# Dating a step shift
# ---------------------------------------------------------------------------------------


def test_run_start_dates_a_step_shift_exactly():
    pre = [0.3, -1.0, 0.2, -0.4, -0.8, 0.1]
    post = [1.8, 2.4, 1.6, 2.2]
    r = upper_cusum(np.array(pre + post), k=0.5, h=3.0)
    first = int(np.flatnonzero(r.signal)[0])
    assert first == 7  # S: ..., 0, 1.3, 3.2 > 3
    assert r.run_start[first] == 6  # the shift began at period 6
    # a positive in-control residual just before the shift makes the excursion start
    # one period earlier (the last time S was 0, + 1)
    pre2 = pre[:-1] + [0.9]
    r2 = upper_cusum(np.array(pre2 + post), k=0.5, h=3.0)
    assert int(np.flatnonzero(r2.signal)[0]) == 7
    assert r2.run_start[7] == 5


def test_run_start_dates_a_step_shift_statistically():
    rng = np.random.default_rng(20240601)
    n_t, n_s, t0 = 60, 2000, 36
    z = rng.standard_normal((n_t, n_s))
    z[t0:] += 2.0
    r = upper_cusum(z, k=0.5, h=calibrate_h(0.5, 120))
    sig = r.signal.copy()
    sig[:t0] = False
    assert sig.any(axis=0).all()
    first = sig.argmax(axis=0)
    start = r.run_start[first, np.arange(n_s)]
    assert np.median(start) == t0
    assert np.mean(start == t0) > 0.4
    assert np.mean(np.abs(start - t0) <= 3) > 0.85


# ---------------------------------------------------------------------------------------
# Monte-Carlo agreement of upper_cusum with cusum_arl
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "shift", "n_t"),
    [(2.0, 0.0, 700), (4.0, 1.0, 120)],
    ids=["in-control-h2", "shift1-h4"],
)
def test_monte_carlo_run_length(h, shift, n_t):
    """First and second (after reset) run lengths average to cusum_arl within 4 s.e."""
    rng = np.random.default_rng(12345)
    k, n_s, chunks = 0.5, 2000, 4
    first_rl, second_rl = [], []
    for _ in range(chunks):
        z = rng.normal(shift, 1.0, size=(n_t, n_s))
        sig = upper_cusum(z, k, h, reset=True).signal.copy()
        counts = sig.sum(axis=0)
        assert (counts >= 2).all(), "run length censored: increase n_t"
        t1 = sig.argmax(axis=0)
        sig[t1, np.arange(n_s)] = False
        t2 = sig.argmax(axis=0)
        first_rl.append(t1 + 1)
        second_rl.append(t2 - t1)
    expected = cusum_arl(k, h, shift)
    for rl in (np.concatenate(first_rl), np.concatenate(second_rl)):
        se = rl.std(ddof=1) / math.sqrt(rl.size)
        assert abs(rl.mean() - expected) < 4.0 * se, (rl.mean(), expected, se)


# ---------------------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)     # a guard against a hang; make bench prints the time
def test_18000_services_60_periods_in_one_call():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((60, 18_000))
    z[rng.random(z.shape) < 0.05] = np.nan
    r = upper_cusum(z, 0.5, 4.0)
    assert r.statistic.shape == (60, 18_000)
    # a missing period neither adds evidence nor resets: the statistic carries over (after a
    # signal, reset=True restarts it at 0 whatever the next period holds)
    gap = np.isnan(z[1:]) & np.isfinite(z[:-1]) & ~np.asarray(r.signal)[:-1]
    assert np.array_equal(r.statistic[1:][gap], r.statistic[:-1][gap])
