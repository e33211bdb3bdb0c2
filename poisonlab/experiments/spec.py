"""What every run spec shares: its canonical JSON and the hash that keys it in the store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any


class HashedSpec:
    """Mixin for frozen dataclass run specs: ``run_id`` is a hash of every field."""

    def to_json(self) -> str:
        fields: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return json.dumps(fields, sort_keys=True, default=str)

    @property
    def run_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
