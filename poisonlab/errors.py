"""Exceptions raised by poisonlab.

Hierarchy::

    PoisonlabError          a user mistake: bad input data, bad config, bad option.
    ├── DataError           a dataset that cannot be loaded or fails validation.
    ├── ConfigError         an experiment config or a parameter that is not valid.
    └── UnknownNameError    a name that no registry knows (dataset, model, attack, ...).

The CLI prints a ``PoisonlabError`` as one line and exits non-zero. Any other
exception is a bug in poisonlab and keeps its traceback.
"""

from __future__ import annotations


class PoisonlabError(Exception):
    """A user mistake; its message is printed as one line by the CLI."""


class DataError(PoisonlabError):
    """A dataset that cannot be loaded or fails validation."""


class ConfigError(PoisonlabError):
    """An experiment config, option or parameter that is not valid."""


class UnknownNameError(PoisonlabError, KeyError):
    """A name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
