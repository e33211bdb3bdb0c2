"""One :class:`Registry` type for every kind of component, each entry carrying its tags.

A *kind* (attack, detector, aggregator, ...) is one registry. Its entries are
factories (a class or a function taking keyword-only hyperparameters) with a
one-line description and **tags**: the capabilities the component declares, in
the spirit of scikit-learn's estimator tags. Each registry names the tags its
kind has and their defaults (its *schema*); an entry may set only those. A class
registered as a factory declares tags as class attributes of the same names
(``Attack.tasks``, ``Detector.needs``); tags given to :meth:`Registry.add`
override them, which is how plain functions declare theirs.

The config parser, the runner, the federated and stream simulations and
``poisonlab list`` read these tags: no code outside a component tests its name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from poisonlab.errors import ConfigError, IncompatibleError, UnknownNameError

T = TypeVar("T")

__all__ = ["Entry", "Registry", "describe", "registries"]


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered factory with its one-line description and its tags."""

    name: str
    factory: Callable[..., T]
    description: str
    tags: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    kind: str = ""

    def parameters(self) -> dict[str, Any]:
        """Keyword parameters the factory accepts, with their defaults (``None`` where required)."""
        sig = inspect.signature(self.factory)
        # a function's leading positional argument without a default is its data (an
        # aggregation rule's updates), not a hyperparameter
        return {
            p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in sig.parameters.values()
            if p.kind is p.KEYWORD_ONLY
            or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not inspect.Parameter.empty)
        }

    def tag(self, key: str) -> Any:
        """The value of tag ``key`` (every tag of the kind's schema is present)."""
        try:
            return self.tags[key]
        except KeyError:
            raise KeyError(f"{self.kind} tags have no {key!r}; known: {', '.join(self.tags)}") from None

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Refuse parameter names the factory does not take, naming the ones it does."""
        takes_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in inspect.signature(self.factory).parameters.values()
        )
        unknown = sorted(set(params) - set(self.parameters()))
        if unknown and not takes_any:
            listed = ", ".join(sorted(self.parameters())) or "none"
            raise ConfigError(f"{self.name!r} has no parameter {unknown[0]!r}; its parameters are: {listed}")

    def create(self, **params: Any) -> T:
        """Call the factory, turning bad parameter names or values into a ``ConfigError``."""
        self.check_params(params)
        try:
            return self.factory(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad parameters for {self.name!r}: {exc}") from exc

    def supports(self, **wanted: Any) -> bool:
        """Whether every ``tag=value`` holds: a tag holding a tuple must contain the value."""
        for key, value in wanted.items():
            have = self.tag(key)
            if isinstance(have, tuple | frozenset | set | list):
                if value not in have:
                    return False
            elif have != value:
                return False
        return True


class Registry(Generic[T]):
    """A named collection of factories of one kind (datasets, models, attacks, ...).

    ``tags`` is the kind's schema: every tag an entry of this kind has, with its
    default. ``title`` is the plural heading ``poisonlab list`` shows.
    """

    def __init__(self, kind: str, *, tags: Mapping[str, Any] | None = None, title: str | None = None) -> None:
        self.kind = kind
        self.title = title or f"{kind}s"
        self.schema: Mapping[str, Any] = MappingProxyType(dict(tags or {}))
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, description: str, **tags: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, description, **tags)
            return factory

        return decorate

    def add(self, name: str, factory: Callable[..., T], description: str, **tags: Any) -> Entry[T]:
        """Register ``factory`` under ``name``; unknown tag names are a bug and raise ``ValueError``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        unknown = sorted(set(tags) - set(self.schema))
        if unknown:
            raise ValueError(f"{self.kind} tags have no {unknown[0]!r}; known: {', '.join(self.schema)}")
        declared = {
            key: getattr(factory, key)
            for key in self.schema
            if inspect.isclass(factory)
            and not callable(getattr(factory, key, None))
            and hasattr(factory, key)
        }
        merged = {**self.schema, **declared, **tags}
        entry = Entry(name, factory, description, MappingProxyType(merged), self.kind)
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(self._entries) + self._hint(name)
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def _hint(self, name: object) -> str:
        """``; did you mean 'x'?`` for a near miss (a typo), else nothing."""
        import difflib

        if not isinstance(name, str):
            return ""
        close = difflib.get_close_matches(name.lower(), list(self._entries), n=1, cutoff=0.75)
        return f"; did you mean {close[0]!r}?" if close else ""

    def create(self, name: str, **params: Any) -> T:
        return self.get(name).create(**params)

    def where(self, **wanted: Any) -> list[Entry[T]]:
        """Entries whose tags hold every ``tag=value`` (see :meth:`Entry.supports`)."""
        return [e for e in self._entries.values() if e.supports(**wanted)]

    def require(self, name: str, what: str, **wanted: Any) -> Entry[T]:
        """The entry ``name``, refused with one line when its tags do not hold ``wanted``.

        ``what`` names the data or the other component, e.g. ``"dataset 'digits' (image
        classification)"``; the message says which entries would work instead.
        """
        entry = self.get(name)
        for key, value in wanted.items():
            if not entry.supports(**{key: value}):
                have = entry.tag(key)
                shown = " or ".join(map(str, have)) if isinstance(have, tuple | frozenset) else str(have)
                fits = [e.name for e in self.where(**wanted)]
                alternatives = f"; {self.title} that would work: {', '.join(fits)}" if fits else ""
                says = f"is for {shown} data" if key in _DATA_TAGS else f"has {key.replace('_', ' ')} {shown}"
                raise IncompatibleError(
                    f"{self.kind} {name!r} {says}, so it cannot work with {what}{alternatives}"
                )
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)


#: Tags that say which data a component takes (phrased "is for ... data" in messages).
_DATA_TAGS = frozenset({"task", "tasks", "modality", "modalities"})


def registries() -> list[Registry[Any]]:
    """poisonlab's registry of every kind, in the order a user's data flows through them.

    Imported on first use; none of the modules loads PyTorch.
    """
    from importlib import import_module

    return [getattr(import_module(module), name) for module, name in _REGISTRIES]


#: Where each kind's registry lives, in the order ``poisonlab list`` shows them.
_REGISTRIES: tuple[tuple[str, str], ...] = (
    ("poisonlab.data", "DATASETS"),
    ("poisonlab.data", "GRAPHS"),
    ("poisonlab.models", "MODELS"),
    ("poisonlab.attacks", "ATTACKS"),
    ("poisonlab.defenses", "DETECTORS"),
    ("poisonlab.defenses", "DEFENSES"),
    ("poisonlab.federated.aggregators", "AGGREGATORS"),
    ("poisonlab.federated.clients", "CLIENT_ATTACKS"),
    ("poisonlab.stream.learners", "LEARNERS"),
    ("poisonlab.provenance.transforms", "TRANSFORMS"),
    ("poisonlab.experiments.scenarios", "SCENARIOS"),
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list | frozenset | set):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, frozenset | set) else items
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def describe(selected: Iterable[Registry[Any]] | None = None) -> dict[str, Any]:
    """Every kind with its entries: description, parameters with defaults, tags; JSON-ready."""
    out: dict[str, Any] = {}
    for registry in selected if selected is not None else registries():
        out[registry.kind] = {
            "title": registry.title,
            "tag_defaults": _jsonable(dict(registry.schema)),
            "entries": [
                {
                    "name": e.name,
                    "description": e.description,
                    "parameters": _jsonable(e.parameters()),
                    "tags": _jsonable(dict(e.tags)),
                }
                for e in registry
            ],
        }
    return out
