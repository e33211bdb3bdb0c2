"""Runs of a grid as Ray tasks: on this machine's cores, or on a Ray cluster.

The runner stays the only writer of the results store: this module yields each
(spec, record) as its task finishes, and the runner commits it at once, exactly as
with the process pool, so ``--resume``, failure records and "never stored twice"
hold unchanged. Each dataset goes into Ray's object store once per grid
(``ray.put``) and every task of it receives the reference, not a copy shipped per
run. A task declares the CPUs it uses (PyTorch's thread count inside it), so Ray
packs as many runs on a node as it has cores.

Without an address Ray starts a local instance sized to this machine and stops it
at the end; with one (``host:port`` of a running cluster's head, ``ray://host:port``
for Ray Client, or ``auto``) the runs go to that cluster, whose nodes need
poisonlab and its dependencies installed at the driver's version.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from poisonlab.errors import ConfigError
from poisonlab.experiments.config import Experiment
from poisonlab.experiments.protocol import Spec, data_key
from poisonlab.experiments.records import RunRecord

__all__ = ["execute_on_ray", "require_ray"]

#: Seconds to wait for a cluster's address to answer before refusing it.
CONNECT_TIMEOUT = 5.0


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'poisonlab[ray]' (or pip install ray)"
        ) from None
    return ray


def check_address(address: str) -> None:
    """Refuse, within seconds, a cluster address where nothing answers (Ray itself retries for minutes)."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} must be host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})"
        ) from None


def execute_on_ray(
    experiment: Experiment,
    todo: list[Spec],
    *,
    address: str | None,
    cache: Path | None,
    cpus_per_run: int = 1,
) -> Iterator[tuple[Spec, RunRecord]]:
    """Yield (spec, record) as Ray tasks finish; a task that dies fails only its own run.

    ``cache`` (the grid's evidence folder) is shared only with a local instance: a
    cluster's nodes do not see the driver's disk, so there each run fits its own proxy.
    """
    ray = require_ray()
    if address is not None:
        check_address(address)
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        if address is None:
            options["num_cpus"] = os.cpu_count() or 1
        else:
            options["address"] = address
        # ray.init installs its own SIGTERM handler (exit 15); the caller's (the CLI's: stop
        # like Ctrl-C, keep finished runs, exit 130) is put back, and shutdown happens below
        handler = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f" at {address}" if address else ""
            raise ConfigError(f"cannot start or reach Ray{where}: {exc}") from None
        finally:
            if threading.current_thread() is threading.main_thread() and handler is not None:
                signal.signal(signal.SIGTERM, handler)
    try:
        shared = cache if address is None else None
        refs = {key: ray.put(data) for key, data in experiment.data.items()}
        task = ray.remote(num_cpus=cpus_per_run, max_retries=0)(_run_task)
        pending = {
            task.remote(spec, refs[data_key(spec.dataset, spec.data_digest)], cpus_per_run, shared): spec
            for spec in todo
        }
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                spec = pending.pop(ref)
                yield spec, _result(ray, ref, spec)
    finally:
        if started:
            ray.shutdown()


def _result(ray: Any, ref: Any, spec: Spec) -> RunRecord:
    from poisonlab.experiments.run import run_record_stub

    try:
        record: RunRecord = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker died (out of memory, killed) or was lost
        return run_record_stub(spec).failed(f"Ray task failed: {type(exc).__name__}", failure="bug")
    return record


def _run_task(spec: Spec, data: Any, threads: int, cache: Path | None) -> RunRecord:
    """One run inside a Ray worker, with the thread count it declared and the grid's evidence cache."""
    import torch

    from poisonlab.defenses.evidence_cache import use_evidence_cache
    from poisonlab.experiments.run import run_experiment

    torch.set_num_threads(threads)
    use_evidence_cache(cache)
    return run_experiment(spec, data)
