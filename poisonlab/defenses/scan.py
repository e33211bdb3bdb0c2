"""Scan a training set for poisons: proxy-model evidence, a detector, a report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors import DETECTORS, Detector, calibrate_by_class, flag_top
from poisonlab.defenses.evidence import compute_evidence
from poisonlab.defenses.evidence_cache import shared_evidence
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
    #: each sample's out-of-sample predicted label, in the data's label space (cleanlab's
    #: ``predicted_label`` beside the ``given_label``); ``None`` for regression data
    predicted_labels: np.ndarray | None = None
    #: groups of relabelled samples that ``relabelled_groups`` (alone or within ``auto``)
    #: accepted, one dict each: ``class`` (the label they carry), ``rows`` (indices),
    #: ``voted_into`` (label -> members whose neighbours, the group left out, vote for it)
    #: and ``shared_values`` (for tabular rows: each column whose values the group shares,
    #: with their range, ``{"column", "low", "high"}``: a trigger's values)
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_flagged(self) -> int:
        return int(self.flags.sum())

    @property
    def label_agreement(self) -> float | None:
        """Share of rows whose out-of-sample predicted label is the given one (None for regression).

        Low agreement means many labels are wrong or the classes overlap; where
        they overlap, clean rows disagree with any model too, and label-based flags
        there are less reliable.
        """
        if self.predicted_labels is None:
            return None
        return float(np.mean(self.predicted_labels == self.dataset.original_labels()))

    @property
    def flagged(self) -> np.ndarray:
        """Indices of the flagged rows, in input order."""
        return np.flatnonzero(self.flags)

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per sample: id, labels, score, flag, and each detector's flag."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "id": self.dataset.ids,
                "given_label": self.dataset.original_labels(),
                "predicted_label": self.predicted_labels,
                "score": self.scores,
                "flagged": self.flags,
            }
        )
        for name, (_, flags) in self.per_detector.items():
            frame[f"flagged_by_{name}"] = flags
        return frame

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
            "given_labels": self.dataset.original_labels().tolist(),
            "predicted_labels": None if self.predicted_labels is None else self.predicted_labels.tolist(),
            "label_agreement": self.label_agreement,
            "detectors": {
                name: {"scores": s.tolist(), "flags": np.flatnonzero(f).tolist()}
                for name, (s, f) in self.per_detector.items()
            },
            "groups": self.groups,
        }


def scan(
    dataset: Dataset,
    *,
    detector: str = "auto",
    contamination: float | None = None,
    features: np.ndarray | None = None,
    random_state: int = 0,
    params: Mapping[str, Any] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScanReport:
    """Find the samples of ``dataset`` most likely to be poisoned, without knowing the rate.

    ``contamination=None`` uses the detector's own automatic rule; a fraction flags
    that share of the highest scores instead. ``params`` are the detector's own
    hyperparameters (``random_state`` is ``random_state``'s). ``on_progress`` is
    called with a one-line description of each stage as it starts (a scan of a few
    thousand images takes a minute or more). Classification data are scanned on a
    proxy model's evidence (:func:`compute_evidence`, or the user's ``features``);
    regression detectors read ``X`` and ``y`` themselves (robust linear fits on the
    unit box, a sample's score its absolute residual).
    """
    what = f"dataset {dataset.name!r} ({dataset.task})"
    entry = DETECTORS.require(detector, what, tasks=dataset.task)
    if entry.tag("needs_sources") and dataset.source is None:
        raise DataError(f"detector {detector!r} judges sources; {dataset.name} has no per-sample source")
    det: Detector = entry.create(**{**_seeded(entry.parameters(), random_state), **(params or {})})
    evidence = None
    if dataset.is_regression:
        if features is not None:
            raise ConfigError("--features applies to classification data; regression scans read X and y")
    elif features is None:  # in a grid, the cell's other defenses reuse this proxy fit
        evidence = shared_evidence(dataset, random_state=random_state, on_progress=on_progress)
    else:
        evidence = compute_evidence(
            dataset,
            features=features,
            random_state=random_state,
            on_progress=on_progress,
            losses="losses" in entry.tag("needs"),
        )
    if on_progress is not None:
        on_progress(f"running detector {detector} on {len(dataset)} samples")
    det.fit(dataset, evidence)
    scores = det.score_samples()
    if contamination is None:
        flags = det.auto_flags()
    else:
        # a fixed share ranks per-class scores on one scale, so flags may gather in one class
        ranked = calibrate_by_class(scores, dataset.y) if entry.tag("class_scores") else scores
        flags = flag_top(ranked, contamination)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = getattr(det, "parts_", None)
    per = dict(parts) if parts is not None else {detector: (scores, flags)}
    predicted = None
    if evidence is not None and evidence.pred_probs is not None:
        predicted = dataset.original_labels(np.argmax(evidence.pred_probs, axis=1))
    finder = det if hasattr(det, "members_") else getattr(det, "group_finder_", None)
    groups = [] if finder is None else group_findings(dataset, finder)
    return ScanReport(dataset, detector, contamination, scores, flags, per, predicted, groups)


def describe_group(group: dict[str, Any]) -> tuple[str, str]:
    """One of :attr:`ScanReport.groups` as text: where its rows are voted, and the values they share.

    For example ``("3: 8, 5: 6", "column 0 = -27.84; dose = 1..2")``; ``"—"`` when the
    group shares no values (images).
    """
    votes = sorted(group["voted_into"].items(), key=lambda kv: -kv[1])
    shared = "; ".join(
        (f"column {item['column']}" if isinstance(item["column"], int) else str(item["column"]))
        + f" = {item['low']:.4g}"
        + ("" if item["high"] == item["low"] else f"..{item['high']:.4g}")
        for item in group["shared_values"]
    )
    return ", ".join(f"{label}: {n}" for label, n in votes), shared or "—"


def group_findings(dataset: Dataset, finder: Any) -> list[dict[str, Any]]:
    """The groups a fitted ``relabelled_groups`` accepted, in the data's own labels and units."""
    labels = np.asarray(dataset.classes)
    names = dataset.feature_names
    out = []
    for c, members in sorted(finder.members_.items()):
        shared = []
        for j in finder.shared_columns_.get(c, np.empty(0, dtype=np.int64)):
            values = dataset.X[members, j]
            column = names[j] if names else int(j)
            shared.append({"column": column, "low": float(values.min()), "high": float(values.max())})
        out.append(
            {
                "class": labels[c].item(),
                "rows": members.tolist(),
                "voted_into": {str(labels[k].item()): m for k, m in finder.voted_into_.get(c, {}).items()},
                "shared_values": shared,
            }
        )
    return out


def _seeded(parameters: dict[str, Any], random_state: int) -> dict[str, Any]:
    return {"random_state": random_state} if "random_state" in parameters else {}
