"""The false-alert calibration itself: on in-control panels (no event at all, so every
statistical alert is a false one) of several noise kinds and report frequencies, the whole
detection must stay within the false-alert ceilings the README states (per 100 services per
period: 0.2 a month, 0.6 a quarter, 2.4 a year).

The panels are generated here with another size and length than the bundled fixtures, in the
base model and in the noisier one (over-dispersed counts, each service's own seasonal
amplitude, heavy-tailed delays, rounded FTE, a larger wander), and aggregated to quarters and
years: thresholds that held only on the fixtures would fail here."""
from __future__ import annotations

import pytest

from fixtures.harness.evaluation import FALSE_ALERT_CEILING, in_control

N_SERVICES, N_MONTHS, SEED = 150, 48, 5


CASES = [(style, freq) for style in ("base", "noisy") for freq in ("M", "Q", "Y")]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("style,frequency", CASES)
def test_false_alert_rate_within_ceiling_on_in_control_panels(style, frequency, tmp_path):
    cal = in_control(SEED, style, frequency, N_SERVICES, N_MONTHS, workdir=tmp_path)
    assert cal.frequency == frequency
    # complete periods only: 48 months ending in September hold 16 quarters and 3 whole years
    assert cal.n_periods == {"M": 48, "Q": 16, "Y": 3}[frequency]
    assert cal.rate <= FALSE_ALERT_CEILING[frequency], (
        f"{style} {frequency}: {cal.statistical} false alerts = {cal.rate:.3f} per 100 services per period "
        f"(ceiling {FALSE_ALERT_CEILING[frequency]}); by detector {cal.by_detector}")
    # no fault was injected: a data-quality alert on this panel would be a false one too
    assert cal.data_quality == 0


def test_in_control_panel_has_no_event():
    from fixtures.generate import generate

    panel = generate(seed=SEED, n_services=40, n_months=24, events=False)
    assert panel.labels.empty or not panel.labels["kind"].isin(["drift", "structural", "fault"]).any()
    with_events = generate(seed=SEED, n_services=40, n_months=24)
    assert with_events.labels["kind"].isin(["drift", "structural", "fault"]).any()
