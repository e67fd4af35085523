"""Tests of detectors.funnel.

Two parts:

* reference cases (``shared/reference/funnel_*``, see its README sections 1 and 4):
  FunnelPlotR 0.6.0 outputs for the PHE proportion data (arcsine, 10 % winsorised)
  and FunnelPlotR's own 6-unit standardised-ratio data (SHMI, 10 % truncation; CQC,
  5 % winsorisation), the formula-derived limits, the transcribed testthat values and
  the PHE inverted-Wilson limits. Skipped when the reference folder is absent.
* behaviour tests that need no reference: validation, missing data, order, index,
  monotone limits, over-dispersion, speed.

Tolerances (reference README section 4): phi, tau2, z and winsorised z relative 1e-9;
limits relative 1e-6; outlier flags exact.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.funnel import (
    Z95,
    Z998,
    FunnelResult,
    funnel,
    funnel_limits,
    outside_limits,
    phe_proportion_limits,
    quantile_type7,
    truncate,
    winsorise,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
PR_DIR = REFERENCE / "funnel_proportion_phe_pct"
SR_DIR = REFERENCE / "funnel_sr_funnelplotr_testthat"

RTOL_STAT = 1e-9   # phi, tau2, z, winsorised z, target
RTOL_LIMIT = 1e-6  # control limits

LIMITS = ("lower_95", "upper_95", "lower_998", "upper_998")
FPR_OD_LIMITS = ("OD95LCL", "OD95UCL", "OD998LCL", "OD998UCL")
FPR_UNADJ_LIMITS = ("LCL95", "UCL95", "LCL998", "UCL998")
DERIVED_ADD = ("add_LCL95", "add_UCL95", "add_LCL998", "add_UCL998")
DERIVED_MULT = ("mult_LCL95", "mult_UCL95", "mult_LCL998", "mult_UCL998")


def read_ref_csv(path: Path) -> pd.DataFrame:
    """Reference CSV reader: BOM-tolerant, "NA" missing ("-Inf" parses as -inf)."""
    return pd.read_csv(path, encoding="utf-8-sig", na_values=["NA"])


def require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"reference folder {folder} is absent (shared/reference is not "
                    f"checked out next to the project): reference funnel tests skipped")
    return folder


def assert_rel(actual, expected, rtol, what):
    np.testing.assert_allclose(np.asarray(actual, dtype=float),
                               np.asarray(expected, dtype=float),
                               rtol=rtol, atol=0, equal_nan=True, err_msg=what)


def assert_flags(actual, expected, what):
    actual = np.asarray(actual, dtype=bool)
    expected = np.asarray(expected).astype(int).astype(bool)
    bad = np.flatnonzero(actual != expected)
    assert bad.size == 0, f"{what}: flags differ at rows {bad.tolist()}"


# =========================================================================== PHE proportions
# FunnelPlotR data_type="PR", trim_by=0.1 on the PHEindicatormethods test inputs (303 PCTs).

@pytest.fixture(scope="module")
def pr_dir() -> Path:
    return require(PR_DIR)


@pytest.fixture(scope="module")
def pr_inputs(pr_dir) -> pd.DataFrame:
    return read_ref_csv(pr_dir / "phe_testdata_funnel_prop_inputs.csv")


@pytest.fixture(scope="module")
def pr_scalars(pr_dir) -> dict:
    return json.loads((pr_dir / "funnelplotr_scalars_PR_winsor10.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def pr_expected(pr_dir) -> pd.DataFrame:
    return read_ref_csv(pr_dir / "expected_units_PR_winsor10.csv")


@pytest.fixture(scope="module")
def pr_derived(pr_dir) -> pd.DataFrame:
    return read_ref_csv(pr_dir / "derived_limits_PR_winsor10.csv")


def pr_funnel(inputs: pd.DataFrame, **options) -> FunnelResult:
    """Funnel of the PHE inputs, Series indexed by area name (FunnelPlotR's group)."""
    index = pd.Index(inputs["Area"], name="Area")
    return funnel(pd.Series(inputs["numerator"].to_numpy(), index=index),
                  pd.Series(inputs["denominator"].to_numpy(), index=index), **options)


@pytest.fixture(scope="module")
def pr_additive(pr_inputs) -> FunnelResult:
    return pr_funnel(pr_inputs)  # defaults: proportion, arcsine, winsorise 10 %, additive


def test_pr_defaults_and_scalars(pr_additive, pr_scalars):
    r = pr_additive
    assert (r.kind, r.transform, r.trim_method, r.trim) == ("proportion", "arcsine", "winsorise", 0.1)
    assert r.overdispersion == r.adjustment == "additive" and r.adjusted
    assert r.n_units == pr_scalars["n_units"] == 303
    assert r.n_used == pr_scalars["n_used_for_phi"]
    assert_rel(r.phi, pr_scalars["phi"], RTOL_STAT, "phi")
    assert_rel(r.tau2, pr_scalars["tau2"], RTOL_STAT, "tau2")
    assert_rel(r.target, pr_scalars["target"], RTOL_STAT, "target")


def test_pr_unit_statistics(pr_additive, pr_expected):
    e = pr_expected
    t = pr_additive.table.loc[e["group"]]
    assert_rel(t["numerator"], e["numerator"], RTOL_STAT, "numerator")
    assert_rel(t["value"], e["rr"], RTOL_STAT, "rr")
    assert_rel(np.full(len(e), pr_additive.target_transformed), e["target_transformed"],
               RTOL_STAT, "target_transformed")
    assert_rel(t["y"], e["Y"], RTOL_STAT, "Y")
    assert_rel(t["z"], e["Uzscore"], RTOL_STAT, "Uzscore")
    assert_rel(t["z_trimmed"], e["Wuzscore"], RTOL_STAT, "Wuzscore")
    assert_flags(t["trimmed"], e["winsorised"], "winsorised")


def test_pr_additive_limits_and_outliers(pr_additive, pr_expected, pr_scalars):
    e = pr_expected
    t = pr_additive.table.loc[e["group"]]
    for ours, theirs in zip(LIMITS, FPR_OD_LIMITS):
        assert_rel(t[ours], e[theirs], RTOL_LIMIT, theirs)
    assert_flags(t["outlier_95"], e["outlier_OD95"], "outlier_OD95")
    assert_flags(t["outlier_998"], e["outlier_OD998"], "outlier_OD998")
    table = pr_additive.table
    assert sorted(table.index[table["outlier_95"]]) == sorted(pr_scalars["outliers_OD95"])
    assert sorted(table.index[table["outlier_998"]]) == sorted(pr_scalars["outliers_OD998"])


def test_pr_unadjusted_limits_and_outliers(pr_inputs, pr_expected, pr_scalars):
    r = pr_funnel(pr_inputs, overdispersion="none")
    assert r.adjustment == "none"
    # phi and tau2 are still estimated and reported
    assert_rel(r.phi, pr_scalars["phi"], RTOL_STAT, "phi")
    assert_rel(r.tau2, pr_scalars["tau2"], RTOL_STAT, "tau2")
    e = pr_expected
    t = r.table.loc[e["group"]]
    assert_rel(t["z_adjusted"], e["Uzscore"], RTOL_STAT, "unadjusted z")
    for ours, theirs in zip(LIMITS, FPR_UNADJ_LIMITS):
        assert_rel(t[ours], e[theirs], RTOL_LIMIT, theirs)
    assert_flags(t["outlier_95"], e["outlier_unadj95"], "outlier_unadj95")
    assert_flags(t["outlier_998"], e["outlier_unadj998"], "outlier_unadj998")
    counts = pr_scalars["n_outliers"]
    assert (t["outlier_95"].sum(), t["outlier_998"].sum()) == (counts["unadj95"], counts["unadj998"])


@pytest.mark.parametrize("overdispersion, z_col, limit_cols, flag_prefix, counts", [
    ("additive", "z_additive", DERIVED_ADD, "add", (32, 2)),
    ("multiplicative", "z_multiplicative", DERIVED_MULT, "mult", (33, 10)),
])
def test_pr_derived_limits(pr_inputs, pr_derived, overdispersion, z_col, limit_cols,
                           flag_prefix, counts):
    r = pr_funnel(pr_inputs, overdispersion=overdispersion)
    assert r.adjustment == overdispersion
    d = pr_derived
    t = r.table.loc[d["group"]]
    assert_rel(t["value"], d["rr"], RTOL_STAT, "rr")
    assert_rel(t["s"], d["s"], RTOL_STAT, "s")
    assert_rel(t["z_adjusted"], d[z_col], RTOL_STAT, z_col)
    for ours, theirs in zip(LIMITS, limit_cols):
        assert_rel(t[ours], d[theirs], RTOL_LIMIT, theirs)
    assert_flags(t["outlier_95"], d[f"{flag_prefix}_out95"], f"{flag_prefix}_out95")
    assert_flags(t["outlier_998"], d[f"{flag_prefix}_out998"], f"{flag_prefix}_out998")
    assert (int(t["outlier_95"].sum()), int(t["outlier_998"].sum())) == counts


def test_pr_groups_argument_matches_series_index(pr_inputs, pr_additive):
    grouped = funnel(pr_inputs["numerator"], pr_inputs["denominator"], groups=pr_inputs["Area"])
    assert grouped.table.index.name == "group"
    assert list(grouped.table.index) == list(pr_inputs["Area"])  # first appearance order
    assert grouped.phi == pr_additive.phi and grouped.tau2 == pr_additive.tau2
    pd.testing.assert_frame_equal(grouped.table, pr_additive.table, check_names=False)


@pytest.mark.parametrize("filename, subset", [
    ("phe_testdata_funnel_prop_outputs.csv", None),
    ("phe_testdata_funnel_prop_outputs_with_axis_variation.csv", 31000),
])
def test_phe_wilson_limits(pr_dir, pr_inputs, filename, subset):
    """PHEindicatormethods limits in %, printed to 6+ decimals: absolute 1e-6 (% units)."""
    expected = read_ref_csv(pr_dir / filename)
    units = pr_inputs if subset is None else pr_inputs[pr_inputs["denominator"] < subset]
    target = units["numerator"].sum() / units["denominator"].sum()
    np.testing.assert_allclose(100 * target, expected["Baseline"], rtol=0, atol=1e-6)
    limits = phe_proportion_limits(expected["Population"], target)
    for ours, theirs in zip(LIMITS, ("Lower2s0025limit", "Upper2s0025limit",
                                     "Lower3s0001limit", "Upper3s0001limit")):
        np.testing.assert_allclose(100 * limits[ours], expected[theirs], rtol=0, atol=1e-6,
                                   err_msg=theirs)


def test_phe_wilson_significance(pr_inputs):
    p = pr_inputs["numerator"] / pr_inputs["denominator"]
    target = pr_inputs["numerator"].sum() / pr_inputs["denominator"].sum()
    lim = phe_proportion_limits(pr_inputs["denominator"], target)
    category = np.select(
        [p < lim["lower_998"], p < lim["lower_95"], p > lim["upper_998"], p > lim["upper_95"]],
        ["Low (0.001)", "Low (0.025)", "High (0.001)", "High (0.025)"],
        default="Not significant")
    mismatches = pr_inputs.loc[category != pr_inputs["significance"], "Area"].tolist()
    assert mismatches == []


# =========================================================================== standardised ratios
# FunnelPlotR's own testthat data: 6 units a..f (O = 100,150,180,80,120,225; E = 108,...).

SR_CASES = {
    # label: (funnel options, flag column in expected_units, may use its OD columns)
    "SR_SHMI_trunc10": (dict(kind="ratio"), "truncated", True),
    "SR_CQC_winsor05": (dict(kind="ratio", transform="sqrt", trim=0.05), "winsorised", False),
}


@pytest.fixture(scope="module")
def sr_dir() -> Path:
    return require(SR_DIR)


@pytest.fixture(scope="module")
def sr_input(sr_dir) -> pd.DataFrame:
    return read_ref_csv(sr_dir / "input.csv")


@pytest.fixture(scope="module")
def sr_scalars(sr_dir) -> dict:
    return json.loads((sr_dir / "funnelplotr_scalars.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def sr_transcribed(sr_dir) -> dict:
    return json.loads((sr_dir / "expected_transcribed_testthat.json").read_text("utf-8"))


def sr_funnel(sr_input: pd.DataFrame, **options) -> FunnelResult:
    index = pd.Index(sr_input["group"], name="group")
    return funnel(pd.Series(sr_input["num"].to_numpy(), index=index),
                  pd.Series(sr_input["denom"].to_numpy(), index=index), **options)


@pytest.mark.parametrize("label", SR_CASES)
def test_sr_scalars(sr_input, sr_scalars, label):
    options, _, _ = SR_CASES[label]
    expected = sr_scalars[label]
    r = sr_funnel(sr_input, **options)
    assert r.transform == {"SHMI": "log", "CQC": "sqrt"}[expected["sr_method"]]
    assert r.trim_method == {"SHMI": "truncate", "CQC": "winsorise"}[expected["sr_method"]]
    assert r.trim == expected["trim_by"]
    assert r.n_units == expected["n_units"] and r.n_used == expected["n_used_for_phi"]
    assert r.adjustment == "additive" and expected["draw_adjusted_effective"]
    assert_rel(r.phi, expected["phi"], RTOL_STAT, "phi")
    assert_rel(r.tau2, expected["tau2"], RTOL_STAT, "tau2")
    assert r.target == expected["target"] == 1


@pytest.mark.parametrize("label", SR_CASES)
def test_sr_unit_statistics(sr_dir, sr_input, label):
    options, flag_col, _ = SR_CASES[label]
    r = sr_funnel(sr_input, **options)
    e = read_ref_csv(sr_dir / f"expected_units_{label}.csv")
    t = r.table.loc[e["group"]]
    assert_rel(t["numerator"], e["numerator"], RTOL_STAT, "numerator")
    assert_rel(t["denominator"], e["denominator"], RTOL_STAT, "denominator")
    assert_rel(t["value"], e["rr"], RTOL_STAT, "rr")
    assert_rel(np.full(len(e), r.target_transformed), e["target_transformed"], RTOL_STAT,
               "target_transformed")
    assert_rel(t["y"], e["Y"], RTOL_STAT, "Y")
    assert_rel(t["z"], e["Uzscore"], RTOL_STAT, "Uzscore")
    assert_rel(t["z_trimmed"], e["Wuzscore"], RTOL_STAT, "Wuzscore")
    assert_flags(t["trimmed"], e[flag_col], flag_col)


def test_sr_shmi_truncation_ranks(sr_dir, sr_input):
    """The SHMI rank groups: floor(rank * 10 / (n + 1)) as in the 'sp' column."""
    e = read_ref_csv(sr_dir / "expected_units_SR_SHMI_trunc10.csv")
    z = e["Uzscore"].to_numpy()
    ranks = pd.Series(z).rank(method="average").to_numpy()
    assert_rel(ranks, e["rk"], 0, "rk")
    assert_rel(np.floor(ranks * 10 / (len(z) + 1)), e["sp"], 0, "sp")
    _, dropped = truncate(z, 0.1)
    assert_flags(dropped, e["truncated"], "truncated")


def test_sr_shmi_additive_limits(sr_dir, sr_input, sr_scalars):
    """SHMI: FunnelPlotR's OD limits are correct (unlike CQC's) and can be compared."""
    r = sr_funnel(sr_input, kind="ratio")
    e = read_ref_csv(sr_dir / "expected_units_SR_SHMI_trunc10.csv")
    t = r.table.loc[e["group"]]
    for ours, theirs in zip(LIMITS, FPR_OD_LIMITS):
        assert_rel(t[ours], e[theirs], RTOL_LIMIT, theirs)
    assert_flags(t["outlier_95"], e["outlier_OD95"], "outlier_OD95")
    assert_flags(t["outlier_998"], e["outlier_OD998"], "outlier_OD998")
    assert list(r.table.index[r.table["outlier_95"]]) == sr_scalars["SR_SHMI_trunc10"]["outliers_OD95"]


@pytest.mark.parametrize("label", SR_CASES)
def test_sr_unadjusted_poisson_limits(sr_dir, sr_input, sr_scalars, label):
    options, _, _ = SR_CASES[label]
    r = sr_funnel(sr_input, overdispersion="none", **options)
    e = read_ref_csv(sr_dir / f"expected_units_{label}.csv")
    t = r.table.loc[e["group"]]
    for ours, theirs in zip(LIMITS, FPR_UNADJ_LIMITS):
        assert_rel(t[ours], e[theirs], RTOL_LIMIT, theirs)
    assert_flags(t["outlier_95"], e["outlier_unadj95"], "outlier_unadj95")
    assert_flags(t["outlier_998"], e["outlier_unadj998"], "outlier_unadj998")
    counts = sr_scalars[label]["n_outliers"]
    assert (t["outlier_95"].sum(), t["outlier_998"].sum()) == (counts["unadj95"], counts["unadj998"])


@pytest.mark.parametrize("label", SR_CASES)
@pytest.mark.parametrize("overdispersion, z_col, limit_cols, flag_prefix", [
    ("additive", "z_additive", DERIVED_ADD, "add"),
    ("multiplicative", "z_multiplicative", DERIVED_MULT, "mult"),
])
def test_sr_derived_limits(sr_dir, sr_input, label, overdispersion, z_col, limit_cols,
                           flag_prefix):
    """Formula-derived limits; for CQC these are the squared-back (correct) limits."""
    options, _, _ = SR_CASES[label]
    r = sr_funnel(sr_input, overdispersion=overdispersion, **options)
    d = read_ref_csv(sr_dir / f"derived_limits_{label}.csv")
    t = r.table.loc[d["group"]]
    assert_rel(t["value"], d["rr"], RTOL_STAT, "rr")
    assert_rel(t["s"], d["s"], RTOL_STAT, "s")
    assert_rel(t["z_adjusted"], d[z_col], RTOL_STAT, z_col)
    for ours, theirs in zip(LIMITS, limit_cols):
        assert_rel(t[ours], d[theirs], RTOL_LIMIT, theirs)
    assert_flags(t["outlier_95"], d[f"{flag_prefix}_out95"], f"{flag_prefix}_out95")
    assert_flags(t["outlier_998"], d[f"{flag_prefix}_out998"], f"{flag_prefix}_out998")


def test_transcribed_phi_shmi_default(sr_input, sr_transcribed):
    case = sr_transcribed["phi_SR_SHMI_default"]
    r = sr_funnel(sr_input, kind="ratio", trim=case["settings"]["trim_by"])
    assert round(r.phi, 6) == case["expected_round6"]


def test_transcribed_poisson_limits(sr_transcribed):
    case = sr_transcribed["poisson_limits_SR_unadjusted_target1"]
    lim = funnel_limits(case["denominator_expected"], 1.0, kind="ratio", overdispersion="none")
    assert list(np.round(lim["lower_95"], 7)) == case["ll95_round7"]
    assert list(np.round(lim["upper_95"], 6)) == case["ul95_round6"]
    assert list(np.round(lim["lower_998"], 7)) == case["ll998_round7"]
    assert list(np.round(lim["upper_998"], 6)) == case["ul998_round6"]
    # the log-scale (SHMI) and sqrt-scale (CQC) transforms share the same Poisson limits
    lim_sqrt = funnel_limits(case["denominator_expected"], 1.0, kind="ratio",
                             transform="sqrt", overdispersion="none")
    pd.testing.assert_frame_equal(lim, lim_sqrt)


def test_transcribed_group_aggregation(sr_transcribed):
    case = sr_transcribed["aggregate_rr"]
    r = funnel(case["numerator"], case["denominator"], kind="ratio", groups=case["group"])
    assert list(r.table.index) == ["a", "b", "c"]
    assert list(np.round(r.table["value"], 6)) == case["expected_rr_round6"]
    assert list(r.table["numerator"]) == [430, 209, 225]
    assert list(r.table["denominator"]) == [402, 195, 220]


def test_transcribed_outlier_rule(sr_transcribed):
    case = sr_transcribed["outlier_flagging"]
    rr = np.array(case["rr"])
    expected = case["expected"]
    assert_flags(outside_limits(rr, case["LCL95"], case["UCL95"]), expected["95_unadjusted"], "95")
    assert_flags(outside_limits(rr, case["OD95LCL"], case["OD95UCL"]), expected["95_adjusted"], "OD95")
    assert_flags(outside_limits(rr, case["LCL99"], case["UCL99"]), expected["99.8_unadjusted"], "99.8")
    assert_flags(outside_limits(rr, case["OD99LCL"], case["OD99UCL"]), expected["99.8_adjusted"],
                 "OD99.8")
    assert_flags(outside_limits(rr * 100, case["LCL95"], case["UCL95"]),
                 expected["95_unadjusted_multiplier100"], "multiplier 100")


# =========================================================================== behaviour

def overdispersed_panel(n_units=400, seed=7, p=0.8, sd_logit=0.35):
    """Binomial counts whose true proportions vary between units (over-dispersion)."""
    rng = np.random.default_rng(seed)
    n = rng.integers(50, 5000, n_units)
    logit = np.log(p / (1 - p)) + rng.normal(0, sd_logit, n_units)
    o = rng.binomial(n, 1 / (1 + np.exp(-logit)))
    return o, n


def ratio_panel(n_units=300, seed=11, sd_log=0.25):
    rng = np.random.default_rng(seed)
    e = rng.uniform(5, 400, n_units)
    o = rng.poisson(e * np.exp(rng.normal(0, sd_log, n_units)))
    return o, e


def test_api_contract_columns_and_types():
    o, n = overdispersed_panel(50)
    r = funnel(o, n, kind="proportion", transform=None, overdispersion="additive",
               trim=0.10, trim_method="winsorise")
    assert isinstance(r, FunnelResult)
    for attr in ("target", "phi", "tau2"):
        assert isinstance(getattr(r, attr), float)
    contract = ["z", "z_adjusted", "lower_95", "upper_95", "lower_998", "upper_998",
                "outlier_95", "outlier_998"]
    assert set(contract) <= set(r.table.columns)
    assert {"value", "y", "s"} <= set(r.table.columns)
    assert r.table["outlier_95"].dtype == bool and r.table["outlier_998"].dtype == bool
    assert len(r.table) == 50 and isinstance(r.table.index, pd.RangeIndex)


def test_result_is_frozen():
    o, n = overdispersed_panel(20)
    r = funnel(o, n)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.phi = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, message", [
    (dict(numerator=[1, -2, 3], denominator=[10, 10, 10]), r"numerator must not be negative"),
    (dict(numerator=[1, 2, 3], denominator=[10, -1, 10]), r"denominator must not be negative"),
    (dict(numerator=[1, 12, 3], denominator=[10, 10, 10]),
     r"numerator must not exceed denominator for a proportion: 12 > 10 at position 1"),
    (dict(numerator=[1, 2, 3, 4], denominator=[10, 0, 10, 10]),
     r"zero denominator with a positive numerator"),
    (dict(numerator=[1, 2, 3, 4], denominator=[10, 0, 10, 10], kind="ratio"),
     r"zero denominator \(expected count\) with a positive numerator"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], kind="rate"), r"unknown kind 'rate'"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], transform="logit"),
     r"unknown transform 'logit'"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], transform="log"),
     r"transform 'log' does not apply to kind='proportion'"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], kind="ratio", transform="arcsine"),
     r"transform 'arcsine' does not apply to kind='ratio'"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], overdispersion="both"),
     r"unknown overdispersion 'both'"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], trim_method="cut"),
     r"unknown trim_method 'cut'"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], trim=0.5), r"trim must be a number in \[0, 0.5\)"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10]), r"length mismatch: numerator has 3 values, denominator has 2"),
    (dict(numerator=[1, 2, np.nan, 4], denominator=[10, 10, 10, np.nan]),
     r"at least 3 units with a numerator and a positive denominator are needed, got 2"),
    (dict(numerator=[1, 2], denominator=[10, 10]), r"at least 3 units .* got 2"),
    (dict(numerator=[[1, 2], [3, 4]], denominator=[[10, 10], [10, 10]]), r"numerator must be one-dimensional"),
    (dict(numerator=["a", "b", "c"], denominator=[10, 10, 10]), r"numerator must contain numbers"),
    (dict(numerator=[1, np.inf, 3], denominator=[10, 10, 10]), r"numerator must be finite"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], groups=["a", "b"]), r"length mismatch: groups"),
    (dict(numerator=[1, 2, 3], denominator=[10, 10, 10], groups=["a", None, "b"]),
     r"groups must not contain missing labels"),
])
def test_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        funnel(**kwargs)


def test_series_with_different_indexes_rejected():
    with pytest.raises(ValueError, match="different indexes"):
        funnel(pd.Series([1, 2, 3], index=[1, 2, 3]), pd.Series([10, 10, 10], index=[3, 2, 1]))


def test_missing_and_zero_denominators_keep_rows():
    o, n = overdispersed_panel(60, seed=3)
    num = o.astype(float)
    den = n.astype(float)
    den[[4, 17]] = np.nan        # missing denominators
    num[[30]] = np.nan           # missing numerator
    num[[45]], den[[45]] = 0, 0  # empty unit 0/0
    bad = [4, 17, 30, 45]
    r = funnel(num, den)
    t = r.table
    assert len(t) == 60 and list(t.index) == list(range(60))
    stats_cols = ["value", "y", "s", "z", "z_trimmed", "z_adjusted", *LIMITS]
    assert t.loc[bad, stats_cols].isna().all().all()
    assert not t.loc[bad, ["outlier_95", "outlier_998", "trimmed"]].any().any()
    assert r.n_units == 56
    good = [i for i in range(60) if i not in bad]
    ref = funnel(num[good], den[good])
    assert r.phi == ref.phi and r.tau2 == ref.tau2 and r.target == ref.target
    np.testing.assert_array_equal(t.loc[good, stats_cols].to_numpy(),
                                  ref.table[stats_cols].to_numpy())
    np.testing.assert_array_equal(t.loc[good, "outlier_95"], ref.table["outlier_95"])


def test_missing_values_as_none_and_nullable_series():
    num = pd.Series([5, None, 7, 8, 9], dtype="Int64")
    den = pd.Series([10, 10, 10, 10, 10], dtype="Int64")
    r = funnel(num, den)
    assert np.isnan(r.table.loc[1, "z"]) and r.n_units == 4
    r2 = funnel([5, None, 7, 8, 9], [10, 10, 10, 10, 10])
    pd.testing.assert_frame_equal(r.table, r2.table)


def test_input_order_preserved():
    o, n = overdispersed_panel(80, seed=5)
    r = funnel(o, n)
    perm = np.random.default_rng(1).permutation(80)
    rp = funnel(o[perm], n[perm])
    assert rp.phi == pytest.approx(r.phi, rel=1e-12)
    assert rp.tau2 == pytest.approx(r.tau2, rel=1e-12)
    cols = ["value", "z", "z_adjusted", *LIMITS]
    np.testing.assert_allclose(rp.table[cols].to_numpy(), r.table[cols].to_numpy()[perm], rtol=1e-12)
    np.testing.assert_array_equal(rp.table["outlier_95"], r.table["outlier_95"].to_numpy()[perm])


def test_series_index_kept_and_input_types_agree():
    o, n = overdispersed_panel(30, seed=9)
    index = pd.Index([f"SIRET{i:03d}" for i in range(30)], name="service_id")
    r_series = funnel(pd.Series(o, index=index), pd.Series(n, index=index))
    assert r_series.table.index.equals(index)
    r_mixed = funnel(pd.Series(o, index=index), list(n))
    assert r_mixed.table.index.equals(index)
    r_list = funnel(list(o), list(n))
    r_array = funnel(np.asarray(o), np.asarray(n))
    pd.testing.assert_frame_equal(r_list.table, r_array.table)
    np.testing.assert_array_equal(r_series.table.to_numpy(), r_list.table.to_numpy())


def test_groups_aggregate_in_first_appearance_order():
    num = [10, 5, np.nan, 7, 3, 4]
    den = [100, 50, 60, 70, 30, 40]
    labels = ["b", "a", "a", "c", "b", "d"]
    r = funnel(num, den, groups=labels)
    t = r.table
    assert list(t.index) == ["b", "a", "c", "d"] and t.index.name == "group"
    assert list(t["numerator"]) == [13, 5, 7, 4]
    assert list(t["denominator"]) == [130, 50, 70, 40]  # the incomplete row is left out
    assert r.target == pytest.approx(29 / 290)


def test_proportion_extremes_are_finite():
    o = np.array([0, 50, 100, 30, 70, 45, 55])
    n = np.array([100] * 7)
    r = funnel(o, n)
    assert np.isfinite(r.table["z"]).all()
    assert r.table.loc[0, "y"] == 0 and r.table.loc[2, "y"] == pytest.approx(np.pi / 2)
    assert ((r.table[list(LIMITS)] >= 0) & (r.table[list(LIMITS)] <= 1)).all().all()


def test_ratio_zero_count_on_log_scale_is_truncated_and_flagged():
    o, e = ratio_panel(100, seed=2)
    o[10] = 0
    r = funnel(o, e, kind="ratio")
    row = r.table.loc[10]
    assert row["z"] == -np.inf and row["y"] == -np.inf and row["value"] == 0
    assert row["trimmed"] and np.isnan(row["z_trimmed"])
    assert np.isfinite(r.phi) and np.isfinite(r.tau2)
    assert row["outlier_95"] and row["outlier_998"] and row["z_adjusted"] == -np.inf
    # ranks 1-10 (floor(r*10/101) = 0) and 91-100 (>= 9) are truncated
    assert r.n_used == 80 and int(r.table["trimmed"].sum()) == 20


def test_ratio_zero_count_in_tiny_panel_keeps_phi_finite():
    r = funnel([0, 12, 9, 15, 11], [10, 10, 10, 10, 10], kind="ratio")
    assert r.table.loc[0, "z"] == -np.inf and not r.table.loc[0, "trimmed"]
    assert r.n_used == 4 and np.isfinite(r.phi)


def test_truncation_rank_rule_n300():
    z = np.random.default_rng(0).normal(size=300)
    zt, dropped = truncate(z, 0.1)
    ranks = pd.Series(z).rank().to_numpy()
    assert dropped.sum() == 60
    np.testing.assert_array_equal(dropped, (ranks <= 30) | (ranks >= 271))
    assert np.isnan(zt[dropped]).all() and (zt[~dropped] == z[~dropped]).all()


def test_winsorise_type7_quantiles():
    z = np.arange(1.0, 11.0)  # 1..10
    assert quantile_type7(z, [0.1, 0.9]).tolist() == pytest.approx([1.9, 9.1])
    np.testing.assert_allclose(quantile_type7(z, [0.1, 0.37, 0.9]),
                               np.quantile(z, [0.1, 0.37, 0.9], method="linear"), rtol=1e-15)
    zw, changed = winsorise(z, 0.1)
    assert zw[0] == pytest.approx(1.9) and zw[-1] == pytest.approx(9.1)
    assert changed.tolist() == [True] + [False] * 8 + [True]
    assert quantile_type7(np.array([-np.inf, 1.0, 2.0]), 0.1)[0] == -np.inf


@pytest.mark.parametrize("kind, transform", [("proportion", "arcsine"), ("ratio", "log"),
                                             ("ratio", "sqrt")])
@pytest.mark.parametrize("overdispersion", ["none", "multiplicative", "additive"])
def test_limits_widen_monotonically_with_smaller_denominators(kind, transform, overdispersion):
    target = 0.8 if kind == "proportion" else 1.0
    den = np.geomspace(1, 1e6, 400)
    lim = funnel_limits(den, target, kind=kind, transform=transform, tau2=0.002, phi=2.5,
                        overdispersion=overdispersion)
    assert np.all(np.diff(lim["lower_95"]) >= 0) and np.all(np.diff(lim["lower_998"]) >= 0)
    assert np.all(np.diff(lim["upper_95"]) <= 0) and np.all(np.diff(lim["upper_998"]) <= 0)
    assert np.all(lim["lower_998"] <= lim["lower_95"]) and np.all(lim["lower_95"] <= target)
    assert np.all(lim["upper_95"] >= target) and np.all(lim["upper_998"] >= lim["upper_95"])
    assert (lim[list(LIMITS)] >= 0).all().all()
    if kind == "proportion":
        assert (lim[list(LIMITS)] <= 1).all().all()
    if overdispersion == "additive" and transform == "log":
        # tau2 keeps a floor under the width: log(upper/lower) -> 2 z sqrt(tau2)
        width = np.log(lim["upper_95"] / lim["lower_95"]).to_numpy()
        assert width[-1] == pytest.approx(2 * Z95 * np.sqrt(0.002 + 1e-6), rel=1e-9)


def test_cqc_limits_are_squared_back_and_clipped():
    lim = funnel_limits([100.0, 0.5], 1.0, kind="ratio", transform="sqrt", tau2=0.01,
                        overdispersion="additive")
    sd = np.sqrt((1 / (2 * np.sqrt(100))) ** 2 + 0.01)
    assert lim.loc[0, "lower_95"] == pytest.approx((1 - Z95 * sd) ** 2, rel=1e-12)
    assert lim.loc[0, "upper_998"] == pytest.approx((1 + Z998 * sd) ** 2, rel=1e-12)
    assert lim.loc[1, "lower_95"] == 0.0  # 1 - z sd < 0 on the sqrt scale: clipped, not folded


def test_funnel_limits_missing_and_invalid():
    lim = funnel_limits(pd.Series([np.nan, 0, 50], index=list("xyz")), 0.5)
    assert list(lim.index) == list("xyz")
    assert lim.loc[["x", "y"], list(LIMITS)].isna().all().all()
    assert lim.loc["z", list(LIMITS)].notna().all()
    with pytest.raises(ValueError, match="target must be"):
        funnel_limits([10], 1.5)
    with pytest.raises(ValueError, match="denominators must not be negative"):
        funnel_limits([-1], 0.5)
    with pytest.raises(ValueError, match="tau2 must be"):
        funnel_limits([10], 0.5, tau2=-1)


def test_result_limits_redraw_the_table_limits():
    for kind, (o, n) in (("proportion", overdispersed_panel(200)), ("ratio", ratio_panel(200))):
        r = funnel(o, n, kind=kind)
        redrawn = r.limits(r.table["denominator"])
        np.testing.assert_allclose(redrawn[list(LIMITS)].to_numpy(),
                                   r.table[list(LIMITS)].to_numpy(), rtol=1e-14)


def test_overdispersion_adjustment_flags_far_fewer_units():
    o, n = overdispersed_panel(400, seed=21)
    none = funnel(o, n, overdispersion="none")
    additive = funnel(o, n, overdispersion="additive")
    multiplicative = funnel(o, n, overdispersion="multiplicative")
    assert additive.phi > 3 and additive.tau2 > 0 and additive.adjusted
    n_none = int(none.table["outlier_95"].sum())
    n_add = int(additive.table["outlier_95"].sum())
    assert n_none > 150
    assert n_add < 0.25 * n_none and n_add <= 0.15 * len(o)
    assert multiplicative.table["outlier_95"].sum() < n_none
    np.testing.assert_allclose(multiplicative.table["z_adjusted"],
                               multiplicative.table["z"] / np.sqrt(multiplicative.phi))
    s, y = additive.table["s"], additive.table["y"]
    np.testing.assert_allclose(additive.table["z_adjusted"],
                               (y - additive.target_transformed) / np.sqrt(s**2 + additive.tau2))


def test_no_overdispersion_falls_back_to_unadjusted_limits():
    n = np.arange(100, 5100, 100)
    o = np.round(0.3 * n) + np.tile([0, 1, -1, 0, 2], 10)  # almost no spread: phi < 1
    r = funnel(o, n)
    assert r.phi < 1 and r.tau2 == 0.0 and r.adjustment == "none" and not r.adjusted
    unadjusted = funnel(o, n, overdispersion="none")
    pd.testing.assert_frame_equal(r.table, unadjusted.table)
    np.testing.assert_array_equal(r.table["z_adjusted"], r.table["z"])
    # ratios fall back to the exact Poisson limits
    rr = funnel(o, n * 0.3, kind="ratio")
    assert rr.adjustment == "none"
    poisson = funnel_limits(n * 0.3, 1.0, kind="ratio", overdispersion="none")
    np.testing.assert_allclose(rr.table[list(LIMITS)].to_numpy(), poisson[list(LIMITS)].to_numpy())


def test_winsorize_spelling_accepted():
    o, n = overdispersed_panel(40)
    a = funnel(o, n, trim_method="winsorize")
    b = funnel(o, n, trim_method="winsorise")
    assert a.trim_method == "winsorise" and a.phi == b.phi


def test_summary_text():
    o, n = overdispersed_panel(120)
    r = funnel(o, n)
    text = r.summary()
    assert isinstance(text, str) and "phi" in text and "tau2" in text
    assert f"{int(r.table['outlier_95'].sum())} units" in text
    assert "arcsine" in text and "additive" in text


@pytest.mark.timeout(120)     # a guard against a hang; make bench prints the time
def test_100_funnels_of_20000_units_score_every_unit_and_see_the_overdispersion():
    from fixtures.harness.bench import funnel_panels

    for kind, o, n in funnel_panels():
        r = funnel(o, n, kind=kind)
        assert len(r.table) == 20000 and r.table["z"].notna().all()
        assert r.phi > 1 and r.tau2 > 0 and r.adjusted     # rates drawn between 0.6 and 0.9
