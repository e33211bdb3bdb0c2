"""Poison detectors: one contract (fit → score_samples → flags), resolved by name through ``DETECTORS``."""

from poisonlab.defenses.detectors.auto import AutoDetector
from poisonlab.defenses.detectors.base import (
    Detector,
    Evidence,
    calibrate_by_class,
    flag_outlying,
    flag_top,
)
from poisonlab.defenses.detectors.clustering import ActivationClustering, SeparatedClusters
from poisonlab.defenses.detectors.graph import CrossFittedPlausibility
from poisonlab.defenses.detectors.groups import RelabelledGroups
from poisonlab.defenses.detectors.label_noise import ConfidentLearning, DeepKNN, KNNLabelDisagreement
from poisonlab.defenses.detectors.loss import EarlyLossDetector
from poisonlab.defenses.detectors.outliers import IsolationForestDetector, LocalOutlierFactorDetector
from poisonlab.defenses.detectors.provenance import ProvenanceDetector
from poisonlab.defenses.detectors.regression import (
    HuberDetector,
    RANSACDetector,
    ResidualDetector,
    TRIMDetector,
)
from poisonlab.defenses.detectors.spectral import SpectralSignature, Spectre
from poisonlab.registry import Registry

#: Tags every detector declares (class attributes of :class:`Detector`, with these defaults).
DETECTOR_TAGS = {
    "tasks": Detector.tasks,
    "needs": Detector.needs,
    "min_samples": Detector.min_samples,
    "needs_sources": Detector.needs_sources,
    "class_scores": Detector.class_scores,
}
DETECTORS: Registry[Detector] = Registry("detector", tags=DETECTOR_TAGS)
DETECTORS.add(
    "auto",
    AutoDetector,
    "Relabelled groups ∪ separated clusters ∪ (confident learning ∩ k-NN); regression: TRIM; no rate needed",
)
DETECTORS.add(
    "spectral", SpectralSignature, "Spectral signatures on centred class features (Tran et al. 2018)"
)
DETECTORS.add("spectre", Spectre, "Robust whitening + quantum-entropy score (Hayase et al. 2021)")
DETECTORS.add(
    "activation_clustering",
    ActivationClustering,
    "Per-class 2-means + exclusionary reclassification (Chen et al. 2018)",
)
DETECTORS.add(
    "relabelled_groups",
    RelabelledGroups,
    "Per-class groups that share a feature and look like other classes (Chen et al. 2018 exclusion)",
)
DETECTORS.add(
    "separated_clusters",
    SeparatedClusters,
    "Per-class 2-means split by a wide gap: a trigger shared by samples that keep their labels",
)
DETECTORS.add(
    "kg_plausibility",
    CrossFittedPlausibility,
    "Knowledge graph: facts that embedding models trained without them rank far down (cross-fitted)",
)
DETECTORS.add("knn_label", KNNLabelDisagreement, "k-NN label disagreement in representation space")
DETECTORS.add(
    "deep_knn",
    DeepKNN,
    "Deep k-NN: a label outvoted by its neighbours in feature space (Peri et al. 2020, clean-label)",
)
DETECTORS.add(
    "confident_learning", ConfidentLearning, "Confident learning on cross-fitted probabilities (cleanlab)"
)
DETECTORS.add("isolation_forest", IsolationForestDetector, "Isolation Forest per class on representations")
DETECTORS.add("lof", LocalOutlierFactorDetector, "Local Outlier Factor per class on representations")
DETECTORS.add(
    "early_loss",
    EarlyLossDetector,
    "ABL isolation: loss over early epochs far below its class's (Li et al. 2021)",
)
DETECTORS.add(
    "provenance", ProvenanceDetector, "Whole sources judged by held-out effect (Baracaldo et al. 2017)"
)
DETECTORS.add(
    "trim", TRIMDetector, "Regression: TRIM's trimmed rows (Jagielski et al. 2018), rate given or 'auto'"
)
DETECTORS.add("ransac", RANSACDetector, "Regression: RANSAC's outliers around least squares (scikit-learn)")
DETECTORS.add("huber", HuberDetector, "Regression: Huber regression's outliers (scikit-learn)")
DETECTORS.add("residual", ResidualDetector, "Regression: least-squares residual robust z-score above 3.5")

__all__ = [
    "DETECTORS",
    "DETECTOR_TAGS",
    "ActivationClustering",
    "AutoDetector",
    "ConfidentLearning",
    "CrossFittedPlausibility",
    "DeepKNN",
    "Detector",
    "EarlyLossDetector",
    "Evidence",
    "HuberDetector",
    "IsolationForestDetector",
    "KNNLabelDisagreement",
    "LocalOutlierFactorDetector",
    "ProvenanceDetector",
    "RANSACDetector",
    "RelabelledGroups",
    "ResidualDetector",
    "SeparatedClusters",
    "SpectralSignature",
    "Spectre",
    "TRIMDetector",
    "calibrate_by_class",
    "flag_outlying",
    "flag_top",
]
