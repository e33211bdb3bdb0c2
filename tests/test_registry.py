"""Registries: name lookup, helpful errors, duplicate registration, parameters."""

from __future__ import annotations

import pytest

from poisonlab.attacks import ATTACKS
from poisonlab.data import DATASETS
from poisonlab.errors import ConfigError, PoisonlabError, UnknownNameError
from poisonlab.models import MODELS
from poisonlab.registry import Registry


@pytest.mark.parametrize("registry", [ATTACKS, MODELS, DATASETS], ids=lambda r: r.kind)
def test_unknown_name_lists_known_names(registry):
    with pytest.raises(UnknownNameError) as info:
        registry.get("no-such-thing")
    message = str(info.value)
    assert message.startswith(f"unknown {registry.kind} 'no-such-thing'; known: ")
    for name in registry.names():
        assert name in message
    assert not message.startswith('"')  # not KeyError's quoted repr
    with pytest.raises(UnknownNameError):
        registry.create("no-such-thing")


def test_unknown_name_error_is_a_poisonlab_error_and_a_key_error():
    with pytest.raises(PoisonlabError):
        ATTACKS.get("nope")
    with pytest.raises(KeyError):
        MODELS.get("nope")


def test_known_registries():
    assert {"none", "label_flip", "targeted_flip", "farthest_flip", "badnets", "blended"} <= set(
        ATTACKS.names()
    )
    assert {"cnn", "mlp", "logreg", "svm", "random_forest", "knn"} <= set(MODELS.names())
    for registry in (ATTACKS, MODELS, DATASETS):
        assert registry.names() == [entry.name for entry in registry]
        for entry in registry:
            assert entry.name in registry
            assert entry.description and "\n" not in entry.description
            assert registry.get(entry.name) is entry
    assert "nope" not in ATTACKS


def _make(*, size: int = 3, label: str = "x") -> tuple[int, str]:
    return size, label


def test_duplicate_registration_raises():
    registry: Registry[tuple[int, str]] = Registry("widget")
    registry.add("a", _make, "first")
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        registry.add("a", _make, "second")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", "third")(_make)
    assert registry.get("a").description == "first"
    assert registry.names() == ["a"]


def test_duplicate_registration_on_the_real_registries():
    for registry in (ATTACKS, MODELS, DATASETS):
        name = registry.names()[0]
        before = registry.get(name)
        with pytest.raises(ValueError, match="registered twice"):
            registry.add(name, _make, "impostor")
        assert registry.get(name) is before


def test_register_decorator_returns_the_factory():
    registry: Registry[tuple[int, str]] = Registry("widget")
    assert registry.register("b", "decorated")(_make) is _make
    assert registry.create("b", size=5) == (5, "x")


def test_parameters_and_create():
    registry: Registry[tuple[int, str]] = Registry("widget")
    registry.add("a", _make, "first")
    assert registry.get("a").parameters() == {"size": 3, "label": "x"}
    assert registry.create("a", label="y") == (3, "y")
    with pytest.raises(ConfigError, match="'a' has no parameter 'colour'; its parameters are: label, size"):
        registry.create("a", colour="red")


def test_factory_type_and_value_errors_become_config_errors():
    def strict(*, n: int = 1) -> int:
        if n < 0:
            raise ValueError("n must be >= 0")
        return n

    registry: Registry[int] = Registry("widget")
    registry.add("strict", strict, "rejects negatives")
    with pytest.raises(ConfigError, match="bad parameters for 'strict': n must be >= 0"):
        registry.create("strict", n=-1)


def test_real_entry_parameters():
    assert ATTACKS.get("targeted_flip").parameters() == {"source": 1, "target": 7}
    assert MODELS.get("cnn").parameters()["epochs"] == 30
