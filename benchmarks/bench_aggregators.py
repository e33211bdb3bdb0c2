"""Time the distance-based and coordinate-wise aggregation rules on large updates.

    python benchmarks/bench_aggregators.py [--n 100] [--d 1000000] [--f 20] [--repeats 5]
                                           [--blas-threads N] [--flower-repeats 3] [--no-flower]

Builds ``n`` seeded random float32 updates of ``d`` parameters (400 MB at the
defaults) and times Krum, Multi-Krum (m = n − f), Bulyan (with f lowered to
(n − 3) // 4 if needed for n >= 4f + 3), the coordinate-wise median and the
trimmed mean (beta = f / n). Prints the median seconds [min–max] over the repeats.

Bar: Krum, Multi-Krum and Bulyan on 100 updates of 1,000,000 float32 parameters
each take <= 1 s (median over repeats) on 2 cores. Exits 1 if a bar is missed.

Reference row, not a bar: the pairwise distances Krum needs, computed the naive
way (a double Python loop over pairs, one vector difference each) on n = 20,
d = 100,000, and extrapolated by (n/20)²·(d/100,000) to the benchmark size. It is
labelled as extrapolated: it was not run at full size.

Comparison rows, not bars (skipped if flwr is not installed, or with --no-flower):
Flower's own Krum on the same updates and the same f, timed over --flower-repeats
(default 3) and checked to choose the same client as poisonlab's ``krum``:

* ``flwr.server.strategy.aggregate.aggregate_krum`` (the ``Krum`` strategy of the
  ``flwr.server.strategy`` API): a double Python loop of vector differences;
* ``flwr.serverapp.strategy.multikrum.select_multikrum`` (the ``Krum`` strategy of the
  Message API, ``flwr.serverapp.strategy``): one Gram product, on ``ArrayRecord`` inputs
  built before the timing starts.

Both run at the full benchmark size; the ratio is Flower's median over poisonlab's.
A client chosen differently counts as a failure (exit 1).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from collections.abc import Callable

import numpy as np
from _bars import report_bars, timed  # benchmarks/ is on sys.path when a script runs
from threadpoolctl import threadpool_info, threadpool_limits

from poisonlab.federated import bulyan, coordinate_median, krum, multi_krum, trimmed_mean

NAIVE_N, NAIVE_D = 20, 100_000
BAR_SECONDS = 1.0


def naive_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise squared distances the slow way: one vector difference per pair."""
    n = len(x)
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            dist[i, j] = float(np.sum((x[i] - x[j]) ** 2))
    return dist


def compare_with_flower(x: np.ndarray, f: int, ours: float, repeats: int) -> bool:
    """Print Flower's Krum rows (median seconds, ratio to ours); return whether all chose our client."""
    try:
        import flwr
        from flwr.server.strategy.aggregate import aggregate_krum
    except ModuleNotFoundError:
        print("\nFlower rows skipped: flwr is not installed (pip install 'poisonlab[flower]')")
        return True
    try:  # the Message API strategies arrived after flwr 1.20
        from flwr.app import ArrayRecord, RecordDict
        from flwr.serverapp.strategy.multikrum import select_multikrum
    except ImportError:
        select_multikrum = None
    n = len(x)
    chosen = int(krum(x, f).selected[0])
    # Flower takes one list of layer arrays per client; a single layer of views costs no copy.
    legacy_input = [([x[i]], 1) for i in range(n)]
    outputs: dict[str, object] = {}

    def legacy() -> None:
        outputs["legacy"] = aggregate_krum(legacy_input, num_malicious=f, to_keep=0)

    implementations = [("flwr.server.strategy aggregate_krum", legacy, "legacy")]
    # Flower imports modules on its first calls; keep that out of the timings.
    aggregate_krum(legacy_input[:5], num_malicious=1, to_keep=0)
    if select_multikrum is not None:
        records = [RecordDict({"arrays": ArrayRecord([x[i]])}) for i in range(n)]

        def message_api() -> None:
            outputs["message"] = select_multikrum(records, num_malicious_nodes=f, num_nodes_to_select=1)

        implementations.append(("flwr.serverapp.strategy select_multikrum", message_api, "message"))
        select_multikrum(records[:5], num_malicious_nodes=1, num_nodes_to_select=1)

    print(f"\nFlower {flwr.__version__} Krum on the same updates, f = {f}; {repeats} repeats")
    print(f"{'implementation':<48}{'seconds':>10}  {'[min–max]':<18}{'× poisonlab':>12}  same client")
    same_everywhere = True
    for name, fn, key in implementations:
        times = timed(fn, repeats)
        out = outputs[key]
        if key == "legacy":
            picks = [i for i in range(n) if np.shares_memory(out[0], x[i])]  # type: ignore[index]
        else:
            picks = [i for i in range(n) if records[i] is out[0]]  # type: ignore[index]
        same = picks == [chosen]
        same_everywhere &= same
        print(
            f"{name:<48}{statistics.median(times):>10.3f}  [{min(times):.3f}–{max(times):.3f}]".ljust(78)
            + f"{statistics.median(times) / ours:>12.1f}  {'yes' if same else f'NO: {picks} vs {chosen}'}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB after the Flower rows (Flower copies the updates to flatten them)")
    return same_everywhere


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of updates (clients)")
    parser.add_argument("--d", type=int, default=1_000_000, help="parameters per update")
    parser.add_argument("--f", type=int, default=20, help="faulty clients to tolerate")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--blas-threads", type=int, help="limit BLAS threads (default: as configured)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flower-repeats", type=int, default=3, help="repeats of Flower's Krum rows")
    parser.add_argument("--no-flower", action="store_true", help="skip the comparison with Flower's Krum")
    args = parser.parse_args()
    n, d, f = args.n, args.d, args.f
    f_bulyan = min(f, (n - 3) // 4)

    x = np.random.default_rng(args.seed).standard_normal((n, d), dtype=np.float32)
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux

    with threadpool_limits(limits=args.blas_threads):
        blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
        print(
            f"{n} updates × {d:,} float32 ({x.nbytes / 2**20:.0f} MiB), f = {f} (Bulyan f = {f_bulyan}); "
            f"{os.cpu_count()} cores, {blas}; {args.repeats} repeats, median [min–max]"
        )
        rules: list[tuple[str, Callable[[], object]]] = [
            ("krum", lambda: krum(x, f)),
            (f"multi_krum (m = {n - f})", lambda: multi_krum(x, f, n - f)),
            (f"bulyan (f = {f_bulyan})", lambda: bulyan(x, f_bulyan)),
            ("median", lambda: coordinate_median(x)),
            (f"trimmed_mean (beta = {f / n:g})", lambda: trimmed_mean(x, f / n)),
        ]
        results: dict[str, list[float]] = {}
        print(f"\n{'rule':<32}{'seconds':>10}  {'[min–max]':<18}")
        for name, fn in rules:
            times = results[name] = timed(fn, args.repeats)
            print(
                f"{name:<32}{statistics.median(times):>10.3f}  [{min(times):.3f}–{max(times):.3f}]",
                flush=True,
            )

        small = np.random.default_rng(args.seed + 1).standard_normal((NAIVE_N, NAIVE_D), dtype=np.float32)
        naive = timed(lambda: naive_distances(small), 1)[0]
        scale = (n / NAIVE_N) ** 2 * (d / NAIVE_D)
        print(
            f"{'naive Krum distances (loop)':<32}{naive * scale:>10.3g}  "
            f"extrapolated ×{scale:g} from n = {NAIVE_N}, d = {NAIVE_D:,} ({naive:.3f} s measured)"
        )

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MiB ({rss_input:.0f} MiB right after building the input)")

    same_choice = True
    if not args.no_flower:
        with threadpool_limits(limits=args.blas_threads):
            same_choice = compare_with_flower(x, f, statistics.median(results["krum"]), args.flower_repeats)

    size = f"{n} × {d:,}"
    bars = [
        (
            f"Krum, {size} float32 in <= {BAR_SECONDS:g} s",
            statistics.median(results["krum"]),
            lambda v: v <= BAR_SECONDS,
        ),
        (
            f"Multi-Krum, {size} float32 in <= {BAR_SECONDS:g} s",
            statistics.median(results[f"multi_krum (m = {n - f})"]),
            lambda v: v <= BAR_SECONDS,
        ),
        (
            f"Bulyan, {size} float32 in <= {BAR_SECONDS:g} s",
            statistics.median(results[f"bulyan (f = {f_bulyan})"]),
            lambda v: v <= BAR_SECONDS,
        ),
    ]
    missed = report_bars(bars, width=48)
    return 1 if missed or not same_choice else 0


if __name__ == "__main__":
    sys.exit(main())
