"""Rule learners and their rules, read as data: RIPPER, and a decision tree's paths.

A learned model is read as a tuple of :class:`Rule`: a conjunction of
:class:`Condition` (one feature in an interval, or equal to one value) and the class
it predicts. :class:`RipperClassifier` *is* its rules: it predicts from the parsed
rules, so what :func:`learned_rules` returns is exactly what decides.

- :class:`RipperClassifier`: RIPPER (Cohen 1995) through the ``wittgenstein`` package
  (``pip install 'poisonlab[rules]'``), one rule set per class (one-vs-rest), so every
  class, the most frequent one too, has rules of its own. An input that rules of
  several classes cover takes the class of the most precise covering rule (Laplace
  precision on the training set); an input no rule covers takes the training set's
  most frequent class. Numeric features are cut into ``n_bins`` equal-frequency bins
  of the training data (wittgenstein's own discretisation), so a condition is one bin.
- :func:`tree_rules`: each leaf of a fitted scikit-learn decision tree as a rule,
  its path's thresholds merged to one interval per feature.

References
----------
Cohen, W. W. (1995). Fast Effective Rule Induction. ICML 1995, 115–123.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.errors import ConfigError, IncompatibleError, NotFittedError

__all__ = ["Condition", "RipperClassifier", "Rule", "learned_rules", "tree_rules"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    """``low < x[feature] ≤ high``; where ``low == high``, ``x[feature] == low`` (a discrete value)."""

    feature: int
    low: float = -math.inf
    high: float = math.inf

    def holds(self, X: np.ndarray) -> np.ndarray:
        # in float64, as wittgenstein compares: float32 1.82 is above the edge 1.82, and
        # NumPy would compare a float32 column with the edge in float32
        values = np.asarray(X).reshape(np.shape(X)[0], -1)[:, self.feature].astype(np.float64)
        if self.low == self.high:
            return np.asarray(values == self.low)
        return np.asarray((values > self.low) & (values <= self.high))

    def __str__(self) -> str:
        if self.low == self.high:
            return f"x{self.feature} == {self.low:g}"
        if self.low == -math.inf:
            return f"x{self.feature} <= {self.high:g}"
        if self.high == math.inf:
            return f"x{self.feature} > {self.low:g}"
        return f"{self.low:g} < x{self.feature} <= {self.high:g}"


@dataclass(frozen=True)
class Rule:
    """IF every condition holds THEN ``klass``; ``precision`` is its Laplace precision on the training set."""

    conditions: tuple[Condition, ...]
    klass: int
    precision: float = 1.0

    def covers(self, X: np.ndarray) -> np.ndarray:
        covered = np.ones(np.shape(X)[0], dtype=bool)
        for condition in self.conditions:
            covered &= condition.holds(X)
        return covered

    def __str__(self) -> str:
        body = " and ".join(str(c) for c in self.conditions) or "always"
        return f"IF {body} THEN class {self.klass}"


def _require_wittgenstein() -> Any:
    try:
        import wittgenstein
    except ImportError:
        raise ConfigError("the ripper model needs wittgenstein: pip install 'poisonlab[rules]'") from None
    return wittgenstein


def parse_condition(feature: int, value: Any) -> Condition:
    """A wittgenstein condition value as a :class:`Condition` on column ``feature``.

    wittgenstein names a bin ``"<b"`` (``x ≤ b``), ``">a"`` (``x > a``) or ``"a - b"``
    (``a < x ≤ b``, right-closed as ``pandas.cut``); an undiscretised feature's
    condition is the value itself.
    """
    if not isinstance(value, str):
        return Condition(feature, float(value), float(value))
    text = value.strip()
    try:
        if text.startswith("<"):
            return Condition(feature, -math.inf, float(text[1:]))
        if text.startswith(">"):
            return Condition(feature, float(text[1:]), math.inf)
        if " - " in text:
            low, high = float(text.split(" - ", 1)[0]), float(text.split(" - ", 1)[1])
            if low == high:  # (a, a]: a bin its rounded edges emptied, which holds no value
                return Condition(feature, math.inf, -math.inf)
            return Condition(feature, low, high)
        return Condition(feature, float(text), float(text))
    except ValueError:  # a format this parser does not know is a bug here, not a user error
        raise ValueError(f"cannot read wittgenstein condition {value!r} on feature {feature}") from None


class RipperClassifier:
    """RIPPER rule sets, one per class (one-vs-rest), through ``wittgenstein`` (Cohen 1995).

    Parameters
    ----------
    n_bins : int
        Equal-frequency bins per numeric feature (a feature with at most this many
        distinct values is used as it is).
    k : int
        RIPPER's optimisation passes.
    prune_size : float
        Share of the training set held out to prune each rule.
    random_state : int
        Seeds the grow/prune split.

    Attributes
    ----------
    rules_ : tuple of Rule
        The learned rules of every class, in the order learned.
    classes_ : numpy.ndarray
        The labels seen in ``fit``.
    default_ : int
        The label predicted where no rule fires (the most frequent training label).
    """

    def __init__(self, *, n_bins: int = 10, k: int = 2, prune_size: float = 0.33, random_state: int = 0):
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
            raise ConfigError(f"n_bins must be an integer ≥ 2, got {n_bins!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ConfigError(f"k must be an integer ≥ 0, got {k!r}")
        if not isinstance(prune_size, int | float) or not 0.0 < prune_size < 1.0:
            raise ConfigError(f"prune_size must lie in (0, 1), got {prune_size!r}")
        _require_wittgenstein()
        self.n_bins = n_bins
        self.k = k
        self.prune_size = prune_size
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> RipperClassifier:
        import pandas as pd

        wittgenstein = _require_wittgenstein()
        flat = _flat(X)
        y = np.asarray(y)
        columns = [f"x{j}" for j in range(flat.shape[1])]
        frame = pd.DataFrame(flat, columns=columns)
        self.classes_ = np.unique(y)
        counts = np.array([np.sum(y == c) for c in self.classes_])
        self.default_ = self.classes_[int(np.argmax(counts))].item()
        rules: list[Rule] = []
        for label in self.classes_:
            positive = (y == label).astype(np.int64)
            if positive.all():  # one class only: the default says it all
                continue
            learner = wittgenstein.RIPPER(
                k=self.k,
                prune_size=self.prune_size,
                n_discretize_bins=self.n_bins,
                random_state=self.random_state,
            )
            # wittgenstein reports through warnings.showwarning, which no filter stops
            # (it would write to stderr): keep its notes, as log records
            with warnings.catch_warnings(record=True) as notes:
                warnings.simplefilter("always")
                learner.fit(frame, positive, pos_class=1)
            for note in notes:
                _LOG.debug("wittgenstein: %s", str(note.message).strip())
            for learned in learner.ruleset_.rules:
                conditions = tuple(parse_condition(columns.index(c.feature), c.val) for c in learned.conds)
                covered = Rule(conditions, label.item()).covers(flat)
                hits = int(np.sum(covered & (y == label)))
                rules.append(Rule(conditions, label.item(), (hits + 1) / (int(covered.sum()) + 2)))
        self.rules_ = tuple(rules)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "rules_"):
            raise NotFittedError("RipperClassifier.predict called before fit")
        flat = _flat(X)
        best = np.full(flat.shape[0], -1.0)  # covered: the most precise covering rule decides
        near = np.zeros(flat.shape[0])  # uncovered: the rule most nearly met (share of its conditions)
        out = np.full(flat.shape[0], self.default_, dtype=self.classes_.dtype)
        fallback = out.copy()
        for rule in self.rules_:
            held = np.ones(flat.shape[0])
            if rule.conditions:
                held = np.mean([c.holds(flat) for c in rule.conditions], axis=0)
            better = (held == 1.0) & (rule.precision > best)
            best[better] = rule.precision
            out[better] = rule.klass
            closer = held * rule.precision > near
            near[closer] = held[closer] * rule.precision
            fallback[closer] = rule.klass
        return np.where(best >= 0.0, out, fallback)


def _flat(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(X.shape[0], -1)


def tree_rules(tree: Any) -> tuple[Rule, ...]:
    """The leaves of a fitted scikit-learn decision tree as rules (left branch: ``x ≤ threshold``)."""
    structure = tree.tree_
    rules: list[Rule] = []
    stack: list[tuple[int, dict[int, tuple[float, float]]]] = [(0, {})]
    while stack:
        node, bounds = stack.pop()
        left, right = structure.children_left[node], structure.children_right[node]
        if left == right:  # a leaf
            counts = structure.value[node][0]
            klass = tree.classes_[int(np.argmax(counts))].item()
            precision = float(counts.max() / counts.sum())
            conditions = tuple(Condition(f, lo, hi) for f, (lo, hi) in sorted(bounds.items()))
            rules.append(Rule(conditions, klass, precision))
            continue
        feature, threshold = int(structure.feature[node]), float(structure.threshold[node])
        low, high = bounds.get(feature, (-math.inf, math.inf))
        stack.append((int(right), {**bounds, feature: (max(low, threshold), high)}))
        stack.append((int(left), {**bounds, feature: (low, min(high, threshold))}))
    return tuple(rules)


def learned_rules(model: Any) -> tuple[Rule, ...]:
    """The rules a fitted model decides by: a :class:`RipperClassifier`'s, or a decision tree's leaves.

    Takes a model with ``rules_``, a fitted scikit-learn tree (anything with ``tree_``),
    or poisonlab's ``decision_tree`` model (which holds the tree as ``model_``).
    """
    if hasattr(model, "rules_"):
        return tuple(model.rules_)
    estimator = getattr(model, "model_", model)
    if hasattr(estimator, "tree_") and hasattr(estimator, "classes_"):
        return tree_rules(estimator)
    raise IncompatibleError(
        f"{type(model).__name__} has no rules to read: use the ripper or decision_tree model (fitted)"
    )
