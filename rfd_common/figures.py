"""Saving matplotlib figures: PNG, written atomically, the figure closed afterwards."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rfd_common.files import atomic_write_bytes


def save_figure(fig: Any, target: Path, dpi: int = 120, tight: bool = True) -> Path:
    """Write ``fig`` to ``target`` as PNG atomically and close it; returns ``target``."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    atomic_write_bytes(Path(target), buffer.getvalue())
    return Path(target)
