"""Explicit, named registries: the only way the CLI and the runner resolve names."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from poisonlab.errors import ConfigError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered factory with its one-line description."""

    name: str
    factory: Callable[..., T]
    description: str

    def parameters(self) -> dict[str, Any]:
        """Keyword parameters the factory accepts, with their defaults."""
        sig = inspect.signature(self.factory)
        return {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in sig.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def create(self, **params: Any) -> T:
        """Call the factory, turning unknown parameter names into a ``ConfigError``."""
        known = self.parameters()
        takes_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(self.factory).parameters.values()
        )
        unknown = sorted(set(params) - set(known))
        if unknown and not takes_any:
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{self.name!r} has no parameter {unknown[0]!r}; its parameters are: {listed}")
        try:
            return self.factory(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad parameters for {self.name!r}: {exc}") from exc


class Registry(Generic[T]):
    """A named collection of factories of one kind (datasets, models, attacks, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, description)
            return factory

        return decorate

    def add(self, name: str, factory: Callable[..., T], description: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, factory, description)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries)
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **params: Any) -> T:
        return self.get(name).create(**params)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)
