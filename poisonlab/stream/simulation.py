"""A seeded online-learning stream with a backdoor-poisoning source, and an optional gate.

:func:`simulate_stream` shuffles ``train`` (seeded), keeps the first ``trusted``
samples as a clean seed set that initialises the learner (and the gate), and streams
the rest in batches of ``batch_size``, assigned round-robin to named sources. The
poisoned sources' batches carry a backdoor (poisonlab's BadNets, Blended or tabular
feature trigger: triggered non-target samples relabelled to ``target``) on exactly
``round(poison_share · n_stream)`` samples, so ``poison_share`` is the poisoned share
of the *whole* stream: with three sources and 10 %, about 30 % of one poisoned
source's samples. With a gate, each batch is checked before the model learns from
it; quarantined samples are returned in the result, never dropped silently.

The learner (``learner``) is a name of :data:`~poisonlab.stream.learners.LEARNERS`
(``"sgd"``, ``"mlp_sk"``, ``"mlp"``, ``"cnn"``) or any object following the
:class:`~poisonlab.stream.learners.Learner` protocol; the attack is a name of
:data:`poisonlab.attacks.ATTACKS` whose tags say it is a backdoor for the data's
modality.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.errors import ConfigError
from poisonlab.metrics import attack_success_rate, clean_accuracy, non_target_mask
from poisonlab.stream.gate import StreamGate
from poisonlab.stream.learners import LEARNERS, Learner
from poisonlab.validation import positive_int

if TYPE_CHECKING:
    from poisonlab.attacks.base import Attack

__all__ = ["BatchRecord", "GateEvent", "StreamResult", "simulate_stream"]


@dataclass(frozen=True)
class BatchRecord:
    """One streamed batch: who sent it, what it held, what the gate let through.

    ``accuracy`` (clean test accuracy) and ``asr`` (attack success rate on triggered
    non-target test inputs) are measured after the model learned from the batch,
    every ``eval_every`` batches and after the last one; ``None`` otherwise.
    """

    step: int
    source: str
    n: int
    n_poison: int
    n_admitted: int
    n_admitted_poison: int
    n_rejected: int
    batch_rejected: bool
    reason: str
    accuracy: float | None
    asr: float | None


@dataclass(frozen=True, eq=False)
class GateEvent:
    """One batch as it leaves the gate, before the learner sees it (for ledgers and audits).

    ``X`` are the features and ``y`` the labels the learner is given (poisons
    included), ``y`` in the dataset's original label space (``train.classes``);
    ``ids`` are ``train``'s ids of those samples. ``rejected`` is the quarantine mask
    (all ``False`` without a gate) and ``reason`` the gate's one-line reason (``"no
    gate"`` without one). ``poison`` marks the poisoned samples: the simulation knows
    them, a real gate does not, so it is for reporting only. The arrays are read-only.
    """

    step: int
    source: str
    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    rejected: np.ndarray
    reason: str
    poison: np.ndarray

    @property
    def admitted(self) -> np.ndarray:
        """The complement of ``rejected``: the samples the learner learns from."""
        return ~self.rejected


@dataclass(frozen=True, eq=False)
class StreamResult:
    """The per-batch records, final metrics, totals, and the quarantine.

    ``quarantined`` holds the indices (into ``train``) of every sample the gate
    rejected, in stream order, and ``quarantined_source`` the source that sent each;
    ``quarantine`` is those samples as the gate received them (poisoned features and
    labels included), with ``ids`` from ``train`` and the source column set.
    ``poison_index`` are the indices (into ``train``) of the poisoned samples.
    """

    records: tuple[BatchRecord, ...]
    accuracy: float
    asr: float
    n_stream: int
    n_poison: int
    n_poison_admitted: int
    n_clean_admitted: int
    n_clean_rejected: int
    poison_index: np.ndarray
    quarantined: np.ndarray
    quarantined_source: np.ndarray
    quarantine: Dataset | None

    @property
    def n_poison_rejected(self) -> int:
        return self.n_poison - self.n_poison_admitted


# --------------------------------------------------------------------------- simulation


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view a callback cannot write through, so it cannot change what the learner sees."""
    view = array.view()
    view.flags.writeable = False
    return view


def _backdoor(name: str, target: int, train: Dataset) -> Attack:
    """The attack ``name`` from ATTACKS, refused unless it is a backdoor for ``train``'s data."""
    from poisonlab.attacks import ATTACKS

    what = f"the stream on {train.name!r} ({train.modality} data), which plants a backdoor"
    entry = ATTACKS.require(name, what, backdoor=True, modalities=train.modality, tasks="classification")
    return entry.create(target=target)


def _learner(learner: str | Learner, seed: int, train: Dataset) -> Learner:
    """A learner built from its LEARNERS entry (seeded with ``seed``), or the object given."""
    if not isinstance(learner, str):
        if not isinstance(learner, Learner):
            raise ConfigError(
                f"learner must be a name ({', '.join(LEARNERS.names())}) or an object with "
                f"warm_up, learn and predict, got {type(learner).__name__}"
            )
        return learner
    what = f"the stream on {train.name!r} ({train.modality} data)"
    return LEARNERS.require(learner, what, modalities=train.modality).create(random_state=seed)


def simulate_stream(
    train: Dataset,
    test: Dataset,
    *,
    learner: str | Learner = "sgd",
    batch_size: int = 50,
    sources: tuple[str, ...] = ("vendor-a", "vendor-b", "crowd"),
    poisoned_sources: tuple[str, ...] = ("crowd",),
    poison_share: float = 0.10,
    attack: str = "badnets",
    target: int = 0,
    trusted: int = 200,
    gate: bool | StreamGate = True,
    epochs_per_batch: int = 5,
    eval_every: int = 5,
    seed: int = 0,
    on_batch: Callable[[BatchRecord], None] | None = None,
    on_gate: Callable[[GateEvent], None] | None = None,
) -> StreamResult:
    """Stream ``train`` batch by batch into an online learner, one source poisoned.

    Parameters
    ----------
    train, test : Dataset
        Classification data: ``train`` is the stream (and the trusted seed), ``test``
        measures clean accuracy and the attack success rate.
    learner : str or Learner
        The online model: a name of :data:`~poisonlab.stream.learners.LEARNERS`
        (``"sgd"``, ``"mlp_sk"``, ``"mlp"``, ``"cnn"``; seeded with ``seed``) whose
        ``modalities`` tag holds the data's, or a learner object (seeded as built).
        On digits with 10 % BadNets or Blended poison and no gate, ``"sgd"``,
        ``"mlp_sk"`` and ``"mlp"`` all end with ASR >= 0.96 (seeds 0-2); the small CNN
        learns BadNets (0.84-0.99) but not the Blended key in one pass of the stream
        (0.01-0.07).
    batch_size : int
        Samples per streamed batch (the last one may be smaller).
    sources : tuple of str
        Source names; batch ``i`` comes from ``sources[i % len(sources)]``.
    poisoned_sources : tuple of str
        Sources that send poisoned samples; all must be in ``sources``.
    poison_share : float in [0, 1)
        Poisoned share of the whole stream; the poisons are spread at random over the
        poisoned sources' non-target samples, so they must have enough of them.
    attack : str
        A backdoor of :data:`poisonlab.attacks.ATTACKS` (tag ``backdoor=True``) for the
        data's modality, built with its defaults and ``target``: ``"badnets"`` or
        ``"blended"`` for images, ``"feature_trigger"`` for tabular data.
    target : int
        Target class, a label of ``train``'s label space.
    trusted : int
        Size of the clean seed set (the first samples of the seeded shuffle).
    gate : bool or StreamGate
        ``True`` builds a default :class:`StreamGate`; an instance is (re)fitted on the
        trusted seed and used as is (so its state can be inspected afterwards);
        ``False`` lets every sample through.
    epochs_per_batch : int
        Passes over each admitted batch (``partial_fit`` calls for the scikit-learn
        learners).
    eval_every : int
        Evaluate the model every this many batches, and after the last one.
    seed : int
        Seeds the shuffle, the poisons, the learner and its updates.
    on_batch : callable, optional
        Called with each :class:`BatchRecord` as soon as it is complete.
    on_gate : callable, optional
        Called with a :class:`GateEvent` for every batch, admitted or rejected, with or
        without a gate, after the gate decided and before the learner sees the batch:
        the hook for recording the stream in a provenance ledger.

    Returns
    -------
    StreamResult

    Raises
    ------
    UnknownNameError
        An unknown learner or attack name.
    IncompatibleError
        A learner that does not take the data's modality, or an attack that is not a
        backdoor or not for the data's modality (naming what would work).
    ConfigError
        A parameter out of range (one line each).
    """
    # ---- validation: one clear line per bad input, before any training
    if train.is_regression or test.is_regression:
        raise ConfigError("the stream simulation needs classification data, not regression")
    if train.X.shape[1:] != test.X.shape[1:]:
        raise ConfigError(f"train samples have shape {train.X.shape[1:]}, test samples {test.X.shape[1:]}")
    batch_size = positive_int(batch_size, "batch_size")
    epochs_per_batch = positive_int(epochs_per_batch, "epochs_per_batch")
    eval_every = positive_int(eval_every, "eval_every")
    trusted = positive_int(trusted, "trusted")
    if trusted >= len(train):
        raise ConfigError(f"trusted ({trusted}) must be smaller than the {len(train)} training samples")
    if isinstance(poison_share, bool) or not (
        isinstance(poison_share, numbers.Real) and 0.0 <= poison_share < 1.0
    ):
        raise ConfigError(f"poison_share must lie in [0, 1), got {poison_share!r}")
    sources = tuple(str(s) for s in sources)
    if not sources or len(set(sources)) != len(sources):
        raise ConfigError(f"sources must be distinct names, at least one, got {list(sources)}")
    unknown = [s for s in poisoned_sources if s not in sources]
    if unknown:
        raise ConfigError(f"poisoned source {unknown[0]!r} is not one of the sources {list(sources)}")
    if not (gate is True or gate is False or isinstance(gate, StreamGate)):
        raise ConfigError(f"gate must be True, False or a StreamGate, got {gate!r}")
    if int(target) not in train.classes:
        raise ConfigError(
            f"target class {target} does not exist in {train.name} (labels: {list(train.classes)})"
        )
    attack_obj = _backdoor(attack, int(target), train)
    model = _learner(learner, seed, train)

    # ---- the stream: seeded shuffle, trusted seed, batches, sources, poisons
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    seed_idx, stream_idx = order[:trusted], order[trusted:]
    n_stream = len(stream_idx)
    batches = [stream_idx[i : i + batch_size] for i in range(0, n_stream, batch_size)]
    batch_source = [sources[i % len(sources)] for i in range(len(batches))]
    poisoned_rows = np.concatenate(
        [b for b, s in zip(batches, batch_source, strict=True) if s in poisoned_sources] or [np.zeros(0, int)]
    ).astype(np.int64)
    n_poison = round(float(poison_share) * n_stream)
    target_index = train.classes.index(int(target))
    eligible = int(np.sum(train.y[poisoned_rows] != target_index))
    if n_poison > eligible:
        raise ConfigError(
            f"poison_share {poison_share} needs {n_poison} poisoned samples but the poisoned sources "
            f"send only {eligible} non-target samples; lower it or add poisoned sources"
        )
    # The attack poisons the poisoned sources' rows; with n_poison = 0 only its trigger is used.
    victims = train.subset(poisoned_rows) if n_poison else train
    result = attack_obj.poison(victims, max(n_poison, 1), rng)
    trigger = result.trigger
    if trigger is None:  # every backdoor returns its trigger; anything else is a bug
        raise RuntimeError(f"attack {attack!r} returned no trigger")
    X_stream, y_stream = train.X.copy(), train.y.copy()
    is_poison = np.zeros(len(train), dtype=bool)
    if n_poison:
        rows = poisoned_rows[result.poison_mask]
        X_stream[rows] = result.dataset.X[result.poison_mask]
        y_stream[rows] = result.dataset.y[result.poison_mask]
        is_poison[rows] = True

    X_test = test.X
    # attack_success_rate reads the non-target rows of predictions on the whole triggered test set.
    X_asr = trigger.apply(test.X) if non_target_mask(test.y, target_index).any() else None

    # ---- learner and gate from the trusted seed
    model.warm_up(train.X[seed_idx], train.y[seed_idx], n_classes=train.n_classes, rng=rng)
    the_gate: StreamGate | None = None
    if gate is not False:
        the_gate = StreamGate() if gate is True else gate
        the_gate.fit(train.X[seed_idx], train.y[seed_idx])

    def evaluate() -> tuple[float, float]:
        accuracy = clean_accuracy(test.y, model.predict(X_test))
        asr = 0.0 if X_asr is None else attack_success_rate(test.y, model.predict(X_asr), target_index)
        return accuracy, asr

    records: list[BatchRecord] = []
    quarantined: list[np.ndarray] = []
    quarantined_source: list[str] = []
    admitted_poison = admitted_clean = rejected_clean = 0
    accuracy = asr = float("nan")
    for step, (rows, source) in enumerate(zip(batches, batch_source, strict=True), start=1):
        X_b, y_b = X_stream[rows], y_stream[rows]
        if the_gate is not None:
            decision = the_gate.check(X_b, y_b, source=source)
            keep, batch_rejected, reason = decision.admitted, decision.batch_rejected, decision.reason
        else:
            keep, batch_rejected, reason = np.ones(len(rows), dtype=bool), False, "no gate"
        poison_b = is_poison[rows]
        if on_gate is not None:
            on_gate(
                GateEvent(
                    step=step,
                    source=source,
                    X=_read_only(X_b),
                    y=_read_only(train.original_labels(y_b)),
                    ids=_read_only(train.ids[rows]),
                    rejected=_read_only(~keep),
                    reason=reason,
                    poison=_read_only(poison_b),
                )
            )
        if keep.any():
            model.learn(X_b[keep], y_b[keep], epochs=epochs_per_batch, rng=rng)
            if the_gate is not None:
                the_gate.admit(X_b[keep], y_b[keep])
        if not keep.all():
            quarantined.append(rows[~keep])
            quarantined_source.extend([source] * int((~keep).sum()))
        admitted_poison += int((keep & poison_b).sum())
        admitted_clean += int((keep & ~poison_b).sum())
        rejected_clean += int((~keep & ~poison_b).sum())
        last = step == len(batches)
        measured = step % eval_every == 0 or last
        if measured:
            accuracy, asr = evaluate()
        record = BatchRecord(
            step=step,
            source=source,
            n=len(rows),
            n_poison=int(poison_b.sum()),
            n_admitted=int(keep.sum()),
            n_admitted_poison=int((keep & poison_b).sum()),
            n_rejected=int((~keep).sum()),
            batch_rejected=bool(batch_rejected),
            reason=reason,
            accuracy=accuracy if measured else None,
            asr=asr if measured else None,
        )
        records.append(record)
        if on_batch is not None:
            on_batch(record)

    q_index = np.concatenate(quarantined).astype(np.int64) if quarantined else np.zeros(0, dtype=np.int64)
    q_source = np.asarray(quarantined_source, dtype=str)
    quarantine = None
    if len(q_index):
        quarantine = Dataset(
            X=X_stream[q_index],
            y=y_stream[q_index],
            ids=train.ids[q_index],
            source=q_source,
            name=f"{train.name}-quarantine",
            classes=train.classes,
        )
    return StreamResult(
        records=tuple(records),
        accuracy=accuracy,
        asr=asr,
        n_stream=n_stream,
        n_poison=int(is_poison.sum()),
        n_poison_admitted=admitted_poison,
        n_clean_admitted=admitted_clean,
        n_clean_rejected=rejected_clean,
        poison_index=np.flatnonzero(is_poison),
        quarantined=q_index,
        quarantined_source=q_source,
        quarantine=quarantine,
    )
