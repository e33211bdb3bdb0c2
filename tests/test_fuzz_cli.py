"""Hostile and faulty input files against the commands that read data (issue 17).

Random bytes, and files that are structured but wrong (arrays of odd dtypes and shapes,
CSVs with odd columns, TOML with odd keys), go to ``attack``, ``scan``, ``run`` and
``ledger add``. Whatever comes in: the exit code is 0, 1 or 2, nothing but poisonlab's
own one-line error reaches stderr, and no file outside the command's output is created
or changed.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poisonlab.cli import main

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = int(exc.code or 0)
    return code, err.getvalue()


def _snapshot(folder: Path, skip: set[str]) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] not in skip
    }


def _check(folder: Path, argv: list[str], outputs: set[str]) -> None:
    before = _snapshot(folder, outputs)
    code, err = _run(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, err
    assert all(line.startswith("poisonlab: error:") for line in err.splitlines() if line.strip()), err
    assert _snapshot(folder, outputs) == before  # nothing but the output was written


arrays = st.sampled_from(
    [
        lambda n: np.zeros((n, 3), dtype=np.float32),
        lambda n: np.full((n, 2), np.nan),
        lambda n: np.array(["a"] * n),
        lambda n: np.zeros((n,), dtype=complex),
        lambda n: np.zeros((n, 0)),
        lambda n: np.arange(n * 4, dtype=np.float64).reshape(n, 2, 2) * 1e300,
        lambda n: np.random.default_rng(n).integers(-5, 5, size=(n, 3)),
        lambda n: np.zeros((0, 3)),
        lambda n: np.array([b"\xff"] * n),
    ]
)


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes_npz", "npz", "bytes_csv", "csv"]))
    if kind.startswith("bytes"):
        return (".npz" if kind == "bytes_npz" else ".csv"), draw(st.binary(max_size=300))
    n = draw(st.integers(min_value=0, max_value=40))
    if kind == "npz":
        buffer = io.BytesIO()
        parts = {"X": draw(arrays)(n), "y": draw(arrays)(n)}
        if draw(st.booleans()):
            parts["ids"] = draw(arrays)(n)
        np.savez(buffer, **parts)
        return ".npz", buffer.getvalue()
    header = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4))
    rows = draw(
        st.lists(
            st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=4), st.floats()), min_size=1, max_size=4),
            max_size=30,
        )
    )
    text = ",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows)
    return ".csv", text.encode("utf-8", "surrogatepass")


@FUZZ
@given(hostile_files())
def test_attack_and_scan_survive_hostile_data(file: tuple[str, bytes]) -> None:
    suffix, content = file
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / f"data{suffix}"
        data.write_bytes(content)
        label = ["--label-col", "label"] if suffix == ".csv" else []
        _check(
            folder,
            ["attack", "label_flip", str(data), "--rate", "0.1", "--out", str(folder / "o.npz"), *label],
            {"o.npz"},
        )
        _check(
            folder,
            ["scan", str(data), "--detector", "knn_label", "--out", str(folder / "r.json"), *label],
            {"r.json"},
        )


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(st.integers(), st.text(max_size=8), st.lists(st.text(max_size=5), max_size=3)),
            max_size=5,
        ),
    )
)
def test_run_survives_hostile_configs(config: bytes | dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "cfg.toml"
        if isinstance(config, bytes):
            path.write_bytes(config)
        else:
            import json

            path.write_text("\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in config.items()))
        _check(folder, ["run", str(path), "--out", str(folder / "out"), "--jobs", "1"], {"out"})


@FUZZ
@given(hostile_files())
def test_ledger_add_survives_hostile_data(file: tuple[str, bytes]) -> None:
    suffix, content = file
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        assert _run(["ledger", "init", str(folder / "L")])[0] == 0
        data = folder / f"data{suffix}"
        data.write_bytes(content)
        label = ["--label-col", "label"] if suffix == ".csv" else []
        _check(
            folder,
            ["ledger", "add", str(data), "--source", "s", "--ledger", str(folder / "L"), *label],
            {"L"},
        )
