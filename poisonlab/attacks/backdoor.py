"""Backdoors: stamp a trigger on some training inputs and relabel them as the target class.

All three are *all-to-one* dirty-label backdoors as BackdoorBench evaluates them:
poisoned rows are drawn from the non-target classes, carry the trigger, and are
relabelled to the target; at test time the same :class:`Trigger` is applied to
non-target inputs to measure attack success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from poisonlab.attacks.base import Attack, PoisonResult, Trigger, choose, class_index, mask_of
from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError, DataError

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")


@dataclass(frozen=True, eq=False)
class PatchTrigger(Trigger):
    """Overwrite a rectangle of every channel with a fixed pattern."""

    pattern: np.ndarray  # (h, w) values in [0, 1]
    row: int
    col: int
    image_shape: tuple[int, ...]

    def apply(self, X: np.ndarray) -> np.ndarray:
        _check_shape(X, self.image_shape)
        out = np.array(X, dtype=np.float32, copy=True)
        h, w = self.pattern.shape
        out[:, :, self.row : self.row + h, self.col : self.col + w] = self.pattern
        return out


@dataclass(frozen=True, eq=False)
class BlendTrigger(Trigger):
    """Alpha-blend a fixed image into every input: ``(1 − α)·x + α·pattern``."""

    pattern: np.ndarray  # (C, H, W) values in [0, 1]
    alpha: float

    def apply(self, X: np.ndarray) -> np.ndarray:
        _check_shape(X, self.pattern.shape)
        blended = (1.0 - self.alpha) * np.asarray(X, dtype=np.float32) + self.alpha * self.pattern
        return np.clip(blended, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class FeatureValueTrigger(Trigger):
    """Set chosen tabular features to fixed values."""

    features: np.ndarray
    values: np.ndarray
    n_features: int

    def apply(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise DataError(f"trigger expects N×{self.n_features} inputs, got shape {X.shape}")
        out = np.array(X, dtype=np.float32, copy=True)
        out[:, self.features] = self.values
        return out


def _check_shape(X: np.ndarray, image_shape: tuple[int, ...]) -> None:
    if X.ndim != 4 or tuple(X.shape[1:]) != tuple(image_shape):
        raise DataError(f"trigger expects N×{'×'.join(map(str, image_shape))} images, got {X.shape}")


class _Backdoor(Attack):
    backdoor = True
    """Shared all-to-one poisoning: pick non-target rows, trigger them, relabel to target."""

    target: int

    def _trigger_for(self, dataset: Dataset, rng: np.random.Generator) -> Trigger:
        raise NotImplementedError

    def check(self, dataset: Dataset) -> None:
        super().check(dataset)
        self._trigger_for(dataset, np.random.default_rng(0))  # a trigger that does not fit the data fails

    def _poison(self, dataset: Dataset, n_poison: int, rng: np.random.Generator) -> PoisonResult:
        target = class_index(self.target, dataset, "target")
        trigger = self._trigger_for(dataset, rng)
        pool = np.flatnonzero(dataset.y != target)
        index = choose(pool, n_poison, rng, f"samples outside target class {self.target}")
        X = dataset.X.copy()
        y = dataset.y.copy()
        X[index] = trigger.apply(dataset.X[index])
        y[index] = target
        return PoisonResult(
            dataset.with_arrays(X=X, y=y),
            mask_of(index, len(dataset)),
            trigger=trigger,
            target_class=target,
        )


class BadNets(_Backdoor):
    """BadNets patch trigger: a small fixed pattern stamped in a corner of the image.

    Gu et al. (2017) poison a fraction of the training set with a small pixel
    pattern (a white square or a checkerboard-like pattern) placed at a fixed
    location and relabel those images to the target class.

    Parameters
    ----------
    target : label of the target class (in the data's label space).
    patch_size : side of the square patch in pixels.
    pattern : ``"checkerboard"`` (alternating 1/0), ``"white"`` (all ones) or
        ``"random"`` (uniform values drawn from ``pattern_seed``).
    position : a corner name, or ``[row, col]`` of the patch's top-left pixel.

    References
    ----------
    T. Gu, B. Dolan-Gavitt, S. Garg. "BadNets: Identifying Vulnerabilities in the
    Machine Learning Model Supply Chain." arXiv:1708.06733, 2017.
    """

    modalities = ("image",)

    def __init__(
        self,
        *,
        target: int = 0,
        patch_size: int = 3,
        pattern: str = "checkerboard",
        position: str | Sequence[int] = "bottom-right",
        pattern_seed: int = 0,
    ) -> None:
        if patch_size < 1:
            raise ConfigError(f"patch_size must be >= 1, got {patch_size}")
        if pattern not in ("checkerboard", "white", "random"):
            raise ConfigError(f"pattern must be checkerboard, white or random, got {pattern!r}")
        if isinstance(position, str) and position not in CORNERS:
            raise ConfigError(f"position must be one of {CORNERS} or [row, col], got {position!r}")
        self.target = target
        self.patch_size = patch_size
        self.pattern = pattern
        self.position = position
        self.pattern_seed = pattern_seed

    def _trigger_for(self, dataset: Dataset, rng: np.random.Generator) -> Trigger:
        _, height, width = dataset.X.shape[1:]
        s = self.patch_size
        if s > min(height, width):
            raise ConfigError(f"patch_size {s} does not fit {height}×{width} images")
        if self.pattern == "white":
            patch = np.ones((s, s), dtype=np.float32)
        elif self.pattern == "checkerboard":
            patch = ((np.add.outer(np.arange(s), np.arange(s)) + 1) % 2).astype(np.float32)
        else:
            patch = np.random.default_rng(self.pattern_seed).random((s, s)).astype(np.float32)
        if isinstance(self.position, str):
            row = 0 if self.position.startswith("top") else height - s
            col = 0 if self.position.endswith("left") else width - s
        else:
            row, col = (int(v) for v in self.position)
            if not (0 <= row <= height - s and 0 <= col <= width - s):
                raise ConfigError(f"patch at {[row, col]} does not fit {height}×{width} images")
        return PatchTrigger(patch, row, col, tuple(dataset.X.shape[1:]))


class Blended(_Backdoor):
    """Blended injection: alpha-blend a fixed key pattern into the whole image.

    Chen et al. (2017) blend a key pattern (an image or random noise) into the
    input with weight ``alpha``; poisonlab's default key is uniform noise drawn from
    ``pattern_seed`` with ``alpha = 0.2``, the blend ratio BackdoorBench uses.

    References
    ----------
    X. Chen, C. Liu, B. Li, K. Lu, D. Song. "Targeted Backdoor Attacks on Deep
    Learning Systems Using Data Poisoning." arXiv:1712.05526, 2017.
    """

    modalities = ("image",)

    def __init__(self, *, target: int = 0, alpha: float = 0.2, pattern_seed: int = 0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ConfigError(f"alpha must lie in (0, 1], got {alpha}")
        self.target = target
        self.alpha = alpha
        self.pattern_seed = pattern_seed

    def _trigger_for(self, dataset: Dataset, rng: np.random.Generator) -> Trigger:
        shape = dataset.X.shape[1:]
        pattern = np.random.default_rng(self.pattern_seed).random(shape).astype(np.float32)
        return BlendTrigger(pattern, self.alpha)


class FeatureTrigger(_Backdoor):
    """Tabular backdoor: a few chosen features set together to rare values.

    The tabular analogue of a patch trigger: ``features`` (or ``n_trigger``
    features drawn with the attack's seed) are set to their ``quantile`` in the
    clean training data; the default ``quantile = 1.0`` uses each feature's observed
    maximum, a value almost no clean row holds, and no clean row holds jointly.

    References
    ----------
    T. Gu, B. Dolan-Gavitt, S. Garg. "BadNets." arXiv:1708.06733, 2017 (the
    patch-trigger recipe carried to feature vectors); X. Chen et al.,
    arXiv:1712.05526, 2017 (backdoors by data poisoning alone).
    """

    modalities = ("tabular",)

    def __init__(
        self,
        *,
        target: int = 0,
        features: Sequence[int] | None = None,
        n_trigger: int = 3,
        quantile: float = 1.0,
    ) -> None:
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError(f"quantile must lie in [0, 1], got {quantile}")
        if features is None and n_trigger < 1:
            raise ConfigError(f"n_trigger must be >= 1, got {n_trigger}")
        self.target = target
        self.features = None if features is None else [int(f) for f in features]
        self.n_trigger = n_trigger
        self.quantile = quantile

    def _trigger_for(self, dataset: Dataset, rng: np.random.Generator) -> Trigger:
        d = dataset.X.shape[1]
        if self.features is None:
            if self.n_trigger > d:
                raise ConfigError(f"n_trigger {self.n_trigger} exceeds the {d} features")
            features = np.sort(rng.choice(d, size=self.n_trigger, replace=False))
        else:
            features = np.asarray(self.features, dtype=np.int64)
            if features.size == 0 or features.min() < 0 or features.max() >= d:
                raise ConfigError(f"trigger features must lie in 0..{d - 1}, got {self.features}")
        values = np.quantile(dataset.X[:, features], self.quantile, axis=0).astype(np.float32)
        return FeatureValueTrigger(features, values, d)
