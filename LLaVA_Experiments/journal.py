"""An append-only JSON-lines journal that lets long generation runs resume after a kill.

The first line records the run's settings; every later line is one finished record. Records
are appended and flushed to disk batch by batch, so a killed run loses at most the batch in
flight; a torn last line (killed mid-write) is ignored. A journal left by a run with other
settings is refused unless the caller restarts it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rfd_common.errors import UserError

SETTINGS_KEY = "settings"


class Journal:
    """Records of one run, keyed by ``key``, persisted in ``path``."""

    def __init__(self, path: Path, settings: dict[str, Any], key: str) -> None:
        """An empty journal; :meth:`open` is the way to get one that resumes."""
        self.path = Path(path)
        self.settings = settings
        self.key = key
        self.records: dict[str, dict[str, Any]] = {}

    @classmethod
    def open(
        cls, path: Path, settings: dict[str, Any], key: str, restart: bool = False, flag: str = ""
    ) -> Journal:
        """Start ``path`` afresh, or load the records of an unfinished run with equal settings."""
        journal = cls(path, settings, key)
        if restart:
            journal.path.unlink(missing_ok=True)
        if journal.path.is_file():
            journal._load(flag)
        return journal

    def _load(self, flag: str) -> None:
        """Read the records of an unfinished run; refuse one with other settings."""
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):  # killed mid-line: cut the torn line before appending
            data = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as handle:
                handle.truncate(len(data))
        lines = data.decode("utf-8", errors="replace").splitlines()
        header = _parse(lines[0]) if lines else None
        if header is None or SETTINGS_KEY not in header:
            self.path.unlink()  # killed before the header was complete: nothing to keep
            return
        if header[SETTINGS_KEY] != self.settings:
            changed = sorted(
                k
                for k in set(header[SETTINGS_KEY]) | set(self.settings)
                if header[SETTINGS_KEY].get(k) != self.settings.get(k)
            )
            raise UserError(
                f"{self.path}: an unfinished run with other settings ({', '.join(changed)}) is "
                f"there; rerun with the same settings to resume it, or pass --restart"
                + (f" or another {flag}" if flag else "")
                + " to start over"
            )
        for line in lines[1:]:
            record = _parse(line)
            if record is not None and self.key in record:
                self.records[str(record[self.key])] = record

    def __len__(self) -> int:
        """How many records the journal holds."""
        return len(self.records)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Add finished records and flush them to disk."""
        records = list(records)
        new_file = not self.path.is_file()
        lines = [json.dumps({SETTINGS_KEY: self.settings})] if new_file else []
        lines += [json.dumps(r, ensure_ascii=False) for r in records]
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        for record in records:
            self.records[str(record[self.key])] = record

    def discard(self) -> None:
        """Remove the journal once its records are safely written elsewhere."""
        self.path.unlink(missing_ok=True)


def _parse(line: str) -> dict[str, Any] | None:
    """One JSON object per line; anything else (a torn line) is None."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
