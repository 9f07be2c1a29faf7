"""The cross-cutting helpers: atomic writes leave no partial file, digests are stable and
order-free, CSV cells and tables read back with Python's own csv module, user errors exit 2."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from rfd_common.errors import UserError, exit_on_user_error
from rfd_common.files import atomic_write, atomic_write_json, ensure_writable_dir
from rfd_common.fingerprints import json_digest
from rfd_common.tables import cell, csv_text


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    atomic_write_json(target, {"b": 1, "a": 2})
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}

    def half_then_fail(handle) -> None:
        handle.write(b"{half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert json.loads(target.read_text()) == {"a": 2, "b": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_json_digest_is_sha256_of_the_canonical_text() -> None:
    expected = hashlib.sha256(b'{"a":[1,2],"b":"x"}').hexdigest()
    assert json_digest({"b": "x", "a": [1, 2]}, 64) == expected
    assert json_digest({"a": [1, 2], "b": "x"}) == expected[:16]
    assert json_digest({"a": [2, 1], "b": "x"}) != expected[:16]


def test_csv_text_reads_back_with_the_csv_module() -> None:
    rows = [["a,b", 0.1234567, None, 3, True], ['quote "q"', 1e-9, "", -1, False]]
    text = csv_text(["name", "value", "empty", "n", "flag"], rows, ".6g")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["name", "value", "empty", "n", "flag"]
    assert parsed[1] == ["a,b", "0.123457", "", "3", "True"]
    assert parsed[2] == ['quote "q"', "1e-09", "", "-1", "False"]
    assert cell(0.5) == "0.500000" and cell(None) == ""


def test_user_errors_print_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    @exit_on_user_error
    def main(argv: list[str] | None = None) -> int:
        raise UserError("--flag x: what went wrong; what to do")

    assert main([]) == 2
    assert capsys.readouterr().err == "error: --flag x: what went wrong; what to do\n"


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"--out .*exists and is not a folder"):
        ensure_writable_dir(blocker)
    assert ensure_writable_dir(tmp_path / "a" / "b").is_dir()


def test_must_match_on_resume_leaves_out_the_fields_marked_resumable() -> None:
    from dataclasses import dataclass, field

    from rfd_common.fingerprints import RESUMABLE, must_match_on_resume

    @dataclass
    class Settings:
        lr: float = 0.1
        epochs: int = field(default=3, metadata=RESUMABLE)
        name: str = "x"

    assert must_match_on_resume(Settings(lr=0.5, epochs=9)) == {"lr": 0.5, "name": "x"}
