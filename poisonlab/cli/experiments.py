"""``poisonlab run``, ``attack`` and ``list``: experiment grids, poisoned copies, the registries."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.table import Table
from rich.text import Text

from poisonlab.atomic import write_atomically
from poisonlab.cli._common import (
    console,
    data_options,
    err_console,
    error,
    force_option,
    out_path,
    parse_params,
    progress_bar,
)
from poisonlab.cli.report import written_report
from poisonlab.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from poisonlab.experiments.records import RunRecord


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="run an experiment grid (built-in quick benchmark without CONFIG)")
    run.add_argument("config", nargs="?", help="TOML experiment config")
    run.add_argument("--out", help="output folder (default: runs/<time stamp>)")
    run.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (process executor)"
    )
    run.add_argument("--resume", action="store_true", help="skip runs already finished in --out")
    run.add_argument(
        "--executor",
        choices=("process", "ray"),
        default="process",
        help="where runs execute: a process pool here (default), or Ray tasks (pip install 'poisonlab[ray]')",
    )
    run.add_argument(
        "--address",
        metavar="ADDR",
        help="with --executor ray: a running cluster's head (host:port, ray://host:port or auto); "
        "default: a local Ray instance sized to this machine",
    )
    run.add_argument(
        "--json", action="store_true", help="print summary.json (runs, per-cell aggregate) instead"
    )
    run.add_argument(
        "--yes", action="store_true", help=f"start a grid of more than {BIG_GRID:,} runs (refused without it)"
    )

    run.set_defaults(func=cmd_run)

    attack = sub.add_parser("attack", help="write a poisoned copy of a dataset with its poison mask")
    attack.add_argument("name", help="attack name (see poisonlab list)")
    attack.add_argument("data", help="built-in dataset name or a .npz/.csv/.parquet file or image folder")
    budget = attack.add_mutually_exclusive_group(required=True)
    budget.add_argument("--rate", type=float, help="fraction of samples to poison, in (0, 1]")
    budget.add_argument("--count", type=int, help="number of samples to poison")
    attack.add_argument(
        "--out",
        required=True,
        help="output .npz (X, y, ids, poison_mask, ...) or .csv (features, label, id, poison_mask columns); "
        ".tsv for a knowledge-graph attack",
    )
    force_option(attack)
    attack.add_argument("--seed", type=int, default=0, help="seed of the poison draw (default 0)")
    attack.add_argument(
        "--target-index",
        type=int,
        metavar="I",
        help="for an attack on one input (feature_collision, bullseye_polytope, gradient_matching): "
        "row I (0-based) of DATA is that input; it is left out of the poisoned set and written "
        "to --out as target_input",
    )
    attack.add_argument(
        "--target-fact",
        metavar="'HEAD RELATION TAIL'",
        help="for a knowledge-graph attack (kg_*): the fact of DATA to demote, by names separated by "
        "tabs or spaces; DATA is then a built-in graph (nations, kinships, umls) or a folder of "
        "train/valid/test.tsv, whose validation or test fact it must be, or one .tsv of facts, out of "
        "which it is held; --out is a .tsv of the poisoned training facts, written beside a "
        ".changes.tsv of the facts added and deleted",
    )
    attack.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="attack parameter, value in TOML syntax (repeatable)",
    )
    data_options(attack)

    attack.set_defaults(func=cmd_attack)

    listing = sub.add_parser(
        "list", help="every kind of component: names, descriptions, parameters with defaults, tags"
    )
    listing.add_argument("kind", nargs="?", help="show one kind only (attack, detector, aggregator, ...)")
    listing.add_argument("--json", action="store_true", help="print the same as JSON, for tools")
    listing.set_defaults(func=cmd_list)


# -- run ---------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from poisonlab.experiments import DEFAULT_CONFIG, aggregate, load_config, parse_config, run_grid
    from poisonlab.experiments.runner import check_executor, pending_runs

    experiment = load_config(args.config) if args.config else parse_config(DEFAULT_CONFIG)
    for line in experiment.skipped:  # incompatible = "skip": each reason once, on stderr
        err_console.print(f"warning: {line}", markup=False, highlight=False)
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    check_executor(args.executor, args.address)  # one line, before the progress bar
    todo, skipped = pending_runs(experiment, out, resume=args.resume)
    if len(todo) > BIG_GRID and not args.yes:
        low, high = _duration(len(todo) / args.jobs), _duration(10 * len(todo) / args.jobs)
        raise ConfigError(
            f"this grid has {len(todo):,} runs to do; at 1–10 s a run on {args.jobs} processes that is "
            f"{low}–{high}: pass --yes to start it"
        )
    if skipped:
        console.print(f"resuming: {skipped} finished runs kept, {len(todo)} to go")
    with progress_bar() as progress:
        task = progress.add_task("runs", total=len(todo))

        def on_result(record: RunRecord) -> None:
            progress.advance(task)
            if record.status != "ok":
                column, value = record.condition()
                line = Text("failed", style="red")
                line.append(f" {record.attack} {column}={value} seed={record.seed}: {record.error}")
                progress.console.print(line, highlight=False)

        outcome = run_grid(
            experiment,
            out,
            jobs=args.jobs,
            resume=args.resume,
            on_result=on_result,
            command=args.argv,
            executor=args.executor,
            address=args.address,
        )
    report = written_report(out)
    if args.json:  # for tools: the summary on stdout; the progress bar and failures went to stderr
        sys.stdout.write((out / "summary.json").read_text())
        err_console.print(report, markup=False, highlight=False)
        return 1 if outcome.n_failed else 0
    console.print(_summary_table(aggregate(outcome.records)))
    console.print(f"results: {out / 'summary.json'}, {out / 'results.csv'}, {out / 'results.sqlite'}")
    console.print(report, markup=False, highlight=False)
    if outcome.n_failed:
        error(f"{outcome.n_failed} run(s) failed; see 'error' in {out / 'summary.json'}")
        return 1
    return 0


#: Grids with more runs than this start only with ``--yes``: a typo in a list can make a grid of days.
BIG_GRID = 2_000


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _summary_table(rows: list[dict[str, Any]]) -> Table:  # rows of experiments.aggregate
    """Mean ± std per cell; columns with a single value across the grid move to the title.

    Classification cells show accuracies in %; regression cells show test MSE and
    its ratio to the clean baseline.
    """
    from poisonlab.experiments.records import condition_text

    by, condition = (rows[0]["defended_by"], rows[0]["condition"]) if rows else ("defense", "poison_rate")
    keys = ("dataset", "model", by)
    header = {"rate": "malicious"} if condition == "malicious_share" else {}
    graph = condition == "budget"  # knowledge-graph cells: facts changed per target, target MRR
    if graph:
        header = {"rate": "budget", "n_poison": "changed"}
    privacy = condition == "n_targets"  # membership audits: targets, and LiRA clean → poisoned
    if privacy:
        header = {"rate": "targets", "n_poison": "poisons"}
    constant = [k for k in keys if len({r[k] for r in rows}) == 1] if rows else []
    regression = any(r.get("test_mse") is not None for r in rows)
    classification = any(r.get("clean_acc") is not None for r in rows) or not rows
    title = "mean ± std over seeds"
    if classification:
        title += ", accuracies in %"
    if constant:
        title += " — " + ", ".join(f"{header.get(k, k)}: {rows[0][k]}" for k in constant)
    table = Table(title=title)
    shown = [k for k in keys if k not in constant]
    metrics: list[tuple[str, str]] = []
    if privacy:  # no backdoor: accuracy and what the poisons cost it
        metrics += [("C-ACC", "clean_acc"), ("ΔACC", "acc_drop")]
    elif classification:
        metrics += [("C-ACC", "clean_acc"), ("ASR", "asr"), ("RA", "ra"), ("ΔACC", "acc_drop")]
    if regression:
        metrics += [("MSE", "test_mse"), ("MSE×", "mse_ratio")]
    if any(r.get("subpop_drop") is not None for r in rows):  # a subpopulation attack's two drops
        metrics += [("Δsub", "subpop_drop"), ("Δrest", "rest_drop")]
    if any(r.get("certified_acc") is not None for r in rows):
        metrics += [("cert. ACC", "certified_acc")]  # correct and certified against the run's poisons
    if any(r.get("dp_epsilon") is not None for r in rows):
        metrics += [("ε", "dp_epsilon")]  # privacy DP-SGD spent
    if any(r.get("malicious_selected") is not None for r in rows):
        metrics += [("kept", "malicious_selected")]  # share of malicious updates a selection rule kept
    if graph:  # MRR as a share (not %): the field's way of writing it
        metrics += [
            ("target MRR", "target_mrr"),
            ("MRR drop", "target_mrr_drop"),
            ("H@10", "hits_at_10"),
            ("other MRR Δ", "graph_mrr_change"),
        ]
    if privacy:  # LiRA's rates in %, clean beside poisoned
        metrics += [
            ("TPR@0.1% clean", "lira_tpr_01_clean"),
            ("TPR@0.1% pois.", "lira_tpr_01"),
            ("TPR@1% clean", "lira_tpr_1_clean"),
            ("TPR@1% pois.", "lira_tpr_1"),
            ("AUC clean", "lira_auc_clean"),
            ("AUC pois.", "lira_auc"),
        ]
    if any(r.get("n_admitted_poison") is not None for r in rows):
        metrics += [("admitted", "n_admitted_poison")]  # poisons a stream's learner was given
    # a grid with inference-time attacks compares threat models: when, what, for how long
    threat = any(r.get("phase") == "inference" for r in rows)
    if threat:
        metrics.insert(0, ("persist.", "persistence"))
    middle = ("phase", "rate", "seeds", "modified") if threat else ("rate", "seeds", "n_poison")
    for col in (*shown, "attack", *middle, *(name for name, _ in metrics)):
        col = header.get(col, col)
        justify: Literal["left", "right"] = (
            "left" if col in (*keys, "attack", "phase", "modified") else "right"
        )
        # a narrow terminal wraps cells (a mean above its ±std) instead of cutting them short
        table.add_column(col, overflow="fold", justify=justify)
    for r in rows:
        rate = condition_text(condition, r.get(condition)) or "—"
        cells = []
        one = r["n_seeds"] == 1  # one seed has no spread: "±0.0" would claim one
        for _, key in metrics:
            value = r.get(key)
            if key == "test_mse":
                cells.append(_mean_std(value, ".4g", ".2g", one))
            elif key == "n_admitted_poison":
                cells.append(_mean_std(value, ".0f", ".0f", one))
            elif key in ("lira_auc", "lira_auc_clean"):
                cells.append(_mean_std(value, ".3f", ".3f", one))
            elif key in ("mse_ratio", "dp_epsilon", "target_mrr", "target_mrr_drop", "hits_at_10"):
                cells.append(_mean_std(value, ".2f", ".2f", one))
            elif key == "graph_mrr_change":
                cells.append(_mean_std(value, "+.3f", ".3f", one))
            else:
                cells.append(_pm(value, one))
        first: tuple[str, ...]
        if threat:
            first = (str(r.get("phase") or "training"), rate, str(r["n_seeds"]), _modified(r))
        else:
            changed = r["n_modified"] if (graph or privacy) and r["n_modified"] is not None else r["n_poison"]
            first = (rate, str(r["n_seeds"]), f"{changed:.0f}")
        table.add_row(*(r[k] for k in shown), r["attack"], *first, *cells)
    return table


def _modified(row: dict[str, Any]) -> str:
    """What the attacker changed: training samples, or test inputs, and within what budget."""
    n = row.get("n_modified")
    if n is None:
        return "—"
    what = f"{n:.0f} test inputs" if row.get("phase") == "inference" else f"{n:.0f} training samples"
    return f"{what}, {row['perturbation']}" if row.get("perturbation") else what


def _mean_std(value: tuple[float, float] | None, mean: str, std: str, one: bool) -> str:
    """``mean ±std``, or the mean alone for a single seed; ``—`` where there is no value.

    The space lets a narrow table put the spread under the mean rather than cut it.
    """
    if value is None:
        return "—"
    return format(value[0], mean) if one else f"{value[0]:{mean}} ±{value[1]:{std}}"


def _pm(value: tuple[float, float] | None, one: bool = False) -> str:
    """A share as ``mean ±std`` in %, the mean alone for a single seed."""
    return _mean_std(None if value is None else (100 * value[0], 100 * value[1]), ".1f", ".1f", one)


# -- attack ------------------------------------------------------------------
def cmd_attack(args: argparse.Namespace) -> int:
    import numpy as np

    from poisonlab.attacks import ATTACKS
    from poisonlab.data import load_dataset, write_csv, write_npz

    if "graph" in ATTACKS.get(args.name).tag("modalities"):
        return _attack_graph(args)
    if args.target_fact is not None:
        raise ConfigError(
            f"attack {args.name!r} does not poison a knowledge graph: --target-fact is for kg_* attacks"
        )
    csv = args.out.lower().endswith(".csv")
    out = out_path(args.out, args.data, force=args.force, suffix=".csv" if csv else ".npz")
    if ATTACKS.get(args.name).tag("phase") == "inference":  # nothing to write: it attacks a trained model
        raise ConfigError(
            f"attack {args.name!r} acts at inference time, on a trained model's inputs: it makes no "
            "poisoned training set; compare it with poisoning in a `poisonlab run` grid"
        )
    attack = ATTACKS.create(args.name, **parse_params(args.param))
    data = load_dataset(
        args.data, label_col=args.label_col, id_col=args.id_col, source_col=args.source_col, task=args.task
    )
    budget = args.rate if args.rate is not None else args.count
    extra: dict[str, np.ndarray] = {}
    if attack.targets_instance:
        if args.target_index is None:
            raise ConfigError(
                f"attack {args.name!r} aims at one input: give its row of DATA with --target-index"
            )
        if not 0 <= args.target_index < len(data):
            raise ConfigError(f"--target-index must lie in 0..{len(data) - 1}, got {args.target_index}")
        own = data.classes[int(data.y[args.target_index])]
        if own == attack.target:  # type: ignore[attr-defined]
            raise ConfigError(
                f"row {args.target_index} of {data.name} is already of class {own}, the attack's target: "
                "aim at an input of another class"
            )
        target_input = data.X[args.target_index]
        extra["target_input"] = target_input
        extra["target_index"] = np.asarray(args.target_index)
        data = data.subset(np.delete(np.arange(len(data)), args.target_index))
        attack = attack.aim(target_input)  # type: ignore[attr-defined]
    elif args.target_index is not None:
        raise ConfigError(
            f"attack {args.name!r} does not aim at one input: --target-index is for those that do"
        )
    if csv and (attack.targets_instance or data.modality == "image"):
        what = "its target input" if attack.targets_instance else "images"
        raise ConfigError(f"a CSV cannot hold {what}: write --out {out.with_suffix('.npz').name}")
    result = attack.poison(data, budget, args.seed)
    extra["poison_mask"] = result.poison_mask
    if result.target_class is not None:
        extra["target"] = np.asarray(data.classes[result.target_class])
    if csv:
        write_atomically(out, lambda path: write_csv(path, result.dataset, result.poison_mask))
    else:
        write_atomically(out, lambda path: write_npz(path, result.dataset, **extra))
    console.print(
        f"{args.name}: poisoned {result.n_poison} of {len(data)} samples of {data.name} → {out}",
        highlight=False,
    )
    return 0


def _attack_graph(args: argparse.Namespace) -> int:
    """``attack kg_*``: the poisoned training facts as TSV, and the facts added and deleted beside them."""
    import numpy as np

    from poisonlab.attacks import ATTACKS
    from poisonlab.data.graph import load_graph, write_triples

    out = out_path(args.out, args.data, force=args.force, suffix=".tsv")
    changes = out_path(str(out.with_suffix(".changes.tsv")), args.data, force=args.force, suffix=".tsv")
    if args.target_fact is None:
        raise ConfigError(
            f"attack {args.name!r} aims at one fact: give it with --target-fact 'HEAD RELATION TAIL'"
        )
    if args.target_index is not None:
        raise ConfigError("--target-index is for attacks on one input; a graph attack takes --target-fact")
    attack = ATTACKS.create(args.name, **parse_params(args.param))
    split = load_graph(args.data, seed=args.seed)
    fact = split.train.index_of(args.target_fact)
    train = split.train
    if Path(args.data).is_file():  # one file holds every known fact: the target is held out of it
        every = split.known()
        if not train.with_triples(every).contains(fact[None])[0]:
            raise ConfigError(
                f"{args.target_fact!r} is not a fact of {split.name}: there is nothing to demote"
            )
        train = train.with_triples(every[np.any(every != fact, axis=1)])
    elif train.contains(fact[None])[0]:
        raise ConfigError(
            f"{args.target_fact!r} is a training fact of {split.name}: aim at a validation or test fact, "
            "one the model must predict"
        )
    elif not train.with_triples(np.concatenate([split.valid.triples, split.test.triples])).contains(
        fact[None]
    )[0]:
        raise ConfigError(
            f"{args.target_fact!r} is not a fact of {split.name}: there is nothing to demote "
            "(give a validation or test fact)"
        )
    budget = args.rate if args.rate is not None else args.count
    result = attack.aim(fact).poison(train, budget, args.seed)  # type: ignore[attr-defined]
    graph = result.dataset
    removed = np.zeros((0, 3), dtype=np.int64) if result.removed is None else result.removed

    def write_changes(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write("head\trelation\ttail\tchange\n")
            for triples, change in ((graph.triples[result.poison_mask], "added"), (removed, "deleted")):
                for h, r, t in graph.names(triples):
                    handle.write(f"{h}\t{r}\t{t}\t{change}\n")

    def write_graph(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            write_triples(graph, handle, graph.triples)

    write_atomically(changes, write_changes)
    write_atomically(out, write_graph)
    console.print(
        f"{args.name}: added {int(result.poison_mask.sum())} and deleted {len(removed)} of "
        f"{len(train)} facts of {split.name} → {out} (changes: {changes.name})",
        highlight=False,
    )
    return 0


# -- list --------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    import json

    from poisonlab.registry import describe, registries

    selected = registries()
    if args.kind:
        kinds = {r.kind: r for r in selected} | {r.title: r for r in selected}
        if args.kind not in kinds:
            raise UnknownNameError(
                f"unknown kind {args.kind!r}; known: {', '.join(r.kind for r in selected)}"
            )
        selected = [kinds[args.kind]]
    described = describe(selected)
    if args.json:
        sys.stdout.write(json.dumps(described, indent=2, ensure_ascii=False) + "\n")
        return 0
    for kind in described.values():
        table = Table(title=kind["title"], title_justify="left", show_lines=False)
        table.add_column("name", no_wrap=True)
        table.add_column("description")
        table.add_column("parameters (defaults)")
        table.add_column("tags (where not the default)")
        for entry in kind["entries"]:
            params = ", ".join(f"{k}={_shown(v)}" for k, v in entry["parameters"].items())
            # the tags an entry sets away from its kind's defaults say what is special about it
            defaults = kind["tag_defaults"]
            tags = ", ".join(f"{k}={_shown(v)}" for k, v in entry["tags"].items() if defaults.get(k) != v)
            table.add_row(
                Text(entry["name"]), Text(entry["description"]), Text(params or "-"), Text(tags or "-")
            )
        console.print(table)
    return 0


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(map(str, value)) or "()"
    return str(value)
