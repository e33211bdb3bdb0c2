"""The results store: one SQLite file per output folder, one committed row per finished run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poisonlab.errors import StoreError
from poisonlab.experiments.records import RunRecord, from_stored

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    config      TEXT NOT NULL,
    record      TEXT NOT NULL,
    error       TEXT,
    traceback   TEXT,
    finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invocations (
    started TEXT NOT NULL,
    command TEXT NOT NULL,
    config  TEXT NOT NULL
)
"""


class ResultStore:
    """Keyed by the hash of each run's full configuration, so a run is stored at most once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open results store: {exc}") from exc

    def put(self, config_json: str, record: RunRecord) -> None:
        """Insert or replace one run's result and commit at once."""
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.run_id,
                        record.status,
                        config_json,
                        record.to_json(),
                        record.error,
                        record.traceback,
                        datetime.now(UTC).isoformat(timespec="seconds"),
                    ),
                )
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"{self.path}: cannot write results store: {exc}") from exc

    def add_invocation(self, command: list[str], config: Mapping[str, Any]) -> None:
        """Record that a grid was started (or resumed) into this folder, by what command and config."""
        try:
            with self._db:
                self._db.execute(
                    "INSERT INTO invocations VALUES (?, ?, ?)",
                    (
                        datetime.now(UTC).isoformat(timespec="seconds"),
                        json.dumps(command),
                        json.dumps(config, sort_keys=True, default=str),
                    ),
                )
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"{self.path}: cannot write results store: {exc}") from exc

    def invocations(self) -> list[dict[str, Any]]:
        """Every recorded start, oldest first: ``started``, ``command`` (argv), ``config``.

        A folder written before invocations were recorded has none.
        """
        rows = self._query("SELECT started, command, config FROM invocations ORDER BY rowid")
        try:
            return [{"started": s, "command": json.loads(c), "config": json.loads(k)} for s, c, k in rows]
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: a stored invocation cannot be read: {exc}") from exc

    def configs(self) -> dict[str, dict[str, Any]]:
        """Each stored run's full configuration (its spec), by run id."""
        rows = self._query("SELECT run_id, config FROM runs")
        try:
            return {run_id: json.loads(config) for run_id, config in rows}
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: a stored run configuration cannot be read: {exc}") from exc

    def finished_ids(self) -> set[str]:
        return {row[0] for row in self._query("SELECT run_id FROM runs WHERE status = 'ok'")}

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM runs")[0][0])

    def _query(self, sql: str) -> list[Any]:
        try:
            return self._db.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read results store: {exc}") from exc

    def records(self, run_ids: list[str] | None = None) -> list[RunRecord]:
        """Stored records, in the order of ``run_ids`` when given (missing ids skipped).

        Records written by an earlier poisonlab (plain dicts, federated runs under
        ``defense``/``poison_rate``) are read into today's typed records.
        """
        try:
            rows = {i: (r, tb) for i, r, tb in self._db.execute("SELECT run_id, record, traceback FROM runs")}
            order = run_ids if run_ids is not None else list(rows)
            return [
                from_stored({**json.loads(rows[i][0]), "traceback": rows[i][1]}) for i in order if i in rows
            ]
        except (
            sqlite3.DatabaseError,
            json.JSONDecodeError,
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
        ) as exc:
            raise StoreError(f"{self.path}: a stored record cannot be read: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
