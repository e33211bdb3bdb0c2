"""Metric definitions, checked on small hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from poisonlab.metrics import (
    accuracy_drop,
    attack_success_rate,
    clean_accuracy,
    non_target_mask,
    robust_accuracy,
    targeted_flip_success,
)

# Ten test inputs; the backdoor target is class 0.
Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
# Predictions on the triggered inputs: of the 7 non-target inputs (indices 2..8),
# 4 go to the target (2, 3, 5, 6), 2 keep their class (4, 8), 1 goes elsewhere (7).
Y_TRIGGERED = np.array([0, 1, 0, 0, 1, 0, 0, 1, 2, 2])


def test_clean_accuracy():
    assert clean_accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == pytest.approx(0.75)
    assert clean_accuracy(Y_TRUE, Y_TRUE) == 1.0
    assert clean_accuracy(Y_TRUE, Y_TRIGGERED) == pytest.approx(3 / 10)  # indices 0, 4, 8
    assert isinstance(clean_accuracy([1], [1]), float)


@pytest.mark.parametrize(("y_true", "y_pred"), [([], []), ([0, 1], [0]), ([[0, 1]], [0, 1])])
def test_clean_accuracy_rejects_bad_shapes(y_true, y_pred):
    with pytest.raises(ValueError, match="non-empty and of equal shape"):
        clean_accuracy(np.array(y_true), np.array(y_pred))


def test_non_target_mask():
    assert non_target_mask(Y_TRUE, 0).tolist() == [False, False] + [True] * 7 + [False]


def test_attack_success_rate_excludes_target_class_inputs():
    assert attack_success_rate(Y_TRUE, Y_TRIGGERED, target=0) == pytest.approx(4 / 7)
    # the three target-class inputs do not count, whatever they are predicted as
    changed = Y_TRIGGERED.copy()
    changed[[0, 1, 9]] = [0, 0, 0]
    assert attack_success_rate(Y_TRUE, changed, target=0) == pytest.approx(4 / 7)
    # a naive rate over all inputs would differ: 5 of 10 predicted as the target
    assert np.mean(Y_TRIGGERED == 0) == pytest.approx(0.5)


def test_attack_success_rate_other_target():
    # target 2: eligible are the six inputs of classes 0 and 1 (indices 0-4, 9); one (9) hits 2
    assert attack_success_rate(Y_TRUE, Y_TRIGGERED, target=2) == pytest.approx(1 / 6)


def test_robust_accuracy():
    assert robust_accuracy(Y_TRUE, Y_TRIGGERED, target=0) == pytest.approx(2 / 7)
    # ASR + RA + "sent elsewhere" partition the non-target inputs
    elsewhere = 1 / 7
    asr = attack_success_rate(Y_TRUE, Y_TRIGGERED, 0)
    assert asr + robust_accuracy(Y_TRUE, Y_TRIGGERED, 0) + elsewhere == pytest.approx(1.0)


def test_perfect_and_failed_backdoors():
    y_true = np.array([1, 2, 3, 0])
    assert attack_success_rate(y_true, np.zeros(4, dtype=int), 0) == 1.0
    assert robust_accuracy(y_true, np.zeros(4, dtype=int), 0) == 0.0
    assert attack_success_rate(y_true, y_true, 0) == 0.0
    assert robust_accuracy(y_true, y_true, 0) == 1.0


@pytest.mark.parametrize("metric", [attack_success_rate, robust_accuracy])
def test_backdoor_metrics_need_a_non_target_input(metric):
    with pytest.raises(ValueError, match="no test input outside the target class"):
        metric(np.array([3, 3]), np.array([3, 1]), 3)


def test_targeted_flip_success():
    # source 1 (indices 2, 3, 4), target 0: two of three go to 0
    assert targeted_flip_success(Y_TRUE, Y_TRIGGERED, source=1, target=0) == pytest.approx(2 / 3)
    # source 2 (indices 5-8), target 1: one of four (7)
    assert targeted_flip_success(Y_TRUE, Y_TRIGGERED, source=2, target=1) == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="no test input in the source class"):
        targeted_flip_success(Y_TRUE, Y_TRIGGERED, source=5, target=0)


def test_accuracy_drop():
    assert accuracy_drop(0.95, 0.80) == pytest.approx(0.15)
    assert accuracy_drop(0.80, 0.85) == pytest.approx(-0.05)  # poisoning helped: negative drop
    assert accuracy_drop(0.9, 0.9) == 0.0
    assert isinstance(accuracy_drop(np.float64(0.9), np.float32(0.5)), float)
