"""al_queries.csv: which iteration labelled which pool item."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from active_learning.results import QUERIES_COLUMNS, labelled_iterations, write_queries


def history(*labelled: int) -> list[dict]:
    return [{"iteration": i, "labelled": n} for i, n in enumerate(labelled)]


def test_iterations_follow_the_labelled_counts() -> None:
    assert labelled_iterations(history(3, 5, 5, 6), 6) == [0, 0, 0, 1, 1, 3]
    assert labelled_iterations(history(2), 2) == [0, 0]


@pytest.mark.parametrize(("counts", "labelled"), [((3, 5), 6), ((3, 2), 2), ((), 0)])
def test_counts_that_do_not_add_up_are_refused(counts: tuple[int, ...], labelled: int) -> None:
    with pytest.raises(ValueError, match="labelled items, but the history counts"):
        labelled_iterations(history(*counts), labelled)


def test_write_queries(tmp_path: Path) -> None:
    items = [(f"img/{i}.jpg", "real-a" if i < 5 else "gen-b", int(i >= 5)) for i in range(10)]
    labelled = [7, 1, 4, 9, 0]
    path = write_queries(tmp_path, history(2, 4, 5), labelled, items)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == QUERIES_COLUMNS
    assert [r["iteration"] for r in rows] == ["0", "0", "1", "1", "2"]
    assert [r["order"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [int(r["pool_index"]) for r in rows] == labelled
    assert [(r["path"], r["source"], int(r["label"])) for r in rows] == [items[i] for i in labelled]
