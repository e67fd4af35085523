"""Every statistical threshold comes from the alert budget, and what the docs say of it is true."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from scipy.stats import norm

from detectors import budget
from detectors.multivariate import MultivariateConfig
from detectors.peer import PeerConfig
from detectors.temporal import TemporalConfig

ROOT = Path(__file__).resolve().parents[1]


def test_thresholds_follow_the_budget_and_the_number_of_tests():
    peer, temporal, multi = PeerConfig(), TemporalConfig(), MultivariateConfig()
    assert len(peer.indicators) == 9 and len(temporal.indicators) == 11
    assert peer.limit_z == pytest.approx(norm.isf(0.02 / 100 / 9))
    assert temporal.spike_z == pytest.approx(norm.isf(0.02 / 100 / 11))
    assert temporal.arl0 == pytest.approx(55_000)
    assert multi.limit_z == pytest.approx(norm.isf(0.02 / 100))
    # a smaller budget or more tests raise every threshold; fewer indicators lower it
    assert PeerConfig(budget=0.01).limit_z > peer.limit_z
    assert PeerConfig(robust_indicators=()).limit_z < peer.limit_z
    assert TemporalConfig(budget=0.01).h > temporal.h
    # every finding cites the derived thresholds with the configuration
    assert peer.to_dict()["limit_z"] == peer.limit_z and temporal.to_dict()["arl0"] == temporal.arl0
    with pytest.raises(ValueError):
        budget.budget_z(0.0, 3)


def _documented(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    assert m, f"not documented: {pattern}"
    return float(m.group(1).replace(",", ""))


@pytest.mark.parametrize("doc", ["detectors/budget.py", "README.md"])
def test_the_documented_thresholds_are_the_computed_ones(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert _documented(text, r"peer[^\n]*?z > ([0-9]+\.[0-9]+)") == pytest.approx(PeerConfig().limit_z, abs=0.005)
    assert _documented(text, r"large-residual[^\n]*?z > ([0-9]+\.[0-9]+)") == pytest.approx(TemporalConfig().spike_z,
                                                                                       abs=0.005)
    assert _documented(text, r"multivariate[^\n]*?z > ([0-9]+\.[0-9]+)") == pytest.approx(MultivariateConfig().limit_z,
                                                                                    abs=0.005)
    assert _documented(text, r"([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+) months per series") == pytest.approx(TemporalConfig().arl0)

