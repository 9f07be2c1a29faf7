"""Kaggle datasets behind a small downloader interface; the real ``kaggle`` API is imported late.

``KaggleClient`` is what the builders need (download one dataset's zip into a folder); the
``KaggleApiClient`` implements it with the official ``kaggle`` package, imported only when a
Kaggle source is checked or built. Importing ``kaggle`` authenticates at once (the package
creates a client in its ``__init__``), printing a long help text when that fails, so the
import runs with its output captured, and credentials are checked beforehand. An import that
fails is reported with its own error (``kaggle`` 2.x imports ``six`` without declaring it, so
a bare install fails on that module, not on ``kaggle``). Tests pass their own client.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from datagen.real_sets import import_failure
from rfd_common.errors import UserError

CREDENTIALS_HELP = (
    "Kaggle credentials not found. Create an API token at https://www.kaggle.com/settings "
    "('Create New Token'), then either\n"
    "  export KAGGLE_USERNAME=<your user name> KAGGLE_KEY=<the key from kaggle.json>\n"
    "or save kaggle.json as ~/.kaggle/kaggle.json (chmod 600); newer tokens also work as\n"
    "  export KAGGLE_API_TOKEN=<token>"
)


class KaggleClient(Protocol):
    """Downloads one Kaggle dataset as a zip."""

    def download(self, dataset: str, folder: Path) -> Path:
        """Download ``owner/slug`` into ``folder`` (resuming if possible); return the zip."""
        ...


def _config_dirs(env: Mapping[str, str]) -> list[Path]:
    if env.get("KAGGLE_CONFIG_DIR"):
        return [Path(env["KAGGLE_CONFIG_DIR"]).expanduser()]
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return [home / ".kaggle", xdg / "kaggle"]


def has_credentials() -> bool:
    """Whether the kaggle package will find credentials (environment or config files)."""
    env = os.environ
    if env.get("KAGGLE_API_TOKEN") or (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")):
        return True
    names = ("kaggle.json", "access_token", "credentials.json")
    return any((folder / name).is_file() for folder in _config_dirs(env) for name in names)


def import_kaggle_api() -> Any:
    """The ``KaggleApi`` class; :class:`UserError` naming the module that failed to import."""
    try:
        # Importing ``kaggle`` authenticates and prints help on failure: keep it quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise UserError(import_failure("the Kaggle client", "kaggle", exc)) from exc
    return KaggleApi


def kaggle_problems() -> list[str]:
    """What would stop a Kaggle download now (credentials, the client's import); [] if none."""
    problems = [] if has_credentials() else [CREDENTIALS_HELP]
    try:
        import_kaggle_api()
    except UserError as exc:
        problems.append(str(exc))
    return problems


class KaggleApiClient:
    """:class:`KaggleClient` backed by the official ``kaggle`` package."""

    def __init__(self) -> None:
        self._api = None

    def _connect(self):  # type: ignore[no-untyped-def]
        if self._api is not None:
            return self._api
        if not has_credentials():
            raise UserError(CREDENTIALS_HELP)
        api = import_kaggle_api()()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                api.authenticate()
        except (SystemExit, Exception) as exc:
            raise UserError(f"Kaggle authentication failed ({exc}).\n{CREDENTIALS_HELP}") from exc
        self._api = api
        return api

    def download(self, dataset: str, folder: Path) -> Path:
        api = self._connect()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            api.dataset_download_files(dataset, path=str(folder), unzip=False, quiet=False)
        except (SystemExit, Exception) as exc:
            raise UserError(
                f"Kaggle dataset {dataset}: download failed ({type(exc).__name__}: {exc}); "
                "check the name, accept its terms on kaggle.com if asked, and run again"
            ) from exc
        return folder / f"{dataset.split('/')[-1]}.zip"
