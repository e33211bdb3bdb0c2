"""The curated public surface: every exported name resolves, and nothing else is promised."""

from __future__ import annotations

import subprocess
import sys

import pytest

import poisonlab


@pytest.mark.parametrize("name", poisonlab.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(poisonlab, name) is not None


def test_exports_table_matches_all() -> None:
    assert set(poisonlab._EXPORTS) | {"__version__"} == set(poisonlab.__all__)
    with pytest.raises(AttributeError):
        _ = poisonlab.not_a_name


def test_the_command_line_starts_without_loading_pytorch() -> None:
    code = "import sys, poisonlab.cli, poisonlab.models, poisonlab.attacks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_federated_package_exports_the_simulation_without_loading_pytorch_up_front() -> None:
    code = (
        "import sys, poisonlab.federated as f; before = 'torch' in sys.modules; "
        "from poisonlab.federated import simulate, split_clients, plan_simulation; "
        "print(before, 'torch' in sys.modules, callable(simulate) and callable(split_clients))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


def test_federated_all_resolves() -> None:
    import poisonlab.federated as federated

    for name in federated.__all__:
        assert getattr(federated, name) is not None
    with pytest.raises(AttributeError):
        _ = federated.not_a_name
