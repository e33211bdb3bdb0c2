"""``poisonlab stream``: both arms side by side, the ledger record, and one-line errors.

Also the ``on_gate`` hook of :func:`~poisonlab.stream.simulate_stream` that the ledger
record rests on: every batch, before the learner, in the user's label space.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from poisonlab.cli import main
from poisonlab.data import Dataset, load_dataset, train_test_split
from poisonlab.provenance import Ledger
from poisonlab.stream import GateEvent, simulate_stream

# Small enough to run in a few seconds: 1197 streamed digits in 24 batches, 120 of them poisoned.
FAST = ["--trusted", "150", "--batch-size", "50", "--eval-every", "10"]


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``poisonlab stream`` with both arms, a ledger and a JSON record (digits, sgd, seed 0)."""
    folder = tmp_path_factory.mktemp("stream")
    ledger, out = folder / "ledger", folder / "stream.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["stream", *FAST, "--seed", "0", "--ledger", str(ledger), "--out", str(out)])
    return {
        "code": code,
        "stdout": stdout.getvalue(),
        "ledger": ledger,
        "record": json.loads(out.read_text()),
    }


def test_both_arms_run_side_by_side_and_the_gate_stops_the_backdoor(run: dict[str, Any]) -> None:
    assert run["code"] == 0
    for text in ("accuracy / ASR over time", "gated ASR %", "ungated ASR %", "batches rejected whole"):
        assert text in run["stdout"]
    gated, ungated = run["record"]["runs"]["gated"], run["record"]["runs"]["ungated"]
    # Measured at seed 0: gated ASR 0.005, accuracy 0.924, 0/120 poisons admitted, 310 clean
    # samples rejected, 8/24 batches rejected whole; ungated ASR 1.0, accuracy 0.947.
    assert gated["totals"]["asr"] < 0.1 and ungated["totals"]["asr"] > 0.8
    assert gated["totals"]["accuracy"] > 0.85 and ungated["totals"]["accuracy"] > 0.85
    assert gated["totals"]["n_poison"] == ungated["totals"]["n_poison"] == 120
    assert gated["totals"]["n_poison_admitted"] <= 6 and ungated["totals"]["n_poison_admitted"] == 120
    assert ungated["totals"]["n_clean_rejected"] == ungated["totals"]["n_batches_rejected"] == 0
    assert 1 <= gated["totals"]["n_batches_rejected"] <= 12
    for arm in (gated, ungated):
        assert arm["totals"]["n_batches"] == len(arm["records"]) == 24
        measured = [r["step"] for r in arm["records"] if r["asr"] is not None]
        assert measured == [10, 20, 24]
    assert (
        len(gated["quarantined_ids"])
        == gated["totals"]["n_poison_rejected"] + gated["totals"]["n_clean_rejected"]
    )


def test_the_ledger_holds_the_admitted_samples_and_quarantines_the_rejected(run: dict[str, Any]) -> None:
    gated = run["record"]["runs"]["gated"]
    totals = gated["totals"]
    with Ledger.open(run["ledger"]) as ledger:
        assert ledger.verify().ok
        X, _, ids, source = ledger.arrays("head")
        quarantined = [q.id for q in ledger.quarantined()]
        batches = ledger.batches()
        events = ledger.log()
        head = ledger.head()
    head_ids = set(ids.tolist())
    # Every streamed sample was added once: admitted ones stay in the head, rejected ones are
    # quarantined (still stored), none is both and none is dropped.
    assert sum(b.n for b in batches) == totals["n_stream"] == len(head_ids) + len(quarantined)
    assert len(head_ids) == len(ids) == totals["n_clean_admitted"] + totals["n_poison_admitted"]
    assert len(set(quarantined)) == len(quarantined)
    assert set(quarantined) == set(gated["quarantined_ids"]) and not head_ids & set(quarantined)
    poison = set(gated["poison_ids"])
    assert len(poison & head_ids) == totals["n_poison_admitted"]
    assert poison - head_ids <= set(quarantined)
    assert set(source.tolist()) <= {"vendor-a", "vendor-b", "crowd"} and X.shape[1:] == (1, 8, 8)
    for event in events:
        assert event.actor == "poisonlab-stream"
        if event.kind == "quarantine":
            reason = event.payload["reason"]
            assert reason["gate"] == "StreamGate" and reason["step"] >= 1 and reason["reason"]
    assert run["record"]["ledger"] == {
        "path": str(run["ledger"]),
        "head_version": head.number,
        "n_samples": len(ids),
        "n_quarantined": len(quarantined),
        "verified": True,
        "problems": [],
    }
    assert f"head version {head.number} holds {len(ids)} samples" in run["stdout"]


def test_a_second_stream_into_the_same_ledger_is_refused_before_any_write(
    run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with Ledger.open(run["ledger"]) as ledger:
        before = ledger.head()
    assert main(["stream", *FAST, "--ledger", str(run["ledger"])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "already records sample id" in lines[0]
    with Ledger.open(run["ledger"]) as ledger:
        assert ledger.head() == before


# --------------------------------------------------------------------------- the on_gate hook


def test_on_gate_sees_every_batch_before_the_learner_in_the_original_label_space() -> None:
    digits = load_dataset("digits")
    shifted = Dataset.from_arrays(
        digits.X, digits.original_labels() + 10, ids=np.array([f"d{i}" for i in range(len(digits))])
    )
    train, test = train_test_split(shifted, random_state=0)
    for gate in (True, False):
        events: list[GateEvent] = []
        calls: list[tuple[str, int]] = []

        def on_gate(event: GateEvent, events: list[GateEvent] = events, calls: list = calls) -> None:
            events.append(event)
            calls.append(("gate", event.step))

        result = simulate_stream(
            train, test, trusted=150, batch_size=50, eval_every=100, target=13, gate=gate,
            on_gate=on_gate, on_batch=lambda record, calls=calls: calls.append(("batch", record.step)),
        )  # fmt: skip
        steps = range(1, len(result.records) + 1)
        assert calls == [(kind, step) for step in steps for kind in ("gate", "batch")]
        for event, record in zip(events, result.records, strict=True):
            assert (event.step, event.source, len(event.ids)) == (record.step, record.source, record.n)
            assert event.X.shape == (record.n, 1, 8, 8) and not event.X.flags.writeable
            assert int(event.rejected.sum()) == record.n_rejected
            assert int(event.poison.sum()) == record.n_poison
            assert int((event.admitted & event.poison).sum()) == record.n_admitted_poison
            assert set(event.y.tolist()) <= set(range(10, 20))
            assert (event.y[event.poison] == 13).all()
            if not gate:
                assert not event.rejected.any() and event.reason == "no gate"
        rejected_ids = np.concatenate([e.ids[e.rejected] for e in events])
        np.testing.assert_array_equal(rejected_ids, train.ids[result.quarantined])
        poison_ids = np.concatenate([e.ids[e.poison] for e in events])
        assert set(poison_ids.tolist()) == set(train.ids[result.poison_index].tolist())
        assert len(poison_ids) == result.n_poison > 0
        if gate:
            assert len(rejected_ids) > 0


def test_the_ledger_recorder_is_an_on_gate_hook_from_python(tmp_path: Path) -> None:
    from poisonlab.errors import ConfigError, DataError
    from poisonlab.stream import LedgerRecorder, LedgerSummary

    train, test = train_test_split(load_dataset("digits"), random_state=0)
    small = train.subset(np.arange(400))
    path = tmp_path / "stream-ledger"
    recorder = LedgerRecorder(path, actor="tester").check(small)
    assert not path.exists()  # checking writes nothing
    with recorder:
        result = simulate_stream(small, test, trusted=100, batch_size=50, seed=0, on_gate=recorder)
    summary = recorder.summary()
    assert isinstance(summary, LedgerSummary) and summary.verified and summary.problems == ()
    n_rejected = len(result.quarantined)
    assert summary.n_quarantined == n_rejected > 0
    assert summary.n_samples == result.n_stream - n_rejected
    assert summary.to_json()["head_version"] == summary.head_version
    with Ledger.open(path) as ledger:
        events = ledger.log()
        assert {e.actor for e in events} == {"tester"}
        assert [e.kind for e in events].count("add") == len(result.records)
        assert {q.id for q in ledger.quarantined()} == set(small.ids[result.quarantined].tolist())
    # the same stream again would add ids the ledger already holds: refused before any write
    with pytest.raises(DataError, match="already records sample id"):
        LedgerRecorder(path).check(small)
    with pytest.raises(DataError, match="do not match the ledger's schema"):
        LedgerRecorder(path).check(load_dataset("wine"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty and is not a poisonlab ledger"):
        LedgerRecorder(tmp_path / "notes").check(small)
    assert LedgerRecorder(tmp_path / "unused").summary() is None


# --------------------------------------------------------------------------- bad input


def _wine_ledger(folder: Path) -> None:
    wine = load_dataset("wine")
    with Ledger.init(folder) as ledger:
        ledger.add(wine.X, wine.original_labels(), wine.ids, source="vendor-a")


BAD_INPUTS = [
    # (extra arguments, message, run in a subprocess like a user would)
    (["--poisoned", "evil"], "poisoned source 'evil' is not one of the sources", True),
    (["--gate", "maybe"], "argument --gate: invalid choice", True),
    (["--ledger", "notledger"], "is not empty and is not a poisonlab ledger", True),
    (["--trusted", "1"], "the trusted seed needs at least 2 samples", True),  # fails after warm-up
    (["--poison-share", "1.5"], "poison_share must lie in [0, 1)", False),
    (["--poison-share", "x"], "argument --poison-share: invalid float value", False),
    (["--learner", "nope"], "unknown learner 'nope'", False),
    (["--attack", "nope"], "unknown attack 'nope'", False),
    (
        ["--data", "wine", "--trusted", "50", "--batch-size", "10"],
        "attack 'badnets' is for image data, so it cannot work with the stream on 'wine' (tabular data)",
        False,
    ),
    (["--data", "nope"], "unknown dataset 'nope'", False),
    (["--target", "42"], "target class 42 does not exist", False),
    (["--sources", "a,,b"], "--sources wants comma-separated names", False),
    (["--batch-size", "0"], "batch_size must be an integer >= 1", False),
    (["--gate", "off"], "--ledger records the gated run", False),
    (["--out", "o.txt"], "--out must name a .json file", False),
    (["--ledger", "afile"], "afile exists and is not a folder", False),
    (["--ledger", "wine_ledger"], "do not match the ledger's schema", False),
]


@pytest.mark.parametrize(("extra", "message", "subprocess_run"), BAD_INPUTS)
def test_bad_input_gets_one_line_exit_2_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
    subprocess_run: bool,
) -> None:
    (tmp_path / "notledger").mkdir()
    (tmp_path / "notledger" / "notes.txt").write_text("not a ledger\n")
    (tmp_path / "afile").write_text("a file\n")
    _wine_ledger(tmp_path / "wine_ledger")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    # The last --ledger/--out given wins, so `extra` can override these.
    argv = ["stream", "--trusted", "150", "--ledger", "L", "--out", "o.json", *extra]
    if subprocess_run:  # a user's view: the whole program, exit status and stderr
        result = poisonlab(*argv, cwd=tmp_path)
        code, err = result.returncode, result.stderr
    else:  # the same contract in-process, ~10x faster than starting Python
        monkeypatch.chdir(tmp_path)
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's errors
            code = int(exc.code or 0)
        err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert message in lines[0]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    with Ledger.open(tmp_path / "wine_ledger") as ledger:
        assert ledger.head().number == 1
