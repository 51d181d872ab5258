"""Load a user's documents from folders, globs, files or a ``datasets`` dataset.

``load_user_corpus`` is the one entry point: it finds the files, reads each with the reader for
its extension (``rag.corpus.formats``), gives every document a stable id and returns the documents
with
an ``IngestReport`` (counts per format, every skipped file with its reason, malformed JSON Lines
lines, duplicate documents). Ids are
``<slug of the path relative to the root>-<sha8 of path and text>`` (rows add ``-r<index>``), so
moving the folder keeps them and editing a file changes its id.

A document whose text is identical to an earlier one is dropped (retrieval would return the
same passage twice, and training would see it twice); the kept document lists the dropped ones
in ``metadata["duplicates"]`` so questions that name them still find it.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.core.pause import pause_point
from rag.core.types import Chunk, Document
from rag.corpus.formats import (
    FORMATS,
    HTML_FORMATS,
    TABLE_FORMATS,
    CorpusError,
    Extracted,
    FileRows,
    SkipFile,
    decode_text,
    html_to_text,
    line_numbers,
    markdown_title,
    read_pdf,
    read_table,
    rows_from_table,
)

logger = logging.getLogger(__name__)

HF_PREFIX = "hf:"
_GLOB_CHARS = re.compile(r"[*?\[]")
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_MAX_SLUG = 60


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    """What ingestion (and, once recorded, chunking) produced; logged and stored with results."""

    sources: list[str]
    files_found: int = 0  # files with a supported extension, after ``max_files``
    files_beyond_max: int = 0
    documents: int = 0
    characters: int = 0
    words: int = 0
    tokens: int | None = None  # set by ``record_chunking`` when a tokenizer is given
    empty_rows: int = 0  # rows of tabular sources whose text column was empty
    malformed_lines: int = 0  # JSON Lines lines that are not a JSON object (skipped)
    malformed_line_numbers: dict[str, list[int]] = field(default_factory=dict)  # first ten a file
    duplicate_documents: int = 0  # documents whose text repeats an earlier one (dropped)
    documents_by_format: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)
    chunking: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def skipped_by_reason(self) -> dict[str, int]:
        """Skips grouped by the reason's first words (before any detail in parentheses or ':')."""
        return dict(Counter(re.split(r"[(:;]", s.reason)[0].strip() for s in self.skipped))

    def record_chunking(
        self,
        documents: list[Document],
        chunks: list[Chunk],
        strategy: str,
        size: int,
        overlap: int,
        tokenizer: Any = None,
    ) -> None:
        from rag.corpus.chunking import unit_spans_function

        units = unit_spans_function(tokenizer) if tokenizer is not None else None
        if units is not None:
            self.tokens = sum(len(units(d.text)) for d in documents)
        sizes = [len(c.text.split()) for c in chunks]
        self.chunking = {
            "strategy": strategy,
            "size": size,
            "overlap": overlap,
            "chunks": len(chunks),
            "mean_chunk_words": round(sum(sizes) / len(sizes), 1) if sizes else 0.0,
            "max_chunk_words": max(sizes, default=0),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"skipped_by_reason": self.skipped_by_reason()}


def slug(text: str) -> str:
    return _SLUG_CHARS.sub("-", text.lower()).strip("-")[:_MAX_SLUG].strip("-") or "doc"


def document_id(relative: str, text: str, row: int | None = None) -> str:
    """``slug-<sha8>`` from the path relative to its root, the row (tables) and the text."""
    key = f"{relative}\0{'' if row is None else row}\0{text}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug(relative)}{'' if row is None else f'-r{row}'}-{digest}"


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    )


def _walk(folder: Path, recursive: bool) -> list[Path]:
    """Files under ``folder`` in sorted order; hidden files and folders (``.git``) are ignored."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [Path(current) / f for f in sorted(files) if not f.startswith(".")]
    return found


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))]]
    return Path(*fixed) if fixed else Path(".")


def _expand(entry: str | Path, recursive: bool) -> list[tuple[Path, Path]]:
    """(root, file) pairs for one configured entry; a typo or an empty folder is an error."""
    text = str(entry)
    if _GLOB_CHARS.search(text) and not Path(text).exists():
        files = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
        if not files:
            raise CorpusError(f"corpus.paths: the glob {text!r} matched no files")
        return [(_glob_root(text), f) for f in files]
    path = Path(text).expanduser()
    if path.is_file():
        return [(path.parent, path)]
    if path.is_dir():
        files = _walk(path, recursive)
        if not files:
            raise CorpusError(
                f"corpus.paths: the folder {path} is empty (hidden files are ignored"
                f"{'' if recursive else ', sub-folders too as corpus.recursive=false'}); "
                f"add documents ({', '.join(sorted(FORMATS))}) or point corpus.paths elsewhere"
            )
        return [(path, f) for f in files]
    raise CorpusError(
        f"corpus.paths: {text!r} does not exist (looked in {Path.cwd()}); give a folder, a "
        "file, a glob such as 'docs/**/*.md', a saved dataset folder or hf:NAME"
    )


def _resolved(file: Path) -> Path | None:
    """The real path of ``file``; None for a symlink that cannot be resolved (a loop)."""
    try:
        return file.resolve(strict=False)
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError("Symlink loop ...")
        return None


def corpus_files(
    paths: str | Path | Sequence[str | Path], recursive: bool = True, max_files: int | None = None
) -> list[Path]:
    """The files ``load_user_corpus`` would look at for these entries (saved datasets and
    ``hf:`` entries excluded), in its order, before format checks; a missing path or an empty
    folder is a ``CorpusError``."""
    entries = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: dict[Path, Path] = {}
    for entry in entries:
        text = str(entry)
        if text.startswith(HF_PREFIX) or (Path(text).is_dir() and _is_saved_dataset(Path(text))):
            continue
        for _, file in _expand(entry, recursive):
            resolved = _resolved(file)
            if resolved is not None:
                files.setdefault(resolved, file)
    found = list(files.values())
    return found[:max_files] if max_files else found


class _Collector:
    """Accumulates documents and the report; rejects duplicate ids, drops duplicate texts."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        self.documents: list[Document] = []
        self.origin: dict[str, str] = {}
        self.by_text: dict[bytes, Document] = {}  # sha256 of the text -> the document kept
        self.examples: list[str] = []  # a few "dropped = kept" pairs for the log line

    def add(self, extracted: Extracted, fmt: str, relative: str, source: str) -> None:
        text = extracted.text
        doc_id = extracted.doc_id or document_id(relative, text, extracted.row)
        where = source if extracted.row is None else f"{source} row {extracted.row}"
        if extracted.doc_id and doc_id in self.origin:
            raise CorpusError(
                f"duplicate document id {doc_id!r} ({where} and {self.origin[doc_id]}); "
                "values of corpus.id_column must be unique"
            )
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        kept = self.by_text.get(digest)
        if kept is not None:
            self._drop_duplicate(kept, doc_id, relative, source, extracted.row, where)
            return
        self.origin[doc_id] = where
        name = Path(relative).name
        title = extracted.title or (
            Path(name).stem if extracted.row is None else f"{name} row {extracted.row}"
        )
        metadata = {"path": relative, "source": source, "format": fmt, "row": extracted.row}
        metadata |= extracted.extra or {}
        document = Document(doc_id, title, text, metadata | {"title": title})
        self.by_text[digest] = document
        self.documents.append(document)
        self.report.documents_by_format[fmt] = self.report.documents_by_format.get(fmt, 0) + 1

    def _drop_duplicate(
        self, kept: Document, doc_id: str, relative: str, source: str, row: int | None, where: str
    ) -> None:
        self.report.duplicate_documents += 1
        self.origin.setdefault(doc_id, where)  # an id column's value stays taken
        alias = {"doc_id": doc_id, "path": relative, "source": source, "row": row}
        kept.metadata.setdefault("duplicates", []).append(alias)
        if len(self.examples) < 3:
            self.examples.append(f"{where} = {self.origin[kept.doc_id]}")


def _read_file(path: Path, fmt: str, options: dict[str, Any]) -> FileRows:
    if fmt in TABLE_FORMATS.values():
        return read_table(
            path, fmt, options["text_column"], options["id_column"], options["title_column"]
        )
    if fmt == "pdf":
        text, title, pages = read_pdf(path)
        return FileRows([Extracted(text, title, extra={"pages": pages})])
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SkipFile(f"unreadable: {err.strerror or err}") from None
    text = decode_text(data, options["encoding_fallback"])
    title = ""
    if path.suffix.lower() in HTML_FORMATS:
        text, title = html_to_text(text)
    elif fmt == "md":
        title = markdown_title(text)
    text = text.strip()
    if not text:
        raise SkipFile("no text (only whitespace or markup)")
    return FileRows([Extracted(text, title)])


def _load_dataset_source(entry: str, options: dict[str, Any]) -> tuple[Any, str]:
    """A ``datasets.Dataset`` from ``hf:NAME`` or a folder written by ``save_to_disk``."""
    import datasets

    split = options["split"]
    try:
        if entry.startswith(HF_PREFIX):
            name = entry[len(HF_PREFIX) :]
            return datasets.load_dataset(name, options["dataset_config"], split=split), name
        loaded = datasets.load_from_disk(entry)
    except Exception as err:  # offline, unknown name, corrupt folder: all need the same advice
        raise CorpusError(
            f"corpus.paths: cannot load the dataset {entry!r} (split {split!r}): "
            f"{type(err).__name__}: {err}. Hub datasets need network access (unset "
            "HF_DATASETS_OFFLINE) or a copy saved with save_to_disk."
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise CorpusError(
                f"{entry}: no split {split!r}; available: {', '.join(loaded)} (corpus.split)"
            )
        loaded = loaded[split]
    return loaded, Path(entry).name


def load_user_corpus(
    paths: str | Path | Sequence[str | Path],
    *,
    text_column: str = "text",
    id_column: str | None = None,
    title_column: str | None = None,
    encoding_fallback: str | None = None,
    recursive: bool = True,
    max_files: int | None = None,
    split: str = "train",
    dataset_config: str | None = None,
    progress: bool = False,
) -> tuple[list[Document], IngestReport]:
    """Documents from folders, files, globs, saved datasets or ``hf:NAME`` entries.

    Formats follow the extension (``rag.corpus.formats.FORMATS``); tabular files and datasets use
    ``text_column`` (and ``id_column`` / ``title_column`` when given). Unreadable, binary, empty,
    non-UTF-8 (without ``encoding_fallback``), encrypted and image-only files are skipped and
    listed in the report; no usable document at all is a ``CorpusError``.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    entries = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not entries:
        raise CorpusError("corpus.paths is empty; give at least one folder, file or glob")
    if max_files is not None and max_files < 1:
        raise CorpusError(f"corpus.max_files must be >= 1 or null, got {max_files}")
    options = {
        "text_column": text_column,
        "id_column": id_column,
        "title_column": title_column,
        "encoding_fallback": encoding_fallback,
        "split": split,
        "dataset_config": dataset_config,
    }
    report = IngestReport(sources=[str(e) for e in entries])
    collector = _Collector(report)
    files: dict[Path, tuple[Path, Path]] = {}
    for entry in entries:
        text = str(entry)
        if text.startswith(HF_PREFIX) or (Path(text).is_dir() and _is_saved_dataset(Path(text))):
            table, name = _load_dataset_source(text, options)
            rows, empty = rows_from_table(table, text, text_column, id_column, title_column)
            report.empty_rows += empty
            for row in rows:
                collector.add(row, "dataset", name, text)
            continue
        for root, file in _expand(entry, recursive):
            resolved = _resolved(file)
            if resolved is None:
                report.skipped.append(SkippedFile(str(file), "a symlink loop: it names no file"))
                continue
            files.setdefault(resolved, (root, file))
    supported = _supported(files.values(), report)
    if max_files is not None and len(supported) > max_files:
        report.files_beyond_max = len(supported) - max_files
        logger.warning(
            "reading the first %d of %d files (corpus.max_files)", max_files, len(supported)
        )
        supported = supported[:max_files]
    report.files_found = len(supported)
    for root, file, fmt in tqdm(supported, desc="reading documents", disable=not progress):
        relative = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name
        try:
            read = _read_file(file, fmt, options)
        except SkipFile as reason:
            report.skipped.append(SkippedFile(str(file), str(reason)))
            continue
        report.empty_rows += read.empty_rows
        if read.malformed_lines:
            _record_malformed(report, str(file), read)
        for item in read.items:
            collector.add(item, fmt, relative, str(file))
        pause_point("ingest")  # test hook (rag/core/pause.py); a no-op in real runs
    _finish(collector, report, files, started)
    return collector.documents, report


def _supported(
    found: Iterable[tuple[Path, Path]], report: IngestReport
) -> list[tuple[Path, Path, str]]:
    supported = []
    for root, file in sorted(found, key=lambda pair: (str(pair[0]), str(pair[1]))):
        fmt = FORMATS.get(file.suffix.lower())
        if fmt is None:
            reason = f"unsupported extension {file.suffix or '(none)'}"
            report.skipped.append(SkippedFile(str(file), reason))
        else:
            supported.append((root, file, fmt))
    return supported


def _record_malformed(report: IngestReport, file: str, read: FileRows) -> None:
    lines = read.malformed_lines
    report.malformed_lines += len(lines)
    report.malformed_line_numbers[file] = lines[:10]
    logger.warning(
        "%s: skipped %d malformed line(s), not a JSON object (%s); kept its %d valid rows. "
        "Fix or delete those lines to include them.",
        file,
        len(lines),
        line_numbers(lines),
        len(read.items) + read.empty_rows,
    )


def _finish(collector: _Collector, report: IngestReport, files: dict, started: float) -> None:
    documents = collector.documents
    report.documents = len(documents)
    report.characters = sum(len(d.text) for d in documents)
    report.words = sum(len(d.text.split()) for d in documents)
    report.seconds = round(time.perf_counter() - started, 3)
    for skipped in report.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)
    if report.duplicate_documents:
        logger.warning(
            "dropped %d duplicate document(s) whose text repeats an earlier one, keeping the "
            "first (e.g. %s); questions naming a dropped document use the kept one",
            report.duplicate_documents,
            "; ".join(collector.examples),
        )
    if documents:
        logger.info(
            "ingested %d documents (%s) from %d files, %d skipped",
            len(documents),
            ", ".join(f"{k}: {v}" for k, v in sorted(report.documents_by_format.items())),
            report.files_found,
            len(report.skipped),
        )
        return
    sources = ", ".join(report.sources)
    if files and not report.files_found:
        extensions = Counter(Path(p).suffix.lower() or "(none)" for p in files)
        raise CorpusError(
            f"corpus.paths ({sources}): none of the {len(files)} files has a supported extension "
            f"({', '.join(sorted(FORMATS))}); found {dict(extensions.most_common(5))}. Convert "
            "them (e.g. .docx to .md with pandoc) or point corpus.paths at supported files."
        )
    details = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:5])
    raise CorpusError(
        f"corpus.paths ({sources}): no document could be read; {len(report.skipped)} skipped "
        f"({details}{'; ...' if len(report.skipped) > 5 else ''})"
    )
