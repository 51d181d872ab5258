"""Readers that turn one file into plain text: text, Markdown, HTML, PDF, and tabular rows.

Every reader either returns text or raises ``SkipFile`` with a reason a person can act on
(binary, not UTF-8, encrypted, no text layer). Errors the user must fix before anything can run
(a missing text column) raise ``CorpusError`` instead. Tabular files go through ``datasets`` so
JSON Lines, JSON arrays, CSV and Parquet share one loader. A JSON Lines file with malformed lines
(not a JSON object) keeps its valid rows; the malformed lines' numbers are returned.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from rag.core.errors import UserError

logger = logging.getLogger(__name__)

TEXT_FORMATS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md"}
HTML_FORMATS = {".html": "html", ".htm": "html"}
TABLE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
FORMATS = {**TEXT_FORMATS, **HTML_FORMATS, ".pdf": "pdf", **TABLE_FORMATS}
_DATASETS_BUILDER = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}
_BINARY_SNIFF_BYTES = 8192


class CorpusError(UserError, ValueError):
    """The corpus cannot be loaded as configured; the message names the path or key to fix."""


class SkipFile(Exception):
    """This file yields no document; ``str(err)`` is the reason recorded in the report."""


@dataclass
class Extracted:
    """Text of one file (or one row of a table) plus what the reader learned about it."""

    text: str
    title: str = ""
    row: int | None = None
    doc_id: str | None = None  # from the id column, when one is configured
    extra: dict[str, Any] | None = None


@dataclass
class FileRows:
    """What one file yielded: its documents (one, or one per row of a table), the rows whose text
    was empty (dropped) and the 1-based numbers of malformed JSON Lines lines (skipped)."""

    items: list[Extracted]
    empty_rows: int = 0
    malformed_lines: list[int] = field(default_factory=list)


def line_numbers(numbers: list[int], shown: int = 5) -> str:
    """``line 2`` / ``lines 2, 7, 9, ... (12 in all)``: the first few of a list of line numbers."""
    head = ", ".join(str(n) for n in numbers[:shown])
    more = f", ... ({len(numbers)} in all)" if len(numbers) > shown else ""
    return f"line{'s' if len(numbers) > 1 else ''} {head}{more}"


def decode_text(data: bytes, fallback_encoding: str | None = None) -> str:
    """UTF-8 (with or without a byte-order mark), UTF-16 with a BOM, else ``fallback_encoding``."""
    if not data.strip():
        raise SkipFile("empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise SkipFile(f"invalid UTF-16 ({err.reason} at byte {err.start})") from None
    if b"\x00" in data[:_BINARY_SNIFF_BYTES]:
        raise SkipFile("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if fallback_encoding:
            try:
                return data.decode(fallback_encoding)
            except (UnicodeDecodeError, LookupError) as fallback_err:
                raise SkipFile(f"neither UTF-8 nor {fallback_encoding}: {fallback_err}") from None
        raise SkipFile(
            f"not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); convert it "
            "to UTF-8 or set corpus.encoding_fallback (e.g. cp1252 or latin-1)"
        ) from None


class _VisibleText(HTMLParser):
    """Collects the text a browser would show; block elements become line breaks."""

    SKIP = {"script", "style", "head", "noscript", "template", "svg", "iframe", "object"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}
    BLOCK = {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
        "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skipping: list[str] = []  # open elements whose content is invisible
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and self._skipping == ["head"]:  # a <head> left unclosed
            self._skipping.clear()
        if tag == "title":
            self._in_title = True
        hidden = any(name == "hidden" for name, _ in attrs)
        if (tag in self.SKIP or hidden or self._skipping) and tag not in self.VOID:
            self._skipping.append(tag)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if self._skipping:
            if tag in self._skipping:  # tolerate unclosed children of the skipped element
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """Visible text of an HTML page (scripts, styles, head and hidden elements dropped), title."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    lines = (
        re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in "".join(parser.parts).split("\n")
    )
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text, " ".join("".join(parser.title_parts).split())


def markdown_title(text: str) -> str:
    match = re.search(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def read_pdf(path: Path) -> tuple[str, str, int]:
    """Text layer of a PDF, its title and page count; encrypted or image-only files are skipped."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, PdfReadError
    except ImportError:
        raise SkipFile("reading PDF needs pypdf: pip install 'pypdf==7.1.*'") from None

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # owner-password-only files open with an empty one
            except (DependencyError, NotImplementedError) as err:
                raise SkipFile(f"encrypted PDF that cannot be opened here: {err}") from None
            if not opened:
                raise SkipFile("encrypted PDF (a password is required); decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "")
    except SkipFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as err:
        raise SkipFile(f"unreadable PDF: {err}") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise SkipFile(
            f"PDF has no text layer ({len(pages)} page(s), image-only or blank); "
            "run OCR first (e.g. ocrmypdf)"
        )
    return text, title, len(pages)


def read_table(
    path: Path,
    fmt: str,
    text_column: str,
    id_column: str | None = None,
    title_column: str | None = None,
) -> FileRows:
    """Rows of a JSON Lines / JSON / CSV / Parquet file via ``datasets``. A JSON Lines file that
    ``datasets`` cannot parse is read again without its malformed lines, which are reported."""
    # A throw-away cache keeps user files out of the shared datasets cache and never stale.
    with tempfile.TemporaryDirectory(prefix="ragtune-ingest-") as cache_dir:
        malformed: list[int] = []
        try:
            table = _load_table(path, fmt, cache_dir)
            rows = None
        except Exception as err:  # datasets wraps parser errors in many types
            reason = f"unreadable {fmt} file: {type(err).__name__}: {err}"
            if fmt != "jsonl":
                raise SkipFile(reason) from None
            valid = Path(cache_dir) / "valid-lines.jsonl"
            rows, malformed = split_json_lines(path, valid)
            if not malformed:  # every line is a JSON object: the error is something else
                raise SkipFile(reason) from None
            if not rows:
                raise SkipFile(
                    f"no line is a JSON object ({len(malformed)} malformed: "
                    f"{line_numbers(malformed)}); write one JSON object per line"
                ) from None
            try:
                table = _load_table(valid, fmt, cache_dir)
            except Exception as again:
                raise SkipFile(f"unreadable {fmt} file: {type(again).__name__}: {again}") from None
        items, empty = rows_from_table(table, str(path), text_column, id_column, title_column)
        if rows is not None:  # number rows as in the whole file, so ids do not shift
            for item in items:
                item.row = rows[item.row]
        return FileRows(items, empty, malformed)


def _load_table(path: Path, fmt: str, cache_dir: str) -> Any:
    import datasets
    from datasets import load_dataset

    datasets.disable_progress_bars()
    # The JSON builder logs its parse error as an ERROR before raising it; read_table handles
    # it (with line numbers), so the user sees one warning, not an error and a warning.
    builder_log = logging.getLogger("datasets.packaged_modules.json.json")
    level = builder_log.level
    builder_log.setLevel(logging.CRITICAL)
    try:
        return load_dataset(
            _DATASETS_BUILDER[fmt], data_files=str(path), split="train", cache_dir=cache_dir
        )
    finally:
        builder_log.setLevel(level)


def split_json_lines(path: Path, valid: Path) -> tuple[list[int], list[int]]:
    """Copy the lines of a JSON Lines file that hold a JSON object into ``valid``. Returns the
    row numbers of the copied lines (counting non-blank lines from 0, as ``datasets`` numbers
    rows) and the 1-based line numbers of the others (invalid JSON, or not an object)."""
    rows: list[int] = []
    malformed: list[int] = []
    row = 0
    with path.open("rb") as source, valid.open("wb") as sink:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:  # invalid JSON or invalid UTF-8
                value = None
            if isinstance(value, dict):
                sink.write(line.rstrip(b"\r\n") + b"\n")
                rows.append(row)
            else:
                malformed.append(number)
            row += 1
    return rows, malformed


def rows_from_table(
    table: Any,
    source: str,
    text_column: str,
    id_column: str | None = None,
    title_column: str | None = None,
) -> tuple[list[Extracted], int]:
    """Documents of a ``datasets.Dataset`` and the number of rows without text (dropped).

    A missing column is a ``CorpusError`` naming the source, the column and those available.
    """
    columns = list(table.column_names)
    for key, column in (
        ("corpus.text_column", text_column),
        ("corpus.id_column", id_column),
        ("corpus.title_column", title_column),
    ):
        if column is not None and column not in columns:
            raise CorpusError(
                f"{source}: no column {column!r} ({key}); available columns: "
                f"{', '.join(columns) or '(none)'}. Set {key} to one of them."
            )
    texts = list(table[text_column])
    ids = list(table[id_column]) if id_column else None
    titles = list(table[title_column]) if title_column else None
    rows, empty = [], 0
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            empty += 1
            continue
        rows.append(
            Extracted(
                text=text.strip(),
                title=str(titles[index]) if titles and titles[index] is not None else "",
                row=index,
                doc_id=str(ids[index]) if ids and ids[index] is not None else None,
            )
        )
    return rows, empty
