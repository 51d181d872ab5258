"""The shipped real-text set: every answer is verbatim in its document, every id resolves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.build_realtext import build_questions, load_question_source
from rag.corpus.ingest import load_user_corpus
from rag.qa.sets import load_qa_file

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "rag" / "corpus" / "data" / "realtext" / "docs"
QUESTIONS_FILE = ROOT / "rag" / "qa" / "data" / "realtext" / "questions.jsonl"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS_FILE.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.txt"))}


def answers(row: dict) -> list[str]:
    return row.get("answers") or [row["answer"]]


def test_every_answer_occurs_verbatim_in_its_document(rows, texts):
    assert 60 <= len(rows) <= 100
    assert 40 <= len(texts) <= 100
    missing_docs = [row["id"] for row in rows if row["doc_id"] not in texts]
    assert missing_docs == []
    absent = [
        (row["id"], answer)
        for row in rows
        for answer in answers(row)
        if answer not in texts[row["doc_id"]]
    ]
    assert absent == []


def test_rows_are_unique_short_and_all_held_out(rows):
    assert len({row["id"] for row in rows}) == len(rows)
    assert len({row["question"] for row in rows}) == len(rows)
    assert {row["split"] for row in rows} == {"eval"}
    assert all(row["question"].endswith("?") for row in rows)
    assert max(len(answer.split()) for row in rows for answer in answers(row)) <= 4


def test_the_file_is_what_the_build_writes_from_the_shipped_documents(rows, texts):
    # The build also checks each question's evidence sentence against the document.
    assert build_questions(texts) == rows
    assert len(load_question_source()) == len(rows)


def test_the_question_reader_resolves_every_document_by_its_file_stem(rows):
    documents, report = load_user_corpus(DOCS)
    assert report.documents == len(list(DOCS.glob("*.txt"))) and not report.skipped
    pairs, qa_report = load_qa_file(QUESTIONS_FILE, documents)
    assert qa_report.loaded == len(rows)
    assert qa_report.unknown_doc_ids == 0
    assert qa_report.answers_not_found == 0 and qa_report.answers_outside_support == 0
    by_path = {Path(d.metadata["path"]).stem: d.doc_id for d in documents}
    assert [qa.supporting_doc_ids for qa in pairs] == [[by_path[row["doc_id"]]] for row in rows]


def test_the_preset_points_at_the_shipped_files_from_any_working_directory(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config

    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        config = to_config(compose(config_name="config", overrides=["experiment=realtext"]))
    assert [Path(p) for p in config.corpus.paths] == [DOCS]
    assert Path(config.qa.path) == QUESTIONS_FILE
    assert config.qa.max_eval_questions == -1


def test_package_data_names_what_is_missing():
    from evaluate.config.resolvers import PackageDataError, package_data

    assert Path(package_data("rag", "qa/data/realtext/questions.jsonl")) == QUESTIONS_FILE
    with pytest.raises(PackageDataError, match="no_such_folder"):
        package_data("rag", "corpus/data/no_such_folder")
    with pytest.raises(PackageDataError, match="no installed package 'no_such_package'"):
        package_data("no_such_package", "data")
