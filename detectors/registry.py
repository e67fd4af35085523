"""The registry of detectors run by ``detect``, in order (data quality first)."""
from __future__ import annotations

from detectors.base import Detector
from detectors.multivariate import MultivariateOutlier
from detectors.peer import PeerOutlier
from detectors.temporal import TemporalDrift
from detectors.quality import FrequencyMismatch, MissingReports, RejectedValues, SizeJumps
from detectors.rules import AgrementCertification, LegalThresholds

DATA_QUALITY: list[type[Detector]] = [RejectedValues, MissingReports, SizeJumps, FrequencyMismatch]
STATISTICAL: list[type[Detector]] = [PeerOutlier, TemporalDrift, MultivariateOutlier]
RULES: list[type[Detector]] = [LegalThresholds, AgrementCertification]
ALL: list[type[Detector]] = DATA_QUALITY + RULES + STATISTICAL


def default_detectors() -> list[Detector]:
    return [cls() for cls in ALL]
