from __future__ import annotations

import json
from pathlib import Path

import pytest

from LLaVA_Experiments.journal import Journal
from rfd_common.errors import UserError

SETTINGS = {"model": "m", "max_new_tokens": 8}


def test_records_survive_reopening_and_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "run.partial.jsonl"
    journal = Journal.open(path, SETTINGS, "path")
    assert len(journal) == 0 and not path.exists()
    journal.append([{"path": "a.jpg", "p": 0.1}, {"path": "b.jpg", "p": 0.2}])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"path": "c.jpg", "p"')  # killed mid-write
    again = Journal.open(path, SETTINGS, "path")
    assert sorted(again.records) == ["a.jpg", "b.jpg"] and "c.jpg" not in again.records
    again.append([{"path": "c.jpg", "p": 0.3}])
    third = Journal.open(path, SETTINGS, "path")
    assert third.records["c.jpg"] == {"path": "c.jpg", "p": 0.3}
    assert json.loads(path.read_text().splitlines()[0]) == {"settings": SETTINGS}
    third.discard()
    assert not path.exists()


def test_other_settings_are_refused_unless_restarted(tmp_path: Path) -> None:
    path = tmp_path / "run.partial.jsonl"
    Journal.open(path, SETTINGS, "path").append([{"path": "a.jpg"}])
    other = {**SETTINGS, "max_new_tokens": 16}
    with pytest.raises(UserError, match=r"max_new_tokens.*--restart or another --name"):
        Journal.open(path, other, "path", flag="--name")
    fresh = Journal.open(path, other, "path", restart=True)
    assert len(fresh) == 0 and not path.exists()


def test_a_header_cut_short_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "run.partial.jsonl"
    path.write_text('{"settings": {"mod')
    assert len(Journal.open(path, SETTINGS, "path")) == 0
    assert not path.exists()
