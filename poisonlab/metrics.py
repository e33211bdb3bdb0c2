"""Metric definitions, in one place (BackdoorBench's definitions for backdoors).

- ``clean_accuracy`` (C-ACC): accuracy on the clean test set.
- ``attack_success_rate`` (ASR): among test inputs whose true class is *not* the
  target, the share predicted as the target once the trigger is applied.
- ``robust_accuracy`` (RA): among the same triggered non-target inputs, the share
  still predicted as their true class.
- ``targeted_flip_success``: share of source-class test inputs predicted as the target.
- ``accuracy_drop``: clean baseline accuracy minus poisoned accuracy (positive = harm).
- ``evasion_success_rate``: among test inputs the model classifies correctly, the
  share an inference-time attack makes it misclassify.
- ``certified_accuracy``: share of test inputs predicted correctly *and* certified at
  radius ≥ r, i.e. provably unchanged by any r training changes (Levine & Feizi 2021).

References
----------
B. Wu et al. "BackdoorBench: A Comprehensive Benchmark of Backdoor Learning." NeurIPS
2022 Datasets and Benchmarks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from poisonlab.data.dataset import Dataset


def clean_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of equal shape")
    return float(np.mean(y_true == y_pred))


def non_target_mask(y_true: np.ndarray, target: int) -> np.ndarray:
    """Test inputs eligible for ASR/RA: those whose true class is not the target."""
    return np.asarray(y_true) != target


def attack_success_rate(y_true: np.ndarray, y_pred_triggered: np.ndarray, target: int) -> float:
    eligible = non_target_mask(y_true, target)
    if not eligible.any():
        raise ValueError("no test input outside the target class")
    return float(np.mean(np.asarray(y_pred_triggered)[eligible] == target))


def robust_accuracy(y_true: np.ndarray, y_pred_triggered: np.ndarray, target: int) -> float:
    eligible = non_target_mask(y_true, target)
    if not eligible.any():
        raise ValueError("no test input outside the target class")
    return float(np.mean(np.asarray(y_pred_triggered)[eligible] == np.asarray(y_true)[eligible]))


def targeted_flip_success(y_true: np.ndarray, y_pred: np.ndarray, source: int, target: int) -> float:
    in_source = np.asarray(y_true) == source
    if not in_source.any():
        raise ValueError("no test input in the source class")
    return float(np.mean(np.asarray(y_pred)[in_source] == target))


def accuracy_drop(clean_baseline: float, poisoned: float) -> float:
    return float(clean_baseline - poisoned)


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Test MSE of a regression model, in the squared units of the response."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need two equal, non-empty shapes, got {y_true.shape} and {y_pred.shape}")
    return float(np.mean((y_true - y_pred) ** 2))


def detection_scores(poison_mask: np.ndarray, flags: np.ndarray, scores: np.ndarray | None = None) -> dict:
    """TPR (recall), FPR, precision, F1 of ``flags`` against the true poison mask, and AUROC of ``scores``.

    A detector that flags nothing while poisons exist has missed them: its precision
    and F1 are 0, not undefined, so a miss counts in every mean over seeds. Quantities
    that are undefined (TPR and F1 with no poisons, precision with nothing flagged and
    nothing to find, AUROC with a single class) are ``None`` rather than a made-up 0 or 1.
    """
    poison_mask = np.asarray(poison_mask, dtype=bool)
    flags = np.asarray(flags, dtype=bool)
    tp = int(np.sum(flags & poison_mask))
    n_pos, n_neg, n_flag = int(poison_mask.sum()), int((~poison_mask).sum()), int(flags.sum())
    tpr = tp / n_pos if n_pos else None
    precision = tp / n_flag if n_flag else (0.0 if n_pos else None)
    f1 = None
    if tpr is not None and precision is not None:
        f1 = 0.0 if tp == 0 else 2 * precision * tpr / (precision + tpr)
    auroc = None
    if scores is not None and n_pos and n_neg:
        from sklearn.metrics import roc_auc_score

        auroc = float(roc_auc_score(poison_mask, scores))
    return {
        "tpr": tpr,
        "fpr": int(np.sum(flags & ~poison_mask)) / n_neg if n_neg else None,
        "precision": precision,
        "f1": f1,
        "auroc": auroc,
    }


def defense_effectiveness_rating(
    asr_undefended: float, asr_defended: float, acc_undefended: float, acc_defended: float
) -> float:
    """BackdoorBench's DER = [max(0, ΔASR) − max(0, ΔACC) + 1] / 2, in [0, 1]; 0.5 = no effect."""
    delta_asr = asr_undefended - asr_defended
    delta_acc = acc_undefended - acc_defended
    return (max(0.0, delta_asr) - max(0.0, delta_acc) + 1.0) / 2.0


def evasion_success_rate(y_true: np.ndarray, y_pred: np.ndarray, y_pred_adversarial: np.ndarray) -> float:
    """Share of correctly classified inputs whose adversarial copies are misclassified (0 if none is)."""
    y_true, y_pred, y_adv = np.asarray(y_true), np.asarray(y_pred), np.asarray(y_pred_adversarial)
    correct = y_pred == y_true
    return float(np.mean(y_adv[correct] != y_true[correct])) if correct.any() else 0.0


def certified_accuracy(y_true: np.ndarray, y_pred: np.ndarray, radius: np.ndarray, r: int) -> float:
    """Share of inputs predicted correctly with a certified radius of at least ``r``."""
    y_true, y_pred, radius = np.asarray(y_true), np.asarray(y_pred), np.asarray(radius)
    return float(np.mean((y_true == y_pred) & (radius >= r)))


def changed_samples(original: Dataset, poisoned: Dataset) -> tuple[int, int, int]:
    """How a poisoned training set differs from the original, matched by sample id.

    Returns ``(relabelled, features_changed, added)``: samples whose label alone
    changed, samples whose features changed (with or without the label), and samples
    the original did not have. A sample the poisoning removed counts as added too,
    one change each way being what a certificate counts.
    """
    old = {key: i for i, key in enumerate(original.ids.tolist())}
    relabelled = changed = added = 0
    kept = set()
    for j, key in enumerate(poisoned.ids.tolist()):
        i = old.get(key)
        if i is None:
            added += 1
            continue
        kept.add(key)
        if not np.array_equal(original.X[i], poisoned.X[j]):
            changed += 1
        elif original.y[i] != poisoned.y[j]:
            relabelled += 1
    return relabelled, changed, added + (len(old) - len(kept))
