"""The records' canonical forms: JSON, event hashes, signed batch messages, schemas, id lookups.

An event's ``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces,
ASCII, no NaN) of ``{seq, prev_hash, time, actor, kind, payload}``; the first
event's ``prev_hash`` is the genesis hash, SHA-256 over the canonical JSON of the
ledger's ``meta`` table (:func:`genesis_hash`), so an edit of ``meta`` breaks the
chain at its first link. Ledgers written before the genesis was bound start from
:data:`LEGACY_GENESIS` (64 zeros); verify accepts them and says their ``meta`` is
unbound.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from poisonlab.errors import ConfigError, DataError

LEGACY_GENESIS = "0" * 64
EVENT_KINDS = ("add", "transform", "quarantine", "rollback")


def canonical_json(value: object) -> str:
    """JSON with sorted keys, no spaces, ASCII only, no NaN: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def genesis_hash(meta: dict[str, str]) -> str:
    """The first event's ``prev_hash``: SHA-256 over the canonical JSON of the ledger's ``meta`` rows."""
    return hashlib.sha256(canonical_json({"genesis": meta}).encode("ascii")).hexdigest()


def event_hash(seq: int, prev_hash: str, time: str, actor: str, kind: str, payload: object) -> str:
    """SHA-256 hex over the canonical JSON of an event's fields."""
    record: dict[str, object] = {"seq": seq, "prev_hash": prev_hash, "time": time, "actor": actor}
    record |= {"kind": kind, "payload": payload}
    return hashlib.sha256(canonical_json(record).encode("ascii")).hexdigest()


def batch_message(batch_root: str, shard: str, source: str) -> bytes:
    """The bytes a batch signature covers: canonical JSON of the batch root, shard digest and source."""
    body = {"type": "poisonlab-batch-v1", "batch_root": batch_root, "shard": shard, "source": source}
    return canonical_json(body).encode("ascii")


def schema_of(X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
    """The dtypes and per-sample shape every batch of a version shares."""
    return {
        "x_dtype": X.dtype.str,
        "x_shape": list(X.shape[1:]),
        "y_dtype": y.dtype.str,
        "ids": "str" if ids.dtype.kind == "U" else ids.dtype.str,
    }


def describe_schema(schema: dict[str, Any]) -> str:
    shape = "×".join(str(d) for d in schema["x_shape"]) or "scalar"
    return f"X {schema['x_dtype']} {shape}, y {schema['y_dtype']}, ids {schema['ids']}"


def default_actor() -> str:
    """The operating-system user, or ``unknown``."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(canonical_json(value))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{what} must hold JSON values only (strings, numbers, lists, dicts): {exc}"
        ) from None


def text_option(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}")
    return value


def positions(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """Index of each needle in ``haystack`` (unique values), or -1 where absent."""
    out = np.full(needles.shape[0], -1, dtype=np.int64)
    if haystack.shape[0] == 0 or needles.shape[0] == 0:
        return out
    if (haystack.dtype.kind == "U") != (needles.dtype.kind == "U"):
        return out
    order = np.argsort(haystack, kind="stable")
    ranked = haystack[order]
    at = np.clip(np.searchsorted(ranked, needles), 0, ranked.shape[0] - 1)
    found = ranked[at] == needles
    out[found] = order[at[found]]
    return out


def as_ids_like(wanted: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """User-given ids in the ledger's kind (``"17"`` → 17 for integer ids, 17 → ``"17"`` for strings)."""
    if ids.dtype.kind == "U":
        return wanted.astype(str)
    if wanted.dtype.kind in "iu":
        return wanted
    out = np.empty(wanted.shape[0], dtype=np.int64)
    for k, value in enumerate(wanted.tolist()):
        try:
            out[k] = int(str(value))
        except (ValueError, OverflowError):  # "x", "1.5", or beyond int64
            raise DataError(f"id {value!r} is not in the ledger (its ids are 64-bit integers)") from None
    return out
