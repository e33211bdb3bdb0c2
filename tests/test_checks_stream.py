"""The conformance battery for stream learners and ledger transforms: every entry passes, broken toys fail."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from poisonlab.checks import CheckFailed, check_learner, check_transform, yield_learner_checks
from poisonlab.errors import NotFittedError
from poisonlab.provenance.transforms import TRANSFORMS, Deduplicate, Normalise, Transform
from poisonlab.registry import Entry
from poisonlab.stream.learners import LEARNERS, SGDLearner


@pytest.mark.parametrize("entry", list(LEARNERS), ids=lambda e: e.name)
def test_every_learner_passes_the_battery(entry: Entry[Any], single_threaded: None) -> None:
    done = check_learner(entry)
    assert f"{entry.name}.declares_data_it_takes" in done
    for modality in entry.tag("modalities"):
        assert f"{entry.name}.{modality}.learns_from_the_stream" in done


@pytest.mark.parametrize("entry", list(TRANSFORMS), ids=lambda e: e.name)
def test_every_transform_passes_the_battery(entry: Entry[Any]) -> None:
    done = check_transform(entry)
    assert (
        f"{entry.name}.tabular.params_rebuild_it" in done and f"{entry.name}.code_hash_is_recordable" in done
    )


def test_the_battery_takes_classes_and_instances_and_reads_their_tags() -> None:
    names = [c.name for c in yield_learner_checks(SGDLearner, tags={"modalities": ("tabular",)})]
    assert names[0] == "SGDLearner.declares_data_it_takes" and not any(".image." in n for n in names)
    assert check_transform(Normalise(method="minmax"))[-1] == "Normalise.code_hash_is_recordable"
    check_transform(Deduplicate)


# --------------------------------------------------------------------------- broken learners


class _Toy:
    """A nearest-centroid learner that follows the protocol; the broken ones below each break one part."""

    modalities: ClassVar[tuple[str, ...]] = ("tabular",)

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _flat(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1).astype(np.float64)

    def warm_up(self, X: np.ndarray, y: np.ndarray, *, n_classes: int, rng: np.random.Generator) -> None:
        self.sums_ = np.zeros((n_classes, self._flat(X).shape[1]))
        self.counts_ = np.zeros(n_classes)
        self.learn(X, y, epochs=1, rng=rng)

    def learn(self, X: np.ndarray, y: np.ndarray, *, epochs: int, rng: np.random.Generator) -> None:
        np.add.at(self.sums_, y, self._flat(X))
        np.add.at(self.counts_, y, 1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "sums_"):
            raise NotFittedError("warm up first")
        centres = self.sums_ / np.maximum(self.counts_, 1)[:, None]
        centres[self.counts_ == 0] = np.inf
        d = ((self._flat(X)[:, None, :] - centres[None]) ** 2).sum(axis=2)
        return d.argmin(axis=1)


class _Probabilities(_Toy):
    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.eye(10)[super().predict(X)]  # one-hot rows, not labels


class _LearnsNothing(_Toy):
    def learn(self, X: np.ndarray, y: np.ndarray, *, epochs: int, rng: np.random.Generator) -> None:
        if not self.counts_.any():  # the warm-up's own call only
            super().learn(X, y, epochs=epochs, rng=rng)


class _Unseeded(_Toy):
    def predict(self, X: np.ndarray) -> np.ndarray:
        labels = super().predict(X)
        noisy = np.random.default_rng().random(len(labels)) < 0.2  # fresh entropy each call
        return np.where(noisy, 0, labels)


class _Mutates(_Toy):
    def learn(self, X: np.ndarray, y: np.ndarray, *, epochs: int, rng: np.random.Generator) -> None:
        super().learn(X, y, epochs=epochs, rng=rng)
        X *= 1.0001  # "normalises" in place


class _NoGuard(_Toy):
    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "sums_"):
            return np.zeros(len(X), dtype=np.int64)
        return super().predict(X)


def test_the_working_toy_learner_passes() -> None:
    check_learner(_Toy)


@pytest.mark.parametrize(
    ("toy", "failing"),
    [
        (_Probabilities, "predicts_labels_of_the_right_shape"),
        (_LearnsNothing, "learns_from_the_stream"),
        (_Unseeded, "same_seed_same_predictions"),
        (_Mutates, "does_not_mutate_input"),
        (_NoGuard, "predict_before_warm_up_is_not_fitted"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else v,
)
def test_a_broken_learner_fails_the_check_it_breaks(toy: type, failing: str) -> None:
    with pytest.raises(CheckFailed) as info:
        check_learner(toy)
    assert str(info.value).startswith(f"{toy.__name__}.tabular.{failing}: "), info.value


def test_a_learner_declaring_no_data_fails() -> None:
    with pytest.raises(CheckFailed, match="declares_data_it_takes"):
        check_learner(_Toy, tags={"modalities": ()})


# --------------------------------------------------------------------------- broken transforms


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class _Scale(Transform):
    """Multiplies the features by ``factor``; the broken ones below each break one part of the contract."""

    changes_features = True

    def __init__(self, *, factor: float = 2.0) -> None:
        self.factor = factor

    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        return X * self.factor, y, ids


class _ScaleInPlace(_Scale):
    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        X *= self.factor
        return X, y, ids


class _LosesItsParams(_Scale):
    def __init__(self, *, factor: float = 3.0) -> None:
        super().__init__(factor=factor)

    def params(self) -> dict[str, Any]:
        return {"factor": 2.0}  # not what it was built with


class _UnseededDrop(_Scale):
    drops_samples = True

    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        keep = np.sort(np.random.default_rng().permutation(len(ids))[: len(ids) - 2])
        return X[keep], y[keep], ids[keep]


class _ShortLabels(_Scale):
    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        return X, y[:-1], ids


class _SecretlyDrops(_Scale):
    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        return X[1:] * self.factor, y[1:], ids[1:]  # its tags say it keeps every sample


class _Relabels(_Scale):
    def __call__(self, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Arrays:
        return X * self.factor, (y + 1) % 2, ids


class _NotJson(_Scale):
    def params(self) -> dict[str, Any]:
        return {"factor": object()}


def test_the_working_toy_transform_passes() -> None:
    check_transform(_Scale)


@pytest.mark.parametrize(
    ("toy", "failing"),
    [
        (_ScaleInPlace, "does_not_mutate_input"),
        (_LosesItsParams, "params_rebuild_it"),
        (_UnseededDrop, "deterministic"),
        (_ShortLabels, "output_is_a_valid_batch"),
        (_SecretlyDrops, "changes_only_what_its_tags_say"),
        (_Relabels, "changes_only_what_its_tags_say"),
        (_NotJson, "params_rebuild_it"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else v,
)
def test_a_broken_transform_fails_the_check_it_breaks(toy: type, failing: str) -> None:
    with pytest.raises(CheckFailed) as info:
        check_transform(toy)
    assert str(info.value).startswith(f"{toy.__name__}.tabular.{failing}: "), info.value
