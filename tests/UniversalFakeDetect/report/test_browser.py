"""A real report opened in headless Chromium: it loads without console errors or failed loads,
and its tables and images are in the rendered page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.UniversalFakeDetect.report.chromium import chromium_binary, load_page
from tests.UniversalFakeDetect.report.page_parts import page_parts
from tests.UniversalFakeDetect.report.test_render import expected_source_rows
from UniversalFakeDetect.report import write_html_report

BINARY = chromium_binary()
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="no Chromium binary on PATH (Debian: apt-get install -y chromium; .ci/run installs "
    "it where apt-get can)",
)

# Run by the test in the loaded page (the page itself has no script): what the browser made of it.
PROBE = """JSON.stringify({
  images: [...document.images].map(i => ({
    scheme: i.src.split(':')[0], loaded: i.complete && i.naturalWidth > 0, alt: i.alt})),
  tables: Object.fromEntries([...document.querySelectorAll('table[id]')].map(t => [t.id,
    [...t.querySelectorAll('tr')].map(r => [...r.cells].map(c => c.textContent.trim()))]))
})"""


def test_report_loads_cleanly_in_chromium(al_folder: Path) -> None:
    assert BINARY is not None
    page = write_html_report(al_folder)
    value, problems = load_page(BINARY, page, PROBE)
    assert problems == []
    rendered = json.loads(value)
    expected = page_parts(page.read_text())  # what the HTML holds, read without a browser
    images = rendered["images"]
    assert len(images) == len(expected.images) > 10
    assert all(i["scheme"] == "data" and i["loaded"] for i in images), images
    tables = rendered["tables"]
    metrics = json.loads((al_folder / "metrics.json").read_text())
    assert tables["source-table"][1:] == expected_source_rows(metrics)
    assert len(tables["query-table"]) == 1 + 3  # header and one row per iteration


def test_a_broken_page_is_noticed(tmp_path: Path) -> None:
    """The check itself: a broken picture, a blocked load and a script are all reported."""
    assert BINARY is not None
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; img-src data:\"></head><body>"
        "<img src='data:image/png;base64,AAAA'><img src='missing.png'>"
        "<script>console.error('boom')</script></body></html>"
    )
    value, problems = load_page(BINARY, page, PROBE)
    images = json.loads(value)["images"]
    assert [i["loaded"] for i in images] == [False, False]
    assert any("missing.png" in p for p in problems)
    assert any("script" in p.lower() for p in problems)
