"""Metric definitions, in one place (BackdoorBench's definitions for backdoors).

- ``clean_accuracy`` (C-ACC): accuracy on the clean test set.
- ``attack_success_rate`` (ASR): among test inputs whose true class is *not* the
  target, the share predicted as the target once the trigger is applied.
- ``robust_accuracy`` (RA): among the same triggered non-target inputs, the share
  still predicted as their true class.
- ``targeted_flip_success``: share of source-class test inputs predicted as the target.
- ``accuracy_drop``: clean baseline accuracy minus poisoned accuracy (positive = harm).

References
----------
B. Wu et al. "BackdoorBench: A Comprehensive Benchmark of Backdoor Learning." NeurIPS
2022 Datasets and Benchmarks.
"""

from __future__ import annotations

import numpy as np


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
