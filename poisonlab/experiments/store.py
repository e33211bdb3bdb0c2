"""The results store: one SQLite file per output folder, one committed row per finished run."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poisonlab.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    config      TEXT NOT NULL,
    record      TEXT NOT NULL,
    error       TEXT,
    traceback   TEXT,
    finished_at TEXT NOT NULL
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
            self._db.execute(SCHEMA)
            self._db.commit()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ConfigError(f"{self.path}: cannot open results store: {exc}") from exc

    def put(self, config_json: str, record: dict[str, Any]) -> None:
        """Insert or replace one run's result and commit at once."""
        stored = {k: v for k, v in record.items() if k != "traceback"}
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record["run_id"],
                    record["status"],
                    config_json,
                    json.dumps(stored),
                    record.get("error"),
                    record.get("traceback"),
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )

    def finished_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT run_id FROM runs WHERE status = 'ok'")}

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def records(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Stored records, in the order of ``run_ids`` when given (missing ids skipped)."""
        rows = dict(self._db.execute("SELECT run_id, record FROM runs").fetchall())
        order = run_ids if run_ids is not None else list(rows)
        return [json.loads(rows[i]) for i in order if i in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
