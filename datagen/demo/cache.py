"""Where the demo dataset lives when no data path is given, and generating it on first use."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from datagen.demo.build import DEMO_VERSION, DemoConfig, generate_demo_dataset, is_complete
from rfd_common.errors import UserError

CACHE_ENV = "RFD_CACHE_DIR"


def cache_root() -> Path:
    """``$RFD_CACHE_DIR``, else ``$XDG_CACHE_HOME/real-fake-detection``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "real-fake-detection"


def demo_dir(config: DemoConfig) -> Path:
    """The cache folder of the demo dataset generated with ``config``."""
    default = DemoConfig(seed=config.seed, size=config.size)
    suffix = "" if config == default else f"-{config.train_images}x{config.val_images}"
    return cache_root() / f"demo-v{DEMO_VERSION}-seed{config.seed}-{config.size}px{suffix}"


def ensure_demo_dataset(config: DemoConfig | None = None, progress: bool = True) -> Path:
    """Return the demo dataset's folder, generating it into the cache first if needed."""
    config = config or DemoConfig()
    folder = demo_dir(config)
    if is_complete(folder, config):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the cache folder {folder.parent} ({exc.strerror}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc
    if folder.exists():  # an outdated or damaged cache entry: ours to replace
        shutil.rmtree(folder)
    print(f"generating the demo dataset into {folder} (once)", file=sys.stderr)
    try:
        generate_demo_dataset(folder, config, progress=progress)
    except UserError:
        if is_complete(folder, config):  # another process finished it first
            return folder
        raise
    return folder
