"""CSV tables as text: one writer and one way to write a cell, for every results file."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def cell(value: object, float_format: str = ".6f") -> str:
    """A value as a CSV cell: None empty, floats with ``float_format``, the rest as ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


def csv_text(
    header: Sequence[str], rows: Sequence[Sequence[object]], float_format: str = ".6f"
) -> str:
    """``header`` and ``rows`` as CSV text (``\\n`` line ends), cells written by :func:`cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[cell(v, float_format) for v in row] for row in rows])
    return buffer.getvalue()
