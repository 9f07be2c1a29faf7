"""Kaggle datasets behind a small downloader interface; the real ``kaggle`` API is imported late.

``KaggleClient`` is what the builders need (download one dataset's zip into a folder); the
``KaggleApiClient`` implements it with the official ``kaggle`` package, imported only when a
Kaggle source is actually built, after checking that credentials exist (without them the
package prints a long help text and exits). Tests pass their own client.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from datagen.errors import UserError

CREDENTIALS_HELP = (
    "Kaggle credentials not found. Create an API token at https://www.kaggle.com/settings "
    "('Create New Token'), then either\n"
    "  export KAGGLE_USERNAME=<your user name> KAGGLE_KEY=<the key from kaggle.json>\n"
    "or save kaggle.json as ~/.kaggle/kaggle.json (chmod 600); newer tokens also work as\n"
    "  export KAGGLE_API_TOKEN=<token>"
)
INSTALL_HELP = "the Kaggle sources need the kaggle package: pip install -e '.[realdata]'"


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


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
    """Whether the kaggle package will find credentials (environment or config files)."""
    env = os.environ if env is None else env
    if env.get("KAGGLE_API_TOKEN") or (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")):
        return True
    names = ("kaggle.json", "access_token", "credentials.json")
    return any((folder / name).is_file() for folder in _config_dirs(env) for name in names)


class KaggleApiClient:
    """:class:`KaggleClient` backed by the official ``kaggle`` package."""

    def __init__(self) -> None:
        self._api = None

    def _connect(self):  # type: ignore[no-untyped-def]
        if self._api is not None:
            return self._api
        if not has_credentials():
            raise UserError(CREDENTIALS_HELP)
        try:
            # Importing ``kaggle`` authenticates and prints help on failure: keep it quiet.
            with contextlib.redirect_stdout(io.StringIO()):
                from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError as exc:
            raise UserError(INSTALL_HELP) from exc
        api = KaggleApi()
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
