"""Small input checks shared by the simulations: a bad value is a one-line ConfigError."""

from __future__ import annotations

import numbers

from poisonlab.errors import ConfigError

__all__ = ["positive_int"]


def positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` if it is an integer ``>= 1`` (booleans are not), else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
