"""A dataset folder being built source by source, resumably.

Layout: ``ImageData/{train,val}/...`` images, ``manifest.csv``, ``dataset.json`` (the
preprocessing and what each source was built from), and ``.datagen/`` (a lock, the state of
each source, the scratch folder for archives). The manifest is rewritten atomically at the end
of each source: the rows under the source's folders are replaced, others kept, so a rerun
never duplicates rows. A source whose state records the same fingerprint (what it was built
from, and how) is finished and skipped.

The preprocessing is fixed before the first image is written: opening the folder records it in
``dataset.json``, and a later run asking for other settings is refused (with or without a
finished source), because an interrupted source resumes by reusing the images already on disk.
Images whose settings were never recorded (left by an older version killed before its first
source finished, or put there by hand) are not reused: :meth:`DatasetRoot.begin` removes them
before the source is built again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from datagen.manifest import (
    MANIFEST_NAME,
    ManifestRow,
    read_manifest,
    validate_rows,
    write_manifest,
)
from datagen.preprocess import Preprocessing
from rfd_common.errors import UserError
from rfd_common.files import atomic_write_json, ensure_writable_dir

DATASET_INFO_NAME = "dataset.json"
WORK_DIR = ".datagen"
INFO_VERSION = 1


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide the pixels (not the library versions)."""
    comparable = {k: v for k, v in settings.items() if k != "encoder"}
    comparable.setdefault("resizer", "Pillow")  # recorded before torch resized: Pillow did
    return comparable


class DatasetRoot:
    """The dataset at ``root``; use as a context manager (takes a lock against a second run)."""

    def __init__(self, root: Path, prep: Preprocessing, scratch: Path | None = None) -> None:
        self.root = Path(root)
        self.prep = prep
        self.work = self.root / WORK_DIR
        self.scratch = Path(scratch) if scratch is not None else self.work / "scratch"
        self.manifest_path = self.root / MANIFEST_NAME
        self.info_path = self.root / DATASET_INFO_NAME
        self.rows: list[ManifestRow] = []
        self._lock_file: Any = None

    # -- opening -----------------------------------------------------------------------------
    def __enter__(self) -> DatasetRoot:
        ensure_writable_dir(self.root, "--local_dataset_path")
        (self.work / "state").mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._check_preprocessing()
            if self.manifest_path.is_file():
                self.rows = read_manifest(self.manifest_path, check_files=False)
            self._record_preprocessing()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._unlock()

    def _lock(self) -> None:
        import fcntl

        self._lock_file = open(self.work / "lock", "w")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            self._lock_file = None
            raise UserError(
                f"--local_dataset_path {self.root}: another build is running in this folder; "
                "wait for it to finish"
            ) from exc

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def info(self) -> dict[str, Any]:
        if not self.info_path.is_file():
            return {}
        try:
            return json.loads(self.info_path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.info_path}: not valid JSON ({exc})") from exc

    def settings_problem(self) -> str | None:
        """Why this run's preprocessing cannot go into this folder (None: it can).

        Read-only, so that a run can report it before it starts, with its other problems.
        """
        recorded_settings = self.info().get("preprocessing")
        if recorded_settings is None:
            return None
        recorded, wanted = _comparable(recorded_settings), _comparable(self.prep.to_dict())
        if recorded == wanted:
            return None
        changed = ", ".join(
            f"{key} {recorded.get(key)!r} -> {wanted.get(key)!r}"
            for key in sorted(set(recorded) | set(wanted))
            if recorded.get(key) != wanted.get(key)
        )
        return (
            f"--local_dataset_path {self.root}: its images were made with "
            f"{recorded}, this run asks for other settings ({changed}); every "
            "image of a dataset must go through the same preprocessing, and an interrupted "
            "run's images are reused: run again with the same settings, or build into a "
            "new folder"
        )

    def _check_preprocessing(self) -> None:
        problem = self.settings_problem()
        if problem is not None:
            raise UserError(problem)
        recorded = self.info().get("preprocessing")
        wanted = self.prep.to_dict()
        if recorded is None:
            return
        if recorded.get("encoder") != wanted.get("encoder"):
            print(
                f"warning: {self.info_path} records {recorded.get('encoder')}, this run uses "
                f"{wanted.get('encoder')}",
                file=sys.stderr,
            )

    def _record_preprocessing(self) -> None:
        """Record the settings in ``dataset.json`` before any image is written."""
        info = self.info()
        if "preprocessing" in info:
            return
        info.setdefault("format_version", INFO_VERSION)
        info["preprocessing"] = self.prep.to_dict()
        atomic_write_json(self.info_path, info)

    # -- sources -----------------------------------------------------------------------------
    def begin(self, name: str, prefixes: Sequence[str]) -> int:
        """Start building ``name``: make sure the images in its folders may be reused.

        Images there count as made with this folder's settings when they are manifest rows
        (a finished source, built under the recorded settings), or when the source's state
        records these settings (a run started since they were fixed). Other files (left by an
        older version killed before the source finished, or put there by hand: their settings
        are unknown) are deleted, so the source makes them again. Returns how many.
        """
        state = self.state(name)
        wanted = _comparable(self.prep.to_dict())
        removed = 0
        if state.get("complete") is not True and state.get("preprocessing") != wanted:
            listed = {r.path for r in self.rows_under(prefixes)}
            for prefix in prefixes:
                folder = self.root / prefix
                if not folder.is_dir():
                    continue
                for current, _dirs, files in os.walk(folder):
                    for file_name in files:
                        path = Path(current, file_name)
                        if path.relative_to(self.root).as_posix() not in listed:
                            path.unlink(missing_ok=True)
                            removed += 1
            if removed:
                print(
                    f"note: {name}: {removed} files in {', '.join(prefixes)} were written by a "
                    "run that recorded no settings; they are made again",
                    file=sys.stderr,
                )
        self._write_state(name, {**state, "preprocessing": wanted})
        return removed

    def _write_state(self, name: str, state: dict[str, Any]) -> None:
        atomic_write_json(self._state_path(name), state)

    def _state_path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.work / "state" / f"{safe}.json"

    def rows_under(self, prefixes: Sequence[str]) -> list[ManifestRow]:
        return [r for r in self.rows if r.path.startswith(tuple(prefixes))]

    def is_done(self, name: str, key: str, prefixes: Sequence[str]) -> bool:
        """True when ``name`` was finished with fingerprint ``key`` and its rows are present."""
        path = self._state_path(name)
        if not path.is_file():
            return False
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError:
            return False
        return (
            state.get("fingerprint") == key
            and state.get("complete") is True
            and state.get("rows") == len(self.rows_under(prefixes))
        )

    def state(self, name: str) -> dict[str, Any]:
        path = self._state_path(name)
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(path.read_text())
        return {}

    def remove_temporaries(self, prefixes: Sequence[str]) -> int:
        """Delete temporary files a killed run left in the source's folders; return the count."""
        removed = 0
        for prefix in prefixes:
            folder = self.root / prefix
            if not folder.is_dir():
                continue
            for current, _dirs, files in os.walk(folder):
                for name in files:
                    if name.startswith(".") and name.endswith(".tmp"):
                        Path(current, name).unlink(missing_ok=True)
                        removed += 1
        return removed

    def commit(
        self,
        name: str,
        key: str,
        rows: Iterable[ManifestRow],
        prefixes: Sequence[str],
        description: dict[str, Any],
    ) -> None:
        """Record a finished source: manifest (atomically), ``dataset.json``, then its state."""
        new_rows = sorted(set(rows))
        outside = [r.path for r in new_rows if not r.path.startswith(tuple(prefixes))]
        if outside:
            raise ValueError(f"{name}: rows outside its folders {list(prefixes)}: {outside[:3]}")
        validate_rows(new_rows, root=self.root, origin=str(self.manifest_path))
        keep = [r for r in self.rows if not r.path.startswith(tuple(prefixes))]
        merged = keep + new_rows
        write_manifest(merged, self.manifest_path, check_files=False)
        self.rows = sorted(merged, key=lambda r: r.path)
        info = self.info() or {"format_version": INFO_VERSION}
        info["preprocessing"] = self.prep.to_dict()
        info.setdefault("sources", {})[name] = {**description, "images": len(new_rows)}
        info["notes"] = (
            "Every image, real or fake, was decoded, oriented by its EXIF tag and converted by "
            "the same preprocessing (see 'preprocessing') to a square JPEG."
        )
        atomic_write_json(self.info_path, info)
        self._write_state(
            name,
            {
                "fingerprint": key,
                "complete": True,
                "rows": len(new_rows),
                "preprocessing": _comparable(self.prep.to_dict()),
                **description,
            },
        )

    def prune_scratch(self) -> None:
        """Remove empty folders left in the scratch folder."""
        for current, _dirs, _files in sorted(os.walk(self.scratch), reverse=True):
            if Path(current) != self.scratch:
                with contextlib.suppress(OSError):
                    Path(current).rmdir()

    def disk_usage(self, prefixes: Sequence[str] | None = None) -> int:
        """Bytes of the JPEGs in the manifest (under ``prefixes`` when given)."""
        rows = self.rows if prefixes is None else self.rows_under(prefixes)
        total = 0
        for r in rows:
            with contextlib.suppress(FileNotFoundError):
                total += (self.root / r.path).stat().st_size
        return total
