"""What every conformance check shares: a named check, a failure type, a runner."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Check", "CheckFailed", "expect", "run_checks"]


class CheckFailed(AssertionError):
    """A component broke its contract; the message names the check and what was seen."""


@dataclass(frozen=True)
class Check:
    """One named check of one component, ready to run."""

    name: str
    run: Callable[[], None]

    def __call__(self) -> None:
        try:
            self.run()
        except CheckFailed as exc:
            raise CheckFailed(f"{self.name}: {exc}") from None


def expect(condition: object, message: str) -> None:
    """Fail the running check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def run_checks(checks: Iterable[Check]) -> list[str]:
    """Run every check in order, stop at the first failure; return the names of those run."""
    done = []
    for check in checks:
        check()
        done.append(check.name)
    return done


def named(prefix: str, items: Iterable[tuple[str, Callable[[], None]]]) -> Iterator[Check]:
    for name, fn in items:
        yield Check(f"{prefix}.{name}", fn)
