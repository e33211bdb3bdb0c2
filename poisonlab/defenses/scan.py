"""Scan a training set for poisons: proxy-model evidence, a detector, a report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors import DETECTORS, AutoDetector, Detector, flag_top
from poisonlab.defenses.evidence import compute_evidence
from poisonlab.defenses.regression import METHODS, robust_fit, unit_box
from poisonlab.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class ScanReport:
    """What a scan found; ``flags`` and ``scores`` are in the input's row order."""

    dataset: Dataset
    detector: str
    contamination: float | None
    scores: np.ndarray
    flags: np.ndarray
    per_detector: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (scores, flags)

    @property
    def n_flagged(self) -> int:
        return int(self.flags.sum())

    def agreeing(self, row: int) -> list[str]:
        """Names of the detectors that flag ``row``."""
        return [name for name, (_, flags) in self.per_detector.items() if flags[row]]

    def to_json(self) -> dict[str, Any]:
        ids = self.dataset.ids
        return {
            "dataset": self.dataset.name,
            "n_samples": len(self.dataset),
            "detector": self.detector,
            "contamination": self.contamination if self.contamination is not None else "auto",
            "n_flagged": self.n_flagged,
            "flagged_indices": np.flatnonzero(self.flags).tolist(),
            "flagged_ids": ids[self.flags].tolist(),
            "ids": ids.tolist(),
            "scores": self.scores.tolist(),
            "detectors": {
                name: {"scores": s.tolist(), "flags": np.flatnonzero(f).tolist()}
                for name, (s, f) in self.per_detector.items()
            },
        }


def scan(
    dataset: Dataset,
    *,
    detector: str = "auto",
    contamination: float | None = None,
    features: np.ndarray | None = None,
    random_state: int = 0,
) -> ScanReport:
    """Find the samples of ``dataset`` most likely to be poisoned, without knowing the rate.

    ``contamination=None`` uses the detector's own automatic rule; a fraction flags
    that share of the highest scores instead. Regression data go to the
    residual-based detectors (:func:`scan_regression`).
    """
    if dataset.is_regression:
        if features is not None:
            raise ConfigError("--features applies to classification data; regression scans read X and y")
        return scan_regression(
            dataset, detector=detector, contamination=contamination, random_state=random_state
        )
    if detector in METHODS:
        raise ConfigError(
            f"detector {detector} is for regression data; {dataset.name} is a classification dataset"
        )
    entry = DETECTORS.get(detector)
    det: Detector = entry.create(**_seeded(entry.parameters(), random_state))
    evidence = compute_evidence(dataset, features=features, random_state=random_state)
    det.fit(dataset, evidence)
    scores = det.score_samples()
    flags = det.auto_flags() if contamination is None else flag_top(scores, contamination)
    if isinstance(det, AutoDetector):
        per = dict(det.parts_)
    else:
        per = {detector: (scores, flags)}
    return ScanReport(dataset, detector, contamination, scores, flags, per)


def scan_regression(
    dataset: Dataset, *, detector: str = "auto", contamination: float | None = None, random_state: int = 0
) -> ScanReport:
    """Scan a regression training set with robust linear fits; ``auto`` is TRIM with an estimated rate.

    Features and response are scaled to ``[0, 1]``; a sample's score is its
    absolute residual under the detector's robust fit, and its flag is that fit's
    rejection (TRIM's trimmed rows, RANSAC's outliers, Huber's outliers, or a
    residual robust z-score above 3.5). ``auto`` also reports the residual detector.
    """
    if detector != "auto" and detector not in METHODS:
        raise ConfigError(
            f"detector {detector!r} is not for regression data; use auto or one of {', '.join(METHODS)}"
        )
    if len(dataset) < dataset.n_features + 2:
        raise DataError(
            f"{dataset.name}: {len(dataset)} samples are too few for {dataset.n_features} features"
        )
    X, y = unit_box(dataset.X, dataset.y)
    names = ("trim", "residual") if detector == "auto" else (detector,)
    per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        kept, residuals = robust_fit(name, X, y, random_state=random_state)
        per[name] = (residuals, ~kept)
    scores, flags = per[names[0]]
    if contamination is not None:
        flags = flag_top(scores, contamination)
    return ScanReport(dataset, detector, contamination, scores, flags, per)


def _seeded(parameters: dict[str, Any], random_state: int) -> dict[str, Any]:
    return {"random_state": random_state} if "random_state" in parameters else {}
