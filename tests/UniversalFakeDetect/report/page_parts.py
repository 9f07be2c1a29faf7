"""Read a report's tables and images back from its HTML (the standard library's parser)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class PageParts:
    """Tables by id (rows of cell texts, header rows included) and every <img>'s attributes."""

    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    images: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts = PageParts()
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._note: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = attributes.get("id", f"table{len(self.parts.tables)}")
            self.parts.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.parts.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.parts.images.append(attributes)
        elif tag == "p" and "note" in attributes.get("class", "").split():
            self._note = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.parts.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "p" and self._note is not None:
            self.parts.notes.append("".join(self._note).strip())
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)


def page_parts(html: str) -> PageParts:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.parts


def percent(value: float | None) -> str:
    """How the page writes a fraction: a percentage with two decimals, a dash for none."""
    return "–" if value is None else f"{100 * value:.2f}"
