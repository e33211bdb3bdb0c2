"""``auto``: combine specialist detectors, each silent on clean data, into one scan."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.defenses.detectors.clustering import ActivationClustering
from poisonlab.defenses.detectors.label_noise import ConfidentLearning, KNNLabelDisagreement


def rank_scores(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to their rank percentile in [0, 1] (ties share the mean rank)."""
    from scipy.stats import rankdata

    return (rankdata(scores) - 1) / max(scores.shape[0] - 1, 1)


class AutoDetector(Detector):
    """Union of a backdoor specialist and a label-noise specialist; needs no poison rate.

    Poisons show up in different evidence depending on the attack, so no single
    score serves both families. Backdoor poisons keep a consistent (target) label
    and form their own cluster inside the target class; flipped labels sit among
    neighbours of another class. ``auto`` therefore flags the union of

    - **backdoor**: activation clustering with exclusionary reclassification, which
      flags a cluster only when a model that never saw it assigns it elsewhere;
    - **label noise**: confident learning on cross-fitted probabilities *and* a k-NN
      majority in representation space — both must agree, because each alone flags
      a few genuinely ambiguous clean samples.

    Each part is built to stay silent on clean data, so the union does too, while
    covering both families. A backdoor targets one class (or a few): when activation
    clustering finds split clusters in more than ``max(1, K // 4)`` of the K classes,
    the splits come from label noise spread over every class, not from a trigger,
    and only the label-noise specialist's flags are kept.

    The score, for ranking and ROC analysis, is the mean rank percentile of the
    three detectors' scores.
    """

    needs = ("pred_probs",)

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        self.members_: dict[str, Detector] = {
            "activation_clustering": ActivationClustering(random_state=self.random_state),
            "confident_learning": ConfidentLearning(),
            "knn_label": KNNLabelDisagreement(),
        }
        for detector in self.members_.values():
            detector.fit(dataset, evidence)
        return np.mean([rank_scores(d.score_samples()) for d in self.members_.values()], axis=0)

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        m = {name: d.auto_flags() for name, d in self.members_.items()}
        label_noise = m["confident_learning"] & m["knn_label"]
        n_split = np.unique(dataset.y[m["activation_clustering"]]).size
        if n_split > max(1, dataset.n_classes // 4):
            return label_noise
        return m["activation_clustering"] | label_noise
