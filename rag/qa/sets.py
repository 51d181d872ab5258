"""Question/answer sets from a file (JSON Lines, JSON or CSV), validated row by row.

Columns: ``question``; ``answer`` and/or ``answers`` (a list, or aliases separated by ``|``);
optional ``supporting_doc_ids`` (list or ``|``-separated) or ``doc_id``, ``id``, ``split``
(``train``/``eval``) and ``fact_id``. Document references may be document ids or the file's path
relative to the corpus root. Answers found in no document are counted and reported, not
rejected: a gold answer may be abstractive.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.core.errors import UserError
from rag.core.types import Document, QAPair
from rag.qa.leakage import SPLITS, UNASSIGNED, group_key, normalize

logger = logging.getLogger(__name__)

QA_FORMATS = (".jsonl", ".json", ".csv")
ON_ERROR = ("raise", "skip")


class QAFileError(UserError, ValueError):
    """The question file cannot be used; the message names the file, row and field."""


@dataclass
class QAReport:
    path: str
    rows: int = 0
    loaded: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"row": n, "reason": ...}
    duplicates: int = 0
    unknown_doc_ids: int = 0
    answers_not_found: int = 0  # questions none of whose answers occurs in any document
    answers_not_found_share: float = 0.0
    not_found_examples: list[str] = field(default_factory=list)
    answers_outside_support: int = 0  # found in the corpus but not in the cited documents
    splits: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(path: Path) -> list[tuple[str, Any]]:
    """(location, raw row) pairs; a file that cannot be parsed at all is a ``QAFileError``."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise QAFileError(f"qa.path: cannot read {path}: {err}") from None
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as err:
                    rows.append((f"line {number}", ValueError(f"invalid JSON: {err.msg}")))
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise QAFileError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(data, list):
            raise QAFileError(f"{path}: expected a JSON array of question objects")
        return [(f"row {i}", row) for i, row in enumerate(data, start=1)]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if "question" not in columns or not {"answer", "answers"} & set(columns):
        raise QAFileError(
            f"{path}: needs the columns 'question' and 'answer' (or 'answers'); "
            f"found {', '.join(columns) or 'no header'}"
        )
    return [(f"row {i} (line {i + 1})", row) for i, row in enumerate(reader, start=1)]


def count_qa_rows(path: Path) -> int:
    """Rows in a question file as ``load_qa_file`` reads them (before validating them)."""
    return len(_rows(path))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split("|")
    return [str(item).strip() for item in items if item is not None and str(item).strip()]


def _answers(row: dict[str, Any]) -> list[str]:
    """``answer`` and ``answers``: a text (aliases separated by ``|``), a whole number (``120``
    reads as written) or a list of those. An object, a nested list, a boolean or a fraction is an
    error: scoring its ``str()`` would grade answers against ``"{'x': 'y'}"``, ``"True"`` or
    ``"1000.0"``. CSV cells are always text; JSON keeps the types as written."""
    for key in ("answer", "answers"):
        value = row.get(key)
        items = value if isinstance(value, list) else [value]
        wrong = [item for item in items if item is not None and not _answer_like(item)]
        if wrong:
            raise ValueError(
                f"{key!r} must be a text or a list of texts, got {type(wrong[0]).__name__} "
                f"{wrong[0]!r}"
            )
    return list(dict.fromkeys(_as_list(row.get("answer")) + _as_list(row.get("answers"))))


def _answer_like(item: Any) -> bool:
    return isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool))


def _parse(row: Any) -> dict[str, Any]:
    """Validated fields of one row; raises ``ValueError`` with the reason."""
    if isinstance(row, Exception):
        raise row
    if not isinstance(row, dict):
        raise ValueError(f"expected an object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing or empty 'question'")
    answers = _answers(row)
    if not answers:
        raise ValueError("no answer ('answer' or 'answers' missing or empty)")
    split = str(row.get("split") or "").strip().lower()
    if split not in (*SPLITS, UNASSIGNED):
        raise ValueError(f"split must be train or eval, got {row.get('split')!r}")
    docs = _as_list(row.get("supporting_doc_ids")) or _as_list(row.get("doc_id"))
    return {
        "qa_id": str(row.get("id") or "").strip(),
        "question": " ".join(question.split()),
        "answers": answers,
        "docs": docs,
        "split": split,
        "fact_id": str(row.get("fact_id") or "").strip(),
    }


def load_qa_file(
    path: str | Path, documents: list[Document] | None = None, on_error: str = "raise"
) -> tuple[list[QAPair], QAReport]:
    """Questions of a JSONL/JSON/CSV file; rows without a split keep ``split=""`` until
    ``rag.qa.leakage.split_questions`` places them.

    ``on_error="raise"`` stops at invalid rows (listing up to five), ``"skip"`` drops and counts
    them. With ``documents``, references are resolved and answer coverage is measured.
    """
    path = Path(path).expanduser()
    if on_error not in ON_ERROR:
        raise QAFileError(f"qa.on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if not path.is_file():
        raise QAFileError(f"qa.path: {path} does not exist (looked in {Path.cwd()})")
    if path.suffix.lower() not in QA_FORMATS:
        raise QAFileError(f"qa.path: {path} must be one of {', '.join(QA_FORMATS)}")
    report = QAReport(path=str(path))
    rows = _rows(path)
    report.rows = len(rows)
    references = _references(documents or [])
    pairs, seen_ids, seen_questions, unknown = [], set(), set(), []
    for number, (location, row) in enumerate(rows, start=1):
        try:
            fields = _parse(row)
            qa_id = fields["qa_id"] or f"{path.stem}-{number}"
            if qa_id in seen_ids:
                raise ValueError(f"duplicate id {qa_id!r}")
        except ValueError as err:
            report.skipped.append({"row": location, "reason": str(err)})
            continue
        if normalize(fields["question"]) in seen_questions:
            report.duplicates += 1
            continue
        seen_ids.add(qa_id)
        seen_questions.add(normalize(fields["question"]))
        doc_ids = [references.get(d) for d in fields["docs"]] if documents else fields["docs"]
        report.unknown_doc_ids += doc_ids.count(None)
        unknown += [d for d, found in zip(fields["docs"], doc_ids, strict=True) if found is None]
        pairs.append(
            QAPair(
                qa_id=qa_id,
                question=fields["question"],
                answers=fields["answers"],
                supporting_doc_ids=list(dict.fromkeys(d for d in doc_ids if d)),
                fact_id=fields["fact_id"],
                split=fields["split"],
            )
        )
    _raise_or_warn(report, on_error)
    _warn_unknown_references(report, unknown)
    if not pairs:
        raise QAFileError(f"{path}: no usable question ({len(report.skipped)} invalid rows)")
    report.loaded = len(pairs)
    report.splits = {
        name or "unassigned": sum(qa.split == name for qa in pairs) for name in (*SPLITS, "")
    }
    if documents:
        measure_answer_coverage(pairs, documents, report)
    return pairs, report


def _references(documents: list[Document]) -> dict[str, str]:
    """Accepted spellings of a document reference: its id, its relative or source path, and
    its file name without the extension (``doc0000`` for ``doc0000.txt``) where that stem names
    one document only. A table's path names many documents (one per row): ambiguous, skipped.
    A duplicate dropped at ingestion (``metadata["duplicates"]``) is spelled like the document
    that was kept in its place."""
    found: dict[str, str] = {}
    stems: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    for doc in documents:
        dropped = doc.metadata.get("duplicates") or []
        aliases |= {d["doc_id"]: doc.doc_id for d in dropped}
        for named in (doc.metadata, *dropped):
            if named.get("row") is not None:
                continue
            for key in (named.get("source"), named.get("path")):
                if key:
                    found.setdefault(str(key), doc.doc_id)
                    stems.setdefault(Path(str(key)).stem, set()).add(doc.doc_id)
    unique_stems = {stem: ids.pop() for stem, ids in stems.items() if len(ids) == 1}
    return unique_stems | found | aliases | {doc.doc_id: doc.doc_id for doc in documents}


def _warn_unknown_references(report: QAReport, unknown: list[str]) -> None:
    """Questions whose documents are not found are left out of the retrieval metrics: say so."""
    if not unknown:
        return
    shown = ", ".join(repr(d) for d in list(dict.fromkeys(unknown))[:5])
    logger.warning(
        "%s: %d document reference(s) match no document (e.g. %s); their questions are left out "
        "of recall@k and the other retrieval metrics. Name documents by id, relative path or "
        "file name without extension.",
        report.path,
        len(unknown),
        shown,
    )


def _raise_or_warn(report: QAReport, on_error: str) -> None:
    if not report.skipped:
        return
    listed = "; ".join(f"{s['row']}: {s['reason']}" for s in report.skipped[:5])
    more = f" (and {len(report.skipped) - 5} more)" if len(report.skipped) > 5 else ""
    if on_error == "raise":
        raise QAFileError(
            f"{report.path}: {len(report.skipped)} invalid rows: {listed}{more}. "
            "Fix them, or set qa.on_error=skip to drop them."
        )
    logger.warning(
        "%s: skipped %d invalid rows: %s%s", report.path, len(report.skipped), listed, more
    )


def measure_answer_coverage(
    pairs: list[QAPair], documents: list[Document], report: QAReport
) -> None:
    """Count questions whose answers occur in no document (normalised, whole words)."""
    texts = {d.doc_id: f" {normalize(d.text)} " for d in documents}
    for qa in pairs:
        needles = [f" {normalize(a)} " for a in qa.answers if normalize(a)]

        def found_in(doc_ids, needles=needles) -> bool:
            return any(n in texts[d] for d in doc_ids for n in needles)

        if qa.supporting_doc_ids and found_in(qa.supporting_doc_ids):
            continue
        if found_in(texts):
            report.answers_outside_support += bool(qa.supporting_doc_ids)
            continue
        report.answers_not_found += 1
        if len(report.not_found_examples) < 5:
            report.not_found_examples.append(qa.question)
    report.answers_not_found_share = report.answers_not_found / len(pairs) if pairs else 0.0
    if report.answers_not_found:
        logger.warning(
            "%s: for %d of %d questions (%.1f%%) no answer occurs in the corpus (abstractive "
            "answers, or documents missing?), e.g. %s",
            report.path,
            report.answers_not_found,
            len(pairs),
            100 * report.answers_not_found_share,
            report.not_found_examples[:3],
        )


def sample_questions(pairs: list[QAPair], max_questions: int, seed: int) -> list[QAPair]:
    """A deterministic sample spread over fact groups (one question per group before a second);
    ``max_questions=-1`` returns them all, in that order."""
    groups: dict[str, list[QAPair]] = defaultdict(list)
    for qa in sorted(pairs, key=lambda q: q.qa_id):
        groups[group_key(qa)].append(qa)
    rng = random.Random(seed)
    queues = [groups[key] for key in sorted(groups)]
    rng.shuffle(queues)
    ordered = interleave(queues)
    return ordered if max_questions == -1 else ordered[:max_questions]


def interleave(queues: list[list[QAPair]]) -> list[QAPair]:
    """Round robin over the queues: the first of each, then the second of each, ..."""
    ordered = []
    for rank in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[rank] for q in queues if rank < len(q))
    return ordered
