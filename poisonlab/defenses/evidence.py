"""Evidence for detectors: a proxy model's representations, cross-fitted probabilities, losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from poisonlab.data.dataset import Dataset
from poisonlab.data.scaling import standardise
from poisonlab.defenses.detectors.base import Evidence
from poisonlab.errors import DataError
from poisonlab.models import MODELS
from poisonlab.models.torch_models import TorchClassifier


def compute_evidence(
    dataset: Dataset,
    *,
    features: np.ndarray | None = None,
    model: str | None = None,
    n_folds: int | None = None,
    random_state: int = 0,
    on_progress: Callable[[str], None] | None = None,
    losses: bool = True,
    fit_rows: int | None = None,
) -> Evidence:
    """Train a proxy model on ``dataset`` and collect what detectors read.

    Representations come from the proxy trained on all of the data (a backdoor must
    be learned to leave its signature), or are the user's ``features``. Predicted
    probabilities are cross-fitted: each sample's come from a proxy that never saw
    it, so a flipped label cannot be memorised away. For images they come from the
    CNN; for tabular data and user features from an L2-regularised logistic
    regression on standardised inputs, because on a few hundred tabular rows an
    MLP memorises flipped labels even within a fold, while a linear model cannot
    (measured on breast_cancer with 10% random flips: confident learning recall
    0.81 at precision 0.58 with MLP probabilities, 0.83–0.95 at 0.87–0.95 with
    the linear model). ``n_folds`` defaults to 3 for the CNN (each fold is a
    network fit) and 5 for the linear model (cheap, and its probabilities are
    steadier with more training rows per fold). Per-sample losses are recorded after every epoch of the
    full-data proxy. For tabular data the standardised inputs are kept as
    ``inputs``, the label-free space where neighbours are compared. ``view`` is
    the label-free space of group votes: those inputs for tabular data, the top
    30 principal components of the raw pixels for images (on 28×28 digits, k-NN in that space
    agrees with the true label of 94% of samples, and a small trigger barely moves
    a sample in it). Colour images are first normalised channel by channel within each
    image (:func:`_contrast_normalised`): there each picture's own colours and
    lighting would otherwise make most of the pixels' variance. The CNN proxy trains
    for :func:`proxy_epochs` epochs, so that larger images cost a bounded amount of
    compute. The cross-fitted CNNs train on images moved by random whole-pixel offsets
    (:func:`fold_shift`: 2 pixels on 28×28, none on 8×8), the translation augmentation
    of Simard et al. (2003): a proxy that generalises better makes fewer confident
    mistakes on clean samples, and those are what label-noise flags on clean data are
    made of (on development `mnist` draws its out-of-sample accuracy went from 93–94%
    to 95%, and the samples of two clean splits flagged by confident learning from 56
    and 66 to 23 and 17). The full-data proxy is not augmented: its representations
    must carry a trigger at the place the poisons carry it.

    With the user's ``features`` the full-data proxy supplies only the per-sample
    losses (the representations are the features themselves): ``losses=False``, for
    a detector that does not read them, skips that fit, which on 100,000 × 256
    embeddings is about a fifth of a scan.

    Each fold's linear model is fitted on at most ``fit_rows`` of its training rows
    (a stratified random draw; every class keeps at least 100 rows or all it has),
    by default 20,000 or eight rows per weight (d × K), whichever is more. Cross-
    fitting a million rows then costs one prediction pass more than that draw:
    a linear model has long converged on it. Smaller sets are fitted on every
    training row, as before.
    """
    n = len(dataset)
    image = features is None and dataset.modality == "image"
    if n_folds is None:
        n_folds = 3 if image else 5
    counts = np.bincount(dataset.y, minlength=dataset.n_classes)
    if counts.min() < n_folds:
        raise DataError(
            f"{dataset.name}: class {dataset.classes[int(np.argmin(counts))]} has {counts.min()} samples; "
            f"cross-fitting needs at least {n_folds} per class"
        )
    if features is not None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != n:
            raise DataError(f"features have shape {features.shape}; expected {n} rows × d columns")
        if not np.isfinite(features).all():
            raise DataError("features contain NaN or inf")
        data_X = features
        name = model or "mlp"
    else:
        data_X = dataset.X
        name = model or ("cnn" if dataset.modality == "image" else "mlp")

    MODELS.require(name, "the scan's proxy model (it needs representations)", torch=True)

    settings = {"epochs": proxy_epochs(data_X.shape)} if name == "cnn" else {}

    def proxy() -> TorchClassifier:
        return cast(TorchClassifier, MODELS.create(name, random_state=random_state, **settings))

    def say(stage: str) -> None:
        if on_progress is not None:
            on_progress(stage)

    loss_history = representations = early = None
    if features is None or losses:
        full = proxy()
        full.track_losses = True
        say(f"training the proxy model ({name}) on {n} samples")
        full.fit(data_X, dataset.y)
        loss_history = full.loss_history_
        if features is None:
            representations = full.representations(data_X)
            early = full.representations(data_X, layer="early")
    if features is not None:
        representations = features

    flat = None if image else standardise(data_X.reshape(n, -1))
    view = flat
    if image:
        pixels = _contrast_normalised(data_X).reshape(n, -1)
        view = PCA(min(30, n - 1, pixels.shape[1]), random_state=random_state).fit_transform(pixels)
    pred_probs = np.zeros((n, dataset.n_classes))
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    for fold, (train_idx, held_idx) in enumerate(folds.split(np.zeros(n), dataset.y), start=1):
        say(f"cross-fitting out-of-sample probabilities, fold {fold} of {n_folds}")
        if flat is None:
            fold_model = proxy()
            fold_model.n_classes = dataset.n_classes
            if fold_model.arch == "cnn":
                fold_model.shift = fold_shift(data_X.shape)
            fold_model.fit(data_X[train_idx], dataset.y[train_idx])
            pred_probs[held_idx] = fold_model.predict_proba(data_X[held_idx])
        else:
            most = fit_rows if fit_rows is not None else max(20_000, 8 * flat.shape[1] * dataset.n_classes)
            fit_idx = _stratified_draw(train_idx, dataset.y, most, random_state + fold)
            linear = LogisticRegression(C=0.1, max_iter=1000).fit(flat[fit_idx], dataset.y[fit_idx])
            pred_probs[np.ix_(held_idx, linear.classes_)] = linear.predict_proba(flat[held_idx])
    assert representations is not None  # the proxy's, or the user's features
    if features is None:
        representations = np.asarray(representations, dtype=np.float64)
    # (the user's embeddings stay float32: a million rows of 256 are 1 GB as they are)
    return Evidence(
        representations=representations,
        early_representations=None if early is None else np.asarray(early, dtype=np.float64),
        pred_probs=pred_probs,
        losses=loss_history,
        inputs=flat if features is None else None,
        view=view if features is None else None,
    )


def fold_shift(shape: tuple[int, ...]) -> int:
    """Pixels by which the cross-fitted CNNs move their training images: 1 per whole 14 of the side.

    2 on 28×28 images; none on 8×8 digits, where one pixel is an eighth of the
    image (a CNN trained with 1-pixel shifts there lost a point of test accuracy).
    """
    return int(min(shape[-2:])) // 14


def proxy_epochs(shape: tuple[int, ...], *, budget: float = 3e7, most: int = 30, least: int = 10) -> int:
    """Training epochs for the CNN proxy: ``budget`` pixel-epochs, between ``least`` and ``most``.

    8×8 digits (1,347 × 64 pixels) get 30 epochs; 3,500 images of 28×28 get 10,
    which is enough for a small CNN to reach 95% test accuracy and learn a
    backdoor (measured ASR 99.9% for a 3×3 patch at 5%) in about 6 s on 2 cores.
    """
    pixels = float(np.prod(shape))
    return int(np.clip(budget // max(pixels, 1.0), least, most))


def _stratified_draw(rows: np.ndarray, y: np.ndarray, most: int, seed: int) -> np.ndarray:
    """At most about ``most`` of ``rows``, drawn per class in proportion (each keeps 100 or all it has)."""
    if rows.size <= most:
        return rows
    rng = np.random.default_rng(seed)
    labels = y[rows]
    kept = []
    for c in np.unique(labels):
        members = rows[labels == c]
        take = min(members.size, max(100, round(most * members.size / rows.size)))
        kept.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(kept))


def _contrast_normalised(X: np.ndarray) -> np.ndarray:
    """Colour images (N×C×H×W, C > 1) with each channel of each image at mean 0 and unit spread.

    The brightness and contrast normalisation of Coates, Lee and Ng (2011, "An
    analysis of single-layer networks in unsupervised feature learning", AISTATS):
    in colour photographs a picture's overall colour and lighting make most of the
    raw pixels' variance, so neighbours in raw pixels share a palette rather than
    content. Per channel, a colour cast goes too. Grey images (one channel, as
    digits and ``mnist``) are returned as they are (their measured figures were
    made on raw pixels).
    """
    X = np.array(X, dtype=np.float64)  # a copy: normalised in place below
    if X.ndim != 4 or X.shape[1] == 1:
        return X
    spread = np.sqrt(X.var(axis=(2, 3), keepdims=True) + 10 / 255**2)  # their 10, on 0–255 pixels
    X -= X.mean(axis=(2, 3), keepdims=True)
    X /= spread
    return X
