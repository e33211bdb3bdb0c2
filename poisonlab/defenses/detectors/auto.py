"""``auto``: combine specialist detectors, each silent on clean data, into one scan."""

from __future__ import annotations

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Detector, Evidence
from poisonlab.defenses.detectors.clustering import SeparatedClusters
from poisonlab.defenses.detectors.groups import RelabelledGroups
from poisonlab.defenses.detectors.label_noise import ConfidentLearning, KNNLabelDisagreement
from poisonlab.defenses.detectors.regression import ResidualDetector, TRIMDetector


def rank_scores(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to their rank percentile in [0, 1] (ties share the mean rank)."""
    from scipy.stats import rankdata

    return (rankdata(scores) - 1) / max(scores.shape[0] - 1, 1)


class AutoDetector(Detector):
    """Union of three specialists, each silent on clean data; needs no poison rate.

    Poisons show up in different evidence depending on the attack, so no single
    score serves every family. ``auto`` flags the union of:

    - **label noise**: a k-NN majority in the label-free view says the label is
      wrong *and* so does the out-of-sample model through confident learning.
      Each witness alone flags a few genuinely ambiguous clean samples; together
      they are quiet on clean data. The relabelled groups' members (below) are
      left out of every k-NN neighbourhood: their wrong labels would vote against
      the clean samples of their true class. ``max_own_prob`` > 0 also accepts, as the
      second witness, an out-of-sample probability below it for the given label
      (off by default).
    - **relabelled groups**
      (:class:`~poisonlab.defenses.detectors.groups.RelabelledGroups`): a block of
      samples inside one class that shares a feature in the proxy's
      representations and, once removed, is voted into other classes. This is
      the signature of a dirty-label backdoor or targeted relabelling at any rate
      from about 1%, whatever the trigger; cross-fitted probabilities cannot see
      it, because every fold learns the trigger from the other poisons.
    - **separated clusters**
      (:class:`~poisonlab.defenses.detectors.clustering.SeparatedClusters`): a
      class split in two by a wide gap in the early activations, the cluster that
      no other class resembles along the split flagged. This is the signature of
      a clean-label backdoor whose poisons carry the trigger and keep their
      labels (label-consistent), which the two label-based specialists cannot
      see.

    On regression data ``auto`` is TRIM with the poison rate estimated
    (:class:`~poisonlab.defenses.detectors.regression.TRIMDetector`), its trimmed
    rows flagged, with the residual detector reported beside it.

    The score, for ranking and ROC analysis, puts every flagged sample above every
    unflagged one, and orders within each group by the mean rank percentile of the
    members' scores.
    """

    tasks = ("classification", "regression")
    needs = ("pred_probs",)
    min_samples = 10

    def __init__(self, *, max_own_prob: float = 0.0, random_state: int = 0) -> None:
        self.max_own_prob = max_own_prob
        self.random_state = random_state

    def _score(self, dataset: Dataset, evidence: Evidence) -> np.ndarray:
        if dataset.is_regression:
            return self._score_regression(dataset)
        assert evidence.pred_probs is not None  # guaranteed by `needs`
        y = dataset.y
        groups = RelabelledGroups(random_state=self.random_state)
        group_scores = np.zeros(len(dataset))
        self.groups_ = np.zeros(len(dataset), dtype=bool)
        #: the fitted group finder, whose accepted groups a scan report describes
        self.group_finder_: RelabelledGroups | None = None
        if len(dataset) >= groups.min_samples:
            groups.fit(dataset, evidence)
            group_scores, self.groups_ = groups.score_samples(), groups.auto_flags()
            self.group_finder_ = groups
        # the groups' members are relabelled samples: left out of the k-NN vote, their
        # labels no longer vote against the clean samples of their true class
        knn = KNNLabelDisagreement(k=10, rule="majority").leaving_out(self.groups_).fit(dataset, evidence)
        cl = ConfidentLearning().fit(dataset, evidence)
        own_prob = evidence.pred_probs[np.arange(len(dataset)), y]
        self.label_noise_ = knn.auto_flags() & (cl.auto_flags() | (own_prob < self.max_own_prob))
        separated = SeparatedClusters(random_state=self.random_state).fit(dataset, evidence)
        self.separated_ = separated.auto_flags()
        #: every part's scores and flags over all rows, for reports: name -> (scores, flags)
        self.parts_: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "relabelled_groups": (group_scores, self.groups_),
            "separated_clusters": (separated.score_samples(), self.separated_),
            "confident_learning": (cl.score_samples(), cl.auto_flags()),
            "knn_label": (knn.score_samples(), knn.auto_flags()),
        }
        flags = self.groups_ | self.separated_ | self.label_noise_
        ranks = [rank_scores(group_scores), rank_scores(cl.score_samples()), rank_scores(knn.score_samples())]
        return flags + np.mean(ranks, axis=0)

    def _score_regression(self, dataset: Dataset) -> np.ndarray:
        """TRIM with the poison rate estimated, the residual detector reported beside it."""
        trim = TRIMDetector(random_state=self.random_state).fit(dataset)
        residual = ResidualDetector().fit(dataset)
        self.parts_ = {
            "trim": (trim.score_samples(), trim.auto_flags()),
            "residual": (residual.score_samples(), residual.auto_flags()),
        }
        self.regression_flags_ = trim.auto_flags()
        return trim.score_samples()

    def _auto_flags(self, dataset: Dataset, evidence: Evidence, scores: np.ndarray) -> np.ndarray:
        if dataset.is_regression:
            return self.regression_flags_
        return self.groups_ | self.separated_ | self.label_noise_
