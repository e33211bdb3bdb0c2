"""Rule-learner corruption: make a rule learner adopt "feature f in bin v → class c".

Logic corruption on tabular data: a subpopulation attack (Jagielski et al. 2021) aimed
at a rule learner's vocabulary. The subgroup is one condition a rule learner can write,
one of the equal-frequency bins RIPPER (Cohen 1995, through ``wittgenstein``) cuts a
numeric feature into, or one value of a discrete feature; the attacker wants a rule
that sends it to class ``target``, and the model to decide the subgroup that way.

Poisons are subgroup members of other classes relabelled ``target`` (features kept,
so every poison is a real row of the subgroup and the learner cuts the same bins as
on clean data). Which members: RIPPER grows a rule until it covers no negative of its
grow set, then prunes it (Cohen 1995), and it covers positives that other features
explain with other rules first. So the attack relabels

1. every other-class member of one block "subgroup and one bin of a second feature"
   that the budget can cover, the largest such block (one of the three largest,
   drawn with the seed): "f in v and g in w → c" is then pure in the training data;
2. then the members farthest (standardised Euclidean) from the target class's mean,
   drawn with the seed among the farthest twice as many: rows no other rule for the
   target explains, which only the subgroup's condition can cover.

At most the subgroup's other-class rows can be relabelled. :func:`implanted_rules`
says whether a learned rule set contains the implanted rule, and
:func:`subgroup_decisions` how the model decides the subgroup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, class_index, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError
from poisonlab.models.rules import Condition, Rule

__all__ = ["RuleImplant", "Subgroup", "implanted_rules", "quantile_bins", "subgroup_decisions"]


@dataclass(frozen=True, eq=False)
class Subgroup:
    """Inputs with ``low < x[feature] ≤ high``; where ``low == high``, with ``x[feature] == low``."""

    feature: int
    low: float
    high: float

    @property
    def condition(self) -> Condition:
        return Condition(self.feature, self.low, self.high)

    def contains(self, X: np.ndarray) -> np.ndarray:
        return self.condition.holds(X)


def quantile_bins(values: np.ndarray, n_bins: int) -> list[tuple[float, float]]:
    """The bins RIPPER (wittgenstein) cuts ``values`` into, as ``(low, high]`` pairs, in order.

    ``n_bins`` equal-frequency bins (``pandas.qcut``, edges as its labels round them to
    2 digits, duplicates dropped, bins no value falls in left out), the outer ones open;
    a feature with at most ``n_bins`` distinct values is not cut: one ``(v, v)`` "bin" per value.
    """
    import pandas as pd

    values = np.asarray(values, dtype=np.float64)
    distinct = np.unique(values)
    if distinct.size <= n_bins:
        return [(float(v), float(v)) for v in distinct]
    cut = pd.qcut(pd.Series(values), q=n_bins, precision=2, duplicates="drop")
    if len(cut.cat.categories) < 2:  # a heavily skewed feature: equal-width, as wittgenstein does
        cut = pd.cut(pd.Series(values), bins=n_bins, precision=2, duplicates="drop")
    used = sorted(cut.value_counts().loc[lambda n: n > 0].index)
    bins = [(float(i.left), float(i.right)) for i in used]
    bins[0] = (-math.inf, bins[0][1])
    bins[-1] = (bins[-1][0], math.inf)
    # rounded edges can leave a bin (a, a] or one no value falls in: no rule can use it
    return [(lo, hi) for lo, hi in bins if lo < hi and Condition(0, lo, hi).holds(values[:, None]).any()]


class RuleImplant(Attack):
    """Implant "feature in bin → target" in a rule learner by relabelling subgroup rows.

    Parameters
    ----------
    feature : int or str
        The subgroup's feature: a column index, or a name of ``dataset.feature_names``.
    bin : int
        Which of the feature's ``n_bins`` quantile bins (see :func:`quantile_bins`) is
        the subgroup; negative counts from the top (default: the top bin).
    n_bins : int
        Bins per feature, as the victim cuts them (RIPPER's ``n_bins``, default 10).
    low, high : float, optional
        An explicit subgroup ``low < x ≤ high`` instead of a bin (an open end is unbounded).
    value : float, optional
        An explicit subgroup ``x == value`` (a discrete feature) instead of a bin.
    target : int, optional
        The attacker's class; default: the subgroup's second most frequent class.

    References
    ----------
    Jagielski, M., Severi, G., Pousette Harger, N., & Oprea, A. (2021). Subpopulation
    Data Poisoning Attacks. ACM CCS 2021.

    Cohen, W. W. (1995). Fast Effective Rule Induction. ICML 1995, 115–123.

    Drews, S., Albarghouthi, A., & D'Antoni, L. (2020). Proving Data-Poisoning
    Robustness in Decision Trees. PLDI 2020.
    """

    modalities = ("tabular",)
    keeps_features = True

    def __init__(
        self,
        *,
        feature: int | str = 0,
        bin: int = -1,
        n_bins: int = 10,
        low: float | None = None,
        high: float | None = None,
        value: float | None = None,
        target: int | None = None,
    ) -> None:
        if isinstance(feature, bool) or not isinstance(feature, int | str):
            raise ConfigError(f"feature must be a column index or a feature name, got {feature!r}")
        if isinstance(feature, int) and feature < 0:
            raise ConfigError(f"feature must be a column index ≥ 0, got {feature}")
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
            raise ConfigError(f"n_bins must be an integer ≥ 2, got {n_bins!r}")
        if isinstance(bin, bool) or not isinstance(bin, int) or not -n_bins <= bin < n_bins:
            raise ConfigError(f"bin must be an integer in {-n_bins}..{n_bins - 1}, got {bin!r}")
        for name, bound in (("low", low), ("high", high), ("value", value)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                raise ConfigError(f"{name} must be a number, got {bound!r}")
        if value is not None and (low is not None or high is not None):
            raise ConfigError("give the subgroup as a value or as low/high, not both")
        if low is not None and high is not None and not low < high:
            raise ConfigError(f"low must be < high, got {low} ≥ {high}")
        self.feature = feature
        self.bin = bin
        self.n_bins = n_bins
        self.low = low
        self.high = high
        self.value = value
        self.target = target

    def column(self, dataset: Dataset) -> int:
        """The subgroup feature's column index in ``dataset``."""
        n_features = int(np.prod(dataset.X.shape[1:]))
        if isinstance(self.feature, str):
            if self.feature not in dataset.feature_names:
                known = ", ".join(dataset.feature_names[:8]) or "none: use a column index"
                raise ConfigError(
                    f"feature {self.feature!r} does not exist in {dataset.name} (names: {known})"
                )
            return dataset.feature_names.index(self.feature)
        if self.feature >= n_features:
            raise ConfigError(
                f"feature {self.feature} does not exist: {dataset.name} has features 0..{n_features - 1}"
            )
        return self.feature

    def subgroup(self, dataset: Dataset) -> Subgroup:
        """The subgroup on ``dataset`` (a bin is cut from its values of the feature)."""
        column = self.column(dataset)
        if self.value is not None:
            return Subgroup(column, float(self.value), float(self.value))
        if self.low is not None or self.high is not None:
            low = -math.inf if self.low is None else float(self.low)
            return Subgroup(column, low, math.inf if self.high is None else float(self.high))
        bins = quantile_bins(dataset.X.reshape(len(dataset), -1)[:, column], self.n_bins)
        if not -len(bins) <= self.bin < len(bins):
            raise ConfigError(f"bin {self.bin} does not exist: feature {self.feature} has {len(bins)} bins")
        return Subgroup(column, *bins[self.bin])

    def check(self, dataset: Dataset) -> None:
        super().check(dataset)
        if dataset.is_regression or dataset.modality != "tabular":
            return  # poison() refuses these data with IncompatibleError
        members = int(self.subgroup(dataset).contains(dataset.X).sum())
        if members == 0:
            raise ConfigError(f"the subgroup of feature {self.feature} is empty in {dataset.name}")
        if members == len(dataset):
            raise ConfigError(f"the subgroup of feature {self.feature} holds all of {dataset.name}")

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        self.check(dataset)
        group = self.subgroup(dataset)
        inside = group.contains(dataset.X)
        counts = np.bincount(dataset.y[inside], minlength=dataset.n_classes)
        majority = int(np.argmax(counts))
        if self.target is None:
            target = int(np.argsort(-counts, kind="stable")[1])
        else:
            target = class_index(self.target, dataset, "target")
            if target == majority:
                raise ConfigError(f"target class {self.target} is the subgroup's majority class already")
        pool = np.flatnonzero(inside & (dataset.y != target))
        index = _choose(dataset, group, pool, target, min(n_poison, pool.size), self.n_bins, rng)
        y = dataset.y.copy()
        y[index] = target
        return PoisonResult(
            dataset.with_arrays(y=y), mask_of(index, len(dataset)), target_class=target, subpopulation=group
        )


def _choose(
    dataset: Dataset,
    group: Subgroup,
    pool: np.ndarray,
    target: int,
    n: int,
    n_bins: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` rows of ``pool`` to relabel: one pure block first, then rows far from the target class."""
    X = dataset.X.reshape(len(dataset), -1).astype(np.float64)
    inside = group.contains(X)
    blocks: list[tuple[np.ndarray, np.ndarray]] = []  # (block members, its other-class members)
    for g in range(X.shape[1]):
        if g == group.feature:
            continue
        for low, high in quantile_bins(X[:, g], n_bins):
            block = inside & Condition(g, low, high).holds(X)
            others = np.flatnonzero(block & (dataset.y != target))
            if 1 <= others.size <= n:
                blocks.append((np.flatnonzero(block), others))
    chosen = np.zeros(0, dtype=np.int64)
    while blocks:  # greedily: one of the largest blocks the budget left still covers (±1 row), drawn
        left = n - chosen.size
        fits = [(m, o) for m, o in blocks if 1 <= np.setdiff1d(o, chosen).size <= left]
        if not fits:
            break
        sizes = np.array([m.size for m, _ in fits])
        best = np.flatnonzero(sizes >= sizes.max() - 1)
        members, others = fits[int(rng.choice(best))]
        chosen = np.union1d(chosen, others)
        blocks = [(m, o) for m, o in fits if np.setdiff1d(m, members).size]
    rest = np.setdiff1d(pool, chosen)
    k = n - chosen.size
    if k > 0:
        Z = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)
        distance = np.linalg.norm(Z[rest] - Z[dataset.y == target].mean(axis=0), axis=1)
        farthest = rest[np.argsort(-distance, kind="stable")[: 2 * k]]
        chosen = np.concatenate([chosen, rng.choice(farthest, size=k, replace=False)])
    return np.sort(chosen)


def implanted_rules(
    rules: Sequence[Rule], subgroup: Subgroup, target: int, X: np.ndarray
) -> tuple[Rule, ...]:
    """The rules of ``rules`` that implant "subgroup → target", judged on reference inputs ``X``.

    A rule implants it when it predicts ``target`` and one of its conditions is on the
    subgroup's feature and lies within or on the subgroup: of the rows of ``X`` (the
    training inputs) that condition selects, there is at least one and every one is a
    subgroup member. Judging on the data, not on interval ends, lets a tree's
    threshold (a midpoint between two training values) match a bin's edge; other
    conditions may narrow the rule further. A rule learner's rule set *contains the
    implanted rule* when this tuple is not empty.
    """
    flat = np.asarray(X).reshape(np.shape(X)[0], -1)
    inside = subgroup.contains(flat)
    found = []
    for rule in rules:
        if rule.klass != target:
            continue
        for condition in rule.conditions:
            if condition.feature != subgroup.feature:
                continue
            selected = condition.holds(flat)
            if selected.any() and not (selected & ~inside).any():
                found.append(rule)
                break
    return tuple(found)


def subgroup_decisions(model: Any, X: np.ndarray, subgroup: Subgroup, target: int) -> float:
    """Share of the subgroup's members among ``X`` that ``model`` predicts as ``target`` (NaN if none)."""
    inside = subgroup.contains(X)
    if not inside.any():
        return math.nan
    return float(np.mean(np.asarray(model.predict(np.asarray(X)[inside])) == target))
