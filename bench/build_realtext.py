"""Build the real-text question set from the Python language reference that ships with Python.

    .venv/bin/python -m bench.build_realtext            # rewrite the documents and questions
    .venv/bin/python -m bench.build_realtext --check    # only verify, write nothing

Documents are the ``topics`` of ``pydoc_data.topics`` (the text ``help("if")`` prints), one
``.txt`` per document under ``rag/corpus/data/realtext/docs/``; a topic longer than
``SPLIT_ABOVE_WORDS`` is cut at blank lines into parts ``<topic>-1``, ``<topic>-2`` ... Topics
whose paragraphs are all repeated inside another topic (``compound`` gathers ``if``, ``while``,
``try`` ...) are left out, so every answer has one home. Each row of ``realtext_questions.tsv``
names its topic, a short answer copied verbatim from that topic and an evidence phrase (the
sentence the answer is read from); the build refuses to write anything unless every answer
occurs verbatim in the document its evidence sits in. Questions go to
``rag/qa/data/realtext/questions.jsonl``, all in the evaluation split.

The text differs slightly between Python releases; the shipped files come from Python 3.11.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
from pathlib import Path

logger = logging.getLogger("bench.build_realtext")

ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = ROOT / "rag" / "corpus" / "data" / "realtext" / "docs"
QUESTIONS_PATH = ROOT / "rag" / "qa" / "data" / "realtext" / "questions.jsonl"

# Topics repeated whole inside another topic (measured: every paragraph of the left one occurs in
# the right one): compound ⊃ if/while/for/try/with/function/class/async; specialnames ⊃
# customization, attribute-access ...; assignment ⊃ augassign; execmodel ⊃ naming ⊃
# dynamic-features; if ⊃ else; identifiers ⊃ id-classes; comparisons ⊃ in; typesseq ⊃
# typesseq-mutable. The containers below are dropped when the parts they repeat are kept.
EXCLUDED_TOPICS = (
    "compound",
    "specialnames",
    "augassign",
    "execmodel",
    "dynamic-features",
    "else",
    "id-classes",
    "in",
    "typesseq-mutable",
)
SPLIT_ABOVE_WORDS = 2000  # longer topics become several documents ...
PART_WORDS = 1200  # ... of about this many words each, cut at blank lines

# One question a row: topic, question, answers (aliases separated by "|"), evidence. Answers are
# verbatim substrings of the topic's text on one line; the evidence phrase (compared with white
# space collapsed) is the sentence the answer is read from.
QUESTIONS_SOURCE = Path(__file__).with_name("realtext_questions.tsv")


class BuildError(RuntimeError):
    """A question does not match its document; the message names the question."""


def squash(text: str) -> str:
    return " ".join(text.split())


def load_topics() -> dict[str, str]:
    from pydoc_data.topics import topics  # the text help() prints; ships with CPython

    return {name: text.strip() + "\n" for name, text in topics.items()}


def split_topic(name: str, text: str) -> dict[str, str]:
    """``{doc_id: text}``: the topic whole, or cut at blank lines into parts of about
    ``PART_WORDS`` words when it is longer than ``SPLIT_ABOVE_WORDS``."""
    if len(text.split()) <= SPLIT_ABOVE_WORDS:
        return {name: text}
    parts, current = [], []
    for paragraph in re.split(r"\n\s*\n", text):
        current.append(paragraph)
        if sum(len(p.split()) for p in current) >= PART_WORDS:
            parts.append(current)
            current = []
    if current:
        if parts and sum(len(p.split()) for p in current) < PART_WORDS // 3:
            parts[-1].extend(current)  # no tiny tail part
        else:
            parts.append(current)
    return {f"{name}-{i}": "\n\n".join(p).strip() + "\n" for i, p in enumerate(parts, start=1)}


def build_documents(topics: dict[str, str]) -> dict[str, str]:
    missing = [name for name in EXCLUDED_TOPICS if name not in topics]
    if missing:
        raise BuildError(f"topics not in this Python's pydoc_data: {', '.join(missing)}")
    documents = {}
    for name in sorted(topics):
        if name not in EXCLUDED_TOPICS:
            documents |= split_topic(name, topics[name])
    return documents


def load_question_source(path: Path = QUESTIONS_SOURCE) -> list[tuple[str, str, list[str], str]]:
    """(topic, question, answers, evidence) rows of the tab-separated question source."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            (row["topic"], row["question"], row["answers"].split("|"), row["evidence"])
            for row in reader
        ]


def build_questions(documents: dict[str, str]) -> list[dict[str, object]]:
    """Question rows; every answer must occur verbatim in the document holding the evidence."""
    rows, problems = [], []
    for number, (topic, question, answers, evidence) in enumerate(load_question_source(), 1):
        candidates = [
            doc_id
            for doc_id, text in documents.items()
            if (doc_id == topic or doc_id.rsplit("-", 1)[0] == topic)
            and squash(evidence) in squash(text)
        ]
        where = f"question {number} ({question!r})"
        if len(candidates) != 1:
            problems.append(f"{where}: evidence found in {candidates or 'no document'} of {topic}")
            continue
        text = documents[candidates[0]]
        absent = [a for a in answers if a not in text]
        if absent:
            problems.append(f"{where}: answers {absent} not verbatim in {candidates[0]}")
            continue
        row: dict[str, object] = {"id": f"realtext-{number:03d}", "question": question}
        row |= {"answer": answers[0]} if len(answers) == 1 else {"answers": answers}
        rows.append(row | {"doc_id": candidates[0], "split": "eval"})
    if problems:
        raise BuildError("; ".join(problems))
    return rows


def write(documents: dict[str, str], rows: list[dict[str, object]]) -> None:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in DOCS_DIR.glob("*.txt"):
        if stale.stem not in documents:
            stale.unlink()
    for doc_id, text in documents.items():
        (DOCS_DIR / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    QUESTIONS_PATH.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    QUESTIONS_PATH.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if sys.version_info[:2] != (3, 11):
        logger.warning("the shipped files come from Python 3.11; this is %s", sys.version)
    try:
        documents = build_documents(load_topics())
        rows = build_questions(documents)
    except BuildError as err:
        logger.error("%s", err)
        return 1
    used = {row["doc_id"] for row in rows}
    logger.info(
        "%d documents (%d words), %d questions on %d of them",
        len(documents),
        sum(len(t.split()) for t in documents.values()),
        len(rows),
        len(used),
    )
    if not args.check:
        write(documents, rows)
        logger.info("wrote %s and %s", DOCS_DIR.relative_to(ROOT), QUESTIONS_PATH.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
