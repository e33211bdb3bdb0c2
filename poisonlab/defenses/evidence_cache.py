"""Share a scan's evidence between the defenses of one grid cell: the proxy is fitted once per cell.

In a grid, every detector-based defense of a cell (same dataset, attack, rate and
seed) scans the *same* poisoned training split with the *same* seed, so the proxy
fit and cross-fitted probabilities (:func:`~poisonlab.defenses.evidence.compute_evidence`)
are the same for all of them. The runner opens a cache folder for the grid
(:func:`evidence_cache`); :func:`shared_evidence` keys each computation by a hash
of the data's content and the seed, stores it once (``.npz``, read back without
pickle) and lets every later defense read it. Runs in parallel processes that need
the same evidence at the same time wait on a file lock instead of fitting twice.
Outside a grid (``poisonlab scan``, a notebook) nothing is cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from poisonlab.data.dataset import Dataset
from poisonlab.defenses.detectors.base import Evidence

__all__ = ["evidence_cache", "shared_evidence", "use_evidence_cache"]

#: The grid's cache folder in this process (set by the runner; None outside a grid).
_folder: Path | None = None

_FIELDS = ("representations", "early_representations", "pred_probs", "losses", "inputs", "view")


def use_evidence_cache(folder: str | os.PathLike[str] | None) -> None:
    """Make this process read and write evidence in ``folder`` (None: compute every time).

    The runner calls it in each worker process it starts; :func:`evidence_cache`
    does it for the process that runs the grid.
    """
    global _folder
    _folder = None if folder is None else Path(folder)


@contextlib.contextmanager
def evidence_cache(parent: Path) -> Iterator[Path]:
    """A fresh cache folder inside ``parent`` for one grid, used by this process, removed at the end.

    The folder's name carries this process's id, so that a folder left by a grid
    whose driver was killed outright (SIGKILL: no clean-up ran) is removed by the
    next grid in the same place, while one of a grid still running is left alone.
    """
    _remove_orphans(parent)
    folder = Path(tempfile.mkdtemp(prefix=f".evidence-{os.getpid()}-", dir=parent))
    previous = _folder
    use_evidence_cache(folder)
    try:
        yield folder
    finally:
        use_evidence_cache(previous)
        shutil.rmtree(folder, ignore_errors=True)


def _remove_orphans(parent: Path) -> None:
    for folder in parent.glob(".evidence-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def shared_evidence(
    dataset: Dataset,
    *,
    random_state: int,
    on_progress: Callable[[str], None] | None = None,
) -> Evidence:
    """``compute_evidence(dataset, random_state=...)``, computed once per content and seed in a grid."""
    from poisonlab.defenses import evidence as computing  # looked up at call time: tests count it

    if _folder is None:
        return computing.compute_evidence(dataset, random_state=random_state, on_progress=on_progress)
    key = _key(dataset, random_state)
    path = _folder / f"{key}.npz"
    with _locked(_folder / f"{key}.lock"):
        if path.exists():
            return _read(path)
        found = computing.compute_evidence(dataset, random_state=random_state, on_progress=on_progress)
        _write(path, found)
    return found


def _key(dataset: Dataset, random_state: int) -> str:
    """What the evidence depends on: the rows (features and labels, in order) and the seed."""
    digest = hashlib.sha256()
    for array in (dataset.X, dataset.y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(f"classes={dataset.n_classes};seed={random_state}".encode())
    return digest.hexdigest()[:32]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): a rare duplicate fit, never a wrong result
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, evidence: Evidence) -> None:
    arrays = {name: getattr(evidence, name) for name in _FIELDS if getattr(evidence, name) is not None}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)  # a reader never sees half a file


def _read(path: Path) -> Evidence:
    with np.load(path, allow_pickle=False) as stored:
        found = {name: stored[name] for name in stored.files}
    return Evidence(**found)
