"""Exceptions raised by poisonlab.

Hierarchy::

    PoisonlabError              anything poisonlab raises on purpose; the CLI prints it as one line
    ├── UserError               a user mistake: fix the input and run again (exit 2)
    │   ├── DataError           a dataset that cannot be loaded or fails validation
    │   ├── ConfigError         an experiment config, option or parameter that is not valid
    │   │   └── IncompatibleError   a component that cannot work on the data or with another component
    │   ├── UnknownNameError    a name that no registry knows (dataset, model, attack, ...)
    │   └── RunFailed           a run stopped on a user mistake; its record holds the cause
    ├── NotFittedError          a fitted-state method called before ``fit`` (a gate, a detector)
    ├── StoreError              a results database that cannot be opened, read or written
    └── LedgerError             a provenance ledger that cannot be used as asked
        ├── LedgerBusy          another process holds the ledger's write lock; try again
        └── IntegrityError      what the ledger stores fails its hashes, chain or signatures (exit 1)

The library raises these; the command line maps each *type* to a message and an
exit code (:data:`EXIT_CODES`) and never reads an exception's text to decide.
Any other exception is a bug in poisonlab and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "ConfigError",
    "DataError",
    "IncompatibleError",
    "IntegrityError",
    "LedgerBusy",
    "LedgerError",
    "NotFittedError",
    "PoisonlabError",
    "RunFailed",
    "StoreError",
    "UnknownNameError",
    "UserError",
    "exit_code",
]


class PoisonlabError(Exception):
    """Raised by poisonlab on purpose; its message is printed as one line by the CLI."""


class UserError(PoisonlabError):
    """A user mistake: bad input data, a bad config, a bad option."""


class DataError(UserError):
    """A dataset that cannot be loaded or fails validation."""


class ConfigError(UserError):
    """An experiment config, option or parameter that is not valid."""


class IncompatibleError(ConfigError):
    """A component whose declared capabilities (tags) do not fit the data or another component."""


class UnknownNameError(UserError, KeyError):
    """A name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RunFailed(UserError):
    """A run of a grid stopped on a user mistake (bad data or a bad parameter); its record says which."""


class NotFittedError(PoisonlabError, ValueError):
    """A method that needs fitted state was called before ``fit``."""


class StoreError(PoisonlabError):
    """A results database that cannot be opened, read or written (corrupt, not SQLite, read-only)."""


class LedgerError(PoisonlabError):
    """A provenance ledger that cannot be used as asked."""


class LedgerBusy(LedgerError):
    """Another process holds the ledger's write lock."""


class IntegrityError(LedgerError):
    """Stored objects, the hash chain or signatures do not match what was recorded."""


#: Exit code of each error type, most specific first; the CLI's only mapping.
EXIT_CODES: tuple[tuple[type[PoisonlabError], int], ...] = (
    (LedgerBusy, 75),  # EX_TEMPFAIL: the same command may succeed once the other writer is done
    (IntegrityError, 1),  # what `ledger verify` exits with for a damaged ledger: the data, not the call
    (PoisonlabError, 2),
)


def exit_code(exc: PoisonlabError) -> int:
    """The CLI's exit code for ``exc``, chosen by its type alone."""
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
