"""The structural test of the peer detector: a service persistently beyond its peers is more
certain than one period says, when its periods' deviations are independent."""
from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.peer import PeerConfig, persistent_flags, structural_z


def _frame(z: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(z, index=pd.Index(range(z.shape[0]), name="month_index"),
                        columns=pd.Index([f"s{i:03d}" for i in range(z.shape[1])], name="service_id"))


def test_independent_noise_a_persistent_shift_gains_sqrt_window():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((24, 200))
    z[:, 0] += 3.5                                 # 3.5 sigma every period: never > 4.08 alone often
    zs = structural_z(_frame(z), 3)
    assert np.nanmedian(zs.iloc[3:, 0]) > 5.0      # about 3.5 * sqrt(3)
    others = zs.iloc[3:, 1:].to_numpy().ravel()
    assert 0.9 < 1.4826 * np.median(np.abs(others - np.median(others))) < 1.1
    flags = persistent_flags(_frame(z), PeerConfig())
    single = persistent_flags(_frame(z), PeerConfig(structural_window=1))
    assert flags.iloc[:, 0].sum() > single.iloc[:, 0].sum()
    # in control the structural test adds (almost) nothing
    assert flags.iloc[:, 1:].to_numpy().sum() <= single.iloc[:, 1:].to_numpy().sum() + 2


def test_persistent_heterogeneity_gains_nothing():
    """Services that differ for good (real heterogeneity, no period noise): the mean of three
    periods is one period's z, so a service in the tail is not made more certain."""
    rng = np.random.default_rng(2)
    level = rng.standard_normal(200)
    z = np.tile(level, (24, 1)) + 0.05 * rng.standard_normal((24, 200))
    zs = structural_z(_frame(z), 3)
    ratio = zs.iloc[5:].to_numpy() / z[5:]
    big = np.abs(z[5:]) > 1
    assert np.allclose(np.median(ratio[big]), 1.0, atol=0.1)


def test_one_extreme_period_is_still_not_an_alert():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((12, 100))
    z[8, 0] = 15.0                                  # one period, far out
    flags = persistent_flags(_frame(z), PeerConfig())
    assert not flags.iloc[8, 0]
    z[9, 0] = 3.5                                   # and beyond 99.8 % the next period
    flags = persistent_flags(_frame(z), PeerConfig())
    assert flags.iloc[9, 0]
