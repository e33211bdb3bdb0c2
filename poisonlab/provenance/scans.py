"""Scan reports read back into the ledger: which version a report is of, and what it flagged.

``poisonlab scan --ledger DIR --out REPORT.json`` writes a report of one version,
stamped by :func:`scan_stamp` with that version's number and Merkle root.
:class:`ScanReport` reads such a report (or any report with the sample ``ids`` it
scanned and the ``flagged_ids``); :meth:`Ledger.match_scan
<poisonlab.provenance.Ledger.match_scan>` refuses it for a version it is not a scan
of, and :meth:`ScanReport.reason` is what a quarantine records about it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonlab.errors import ConfigError

if TYPE_CHECKING:
    from poisonlab.provenance.ledger import Ledger
    from poisonlab.provenance.records import Version

__all__ = ["ScanReport", "match_scan", "scan_stamp"]


def scan_stamp(version: Version) -> dict[str, Any]:
    """The keys a scan report of ``version`` carries so it can be matched to that version later."""
    return {"ledger_version": version.number, "ledger_root": version.root}


@dataclass(frozen=True)
class ScanReport:
    """A scan report as the ledger reads it.

    ``name`` is how the report was named (its path), ``sha256`` the digest of its
    bytes; ``ledger_version`` and ``ledger_root`` are ``None`` for a report of data
    that did not come from a ledger.
    """

    name: str
    sha256: str
    ids: tuple[Any, ...]
    flagged_ids: tuple[Any, ...]
    detector: str | None = None
    dataset: str | None = None
    ledger_version: int | None = None
    ledger_root: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str) -> ScanReport:
        """Parse a report's bytes.

        Raises
        ------
        ConfigError
            If they are not JSON, or not an object with lists ``ids`` and ``flagged_ids``.
        """
        try:
            report = json.loads(data)
        except ValueError as exc:
            raise ConfigError(f"{name}: not a JSON scan report ({exc})") from None
        if (
            not isinstance(report, dict)
            or not isinstance(report.get("ids"), list)
            or not isinstance(report.get("flagged_ids"), list)
        ):
            raise ConfigError(
                f"{name}: not a scan report of `poisonlab scan --out` (needs lists 'ids' and 'flagged_ids')"
            )
        for key in ("ids", "flagged_ids"):
            odd = [i for i in report[key] if isinstance(i, bool) or not isinstance(i, str | int)]
            if odd:
                raise ConfigError(
                    f"{name}: '{key}' must hold sample ids (text or integers), found {odd[0]!r}"
                )
        return cls(
            name=name,
            sha256=hashlib.sha256(data).hexdigest(),
            ids=tuple(report["ids"]),
            flagged_ids=tuple(report["flagged_ids"]),
            detector=report.get("detector"),
            dataset=report.get("dataset"),
            ledger_version=report.get("ledger_version"),
            ledger_root=report.get("ledger_root"),
        )

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ScanReport:
        """Read a report file; a missing or unreadable file is a :class:`ConfigError`."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such scan report") from None
        except OSError as exc:
            raise ConfigError(f"{path}: not a JSON scan report ({exc})") from None
        return cls.from_bytes(data, name=str(path))

    def reason(self) -> dict[str, Any]:
        """What a quarantine of the flagged samples records about this report."""
        return {
            "scan_report": Path(self.name).name,
            "scan_report_sha256": self.sha256,
            "detector": self.detector,
            "dataset": self.dataset,
            "n_flagged": len(self.flagged_ids),
        }


def match_scan(ledger: Ledger, report: ScanReport, version: int | str | Version = "head") -> Version:
    """``version`` of ``ledger``, after checking ``report`` is a scan of exactly its samples.

    The report must name the same sample ids as the version and, when it carries a
    ledger stamp (:func:`scan_stamp`), the version's Merkle root: the same ids with
    other contents (a relabelled or rolled-back version) are another dataset.

    Raises
    ------
    ConfigError
        If the report is a scan of other samples or of another version's contents.
    """
    record = ledger.version(version)
    rescan = f"scan it with `poisonlab scan --ledger {ledger.path} --version {record.number}`"
    version_ids = {str(i) for i in ledger.membership(record).ids.tolist()}
    report_ids = {str(i) for i in report.ids}
    if report_ids != version_ids:
        stray = sorted(report_ids - version_ids) or sorted(version_ids - report_ids)
        raise ConfigError(
            f"{report.name} is a scan of another dataset: its {len(report_ids)} ids do not match the "
            f"{len(version_ids)} of version {record.number} (e.g. id {stray[0]}); {rescan}"
        )
    if report.ledger_root is not None and report.ledger_root != record.root:
        root = str(report.ledger_root)[:16]
        raise ConfigError(
            f"{report.name} is a scan of version {report.ledger_version} (root {root}…), "
            f"not of version {record.number}; {rescan}"
        )
    return record
