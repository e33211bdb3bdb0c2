"""Nothing from data reaches the terminal as a control character (issue 17).

Every C0 and C1 control (but newline and tab) and every bidirectional override, isolate
and mark goes in through a ledger source, a note, sample ids and a CSV's values; the
commands that print them must show each one escaped, and store it unchanged.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

CONTROLS = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]
BIDI = ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
HOSTILE = "".join(c for c in CONTROLS + BIDI if c != "\x00")  # NUL cannot travel in argv
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def poisonlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def clean(result: subprocess.CompletedProcess[str]) -> None:
    for stream in (result.stdout, result.stderr):
        raw = RAW.findall(stream)
        assert not raw, f"raw control characters reached the terminal: {raw[:5]!r}"
    assert "Traceback" not in result.stderr


def test_ledger_sources_notes_and_ids_are_shown_escaped_and_stored_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    ids = np.array([f"id{i}{HOSTILE[i % len(HOSTILE)]}\x1b[2J" for i in range(30)])
    np.savez(tmp_path / "d.npz", X=X, y=np.repeat([0, 1, 2], 10), ids=ids)
    assert poisonlab("ledger", "init", "L", cwd=tmp_path).returncode == 0
    source = f"vendor{HOSTILE}"
    added = poisonlab(
        "ledger",
        "add",
        "d.npz",
        "--source",
        source,
        "--note",
        f"note{HOSTILE}",
        "--ledger",
        "L",
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    clean(added)
    for args in (["log"], ["show", "1"], ["verify"], ["show", "1", "--samples"]):
        result = poisonlab("ledger", *args, "--ledger", "L", cwd=tmp_path)
        clean(result)
    shown = poisonlab("ledger", "log", "--ledger", "L", cwd=tmp_path).stdout
    assert "\\x1b" in shown and "\\u202e" in shown  # visible, escaped
    with sqlite3.connect(tmp_path / "L" / "ledger.sqlite") as db:
        payloads = [json.loads(row[0]) for row in db.execute("SELECT payload FROM events").fetchall()]
    assert source in set(_strings(payloads))  # stored as given, not as its escape


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_scan_shows_hostile_ids_and_errors_escaped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = ["sample,f1,f2,label"]
    for i in range(60):
        rows.append(f"s{i}\x1b]0;title\x07\u202e,{rng.normal():.3f},{rng.normal():.3f},{i % 2}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    result = poisonlab(
        "scan", "t.csv", "--label-col", "label", "--id-col", "sample", "--top", "60", cwd=tmp_path
    )
    assert result.returncode in (0, 1), result.stderr
    clean(result)
    missing = poisonlab("scan", f"nowhere\x1b[8m{HOSTILE[:40]}.csv", cwd=tmp_path)
    assert missing.returncode == 2
    clean(missing)
