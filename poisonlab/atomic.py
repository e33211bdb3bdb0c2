"""Atomic file writes: a failure or a reader mid-write never sees half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from poisonlab.errors import ConfigError

__all__ = ["write_atomically"]


def write_atomically(path: Path, content: str | Callable[[Path], None]) -> None:
    """Write to a temporary file beside ``path``, then rename: a failure leaves no half file.

    ``content`` is text (UTF-8), or a function that writes the file at the path it is
    given (an ``.npz`` writer, say). The file gets the permissions a plain ``open``
    would give it (``mkstemp`` alone makes it private to its owner).

    Raises
    ------
    ConfigError
        If the file cannot be written (a full disk, no permission), naming it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    try:
        if callable(content):
            os.close(fd)
            content(Path(tmp))
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the mask means setting it; it is put back at once
    os.umask(mask)
    return mask
