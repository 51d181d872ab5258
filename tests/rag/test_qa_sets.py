"""Question files: formats, row validation, document references and answer coverage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rag.corpus.ingest import load_user_corpus
from rag.qa.leakage import check_leakage, split_questions, training_texts
from rag.qa.sets import QAFileError, load_qa_file, sample_questions

EXAMPLE = Path(__file__).parents[1] / "data" / "byoc"


@pytest.fixture(scope="module")
def documents():
    return load_user_corpus(EXAMPLE / "docs")[0]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_worked_example_loads_resolves_paths_and_finds_every_answer(documents):
    pairs, report = load_qa_file(EXAMPLE / "questions.jsonl", documents)
    by_path = {d.metadata["path"]: d.doc_id for d in documents}
    assert [q.qa_id for q in pairs] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert pairs[0].supporting_doc_ids == [by_path["history.html"]]
    assert pairs[2].answers == ["the front desk in Building C", "front desk"]
    assert pairs[3].answers == ["every 4 years", "4 years"]  # "|"-separated aliases
    assert report.answers_not_found == 0 and report.unknown_doc_ids == 0
    assert report.splits == {"train": 0, "eval": 0, "unassigned": 6}
    split = split_questions(pairs, 0.5, seed=0)
    train = [q for q in split if q.split == "train"]
    evals = [q.question for q in split if q.split == "eval"]
    assert len(evals) == 3 and check_leakage(training_texts(train), evals).overlap_count == 0


def test_csv_with_aliases_splits_and_ids(tmp_path, documents):
    path = tmp_path / "qa.csv"
    path.write_text(
        "id,question,answers,split,supporting_doc_ids\n"
        'c1,Who founded Harbourview Labs?,Ada Whitlock|Whitlock,eval,"history.html"\n'
        "c2,When does the canteen serve lunch?,between 11:30 and 14:00,TRAIN,\n"
        'c3,"A question\nover two lines?",Kessel,,\n',
        encoding="utf-8",
    )
    pairs, report = load_qa_file(path, documents)
    assert [(q.qa_id, q.split, q.answers) for q in pairs] == [
        ("c1", "eval", ["Ada Whitlock", "Whitlock"]),
        ("c2", "train", ["between 11:30 and 14:00"]),
        ("c3", "", ["Kessel"]),
    ]
    assert pairs[2].question == "A question over two lines?"  # a quoted field may span lines
    assert report.splits == {"train": 1, "eval": 1, "unassigned": 1}


def test_rows_without_question_or_answer_are_named_or_skipped(tmp_path, documents):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "Who founded Harbourview Labs?", "answer": "Ada Whitlock"},
            {"question": "", "answer": "x"},
            {"question": "No answer here?"},
            {"question": "Blank answers?", "answers": ["", " "]},
            "{not json",
            [1, 2],
            {"question": "Bad split?", "answer": "y", "split": "test"},
        ],
    )
    with pytest.raises(QAFileError) as err:
        load_qa_file(path, documents)
    message = str(err.value)
    assert "6 invalid rows" in message and "line 2: missing or empty 'question'" in message
    assert "line 3: no answer" in message and "line 5: invalid JSON" in message
    assert "(and 1 more)" in message and "qa.on_error=skip" in message
    pairs, report = load_qa_file(path, documents, on_error="skip")
    assert [q.question for q in pairs] == ["Who founded Harbourview Labs?"]
    assert report.rows == 7 and report.loaded == 1 and len(report.skipped) == 6
    assert report.skipped[-1] == {
        "row": "line 7",
        "reason": "split must be train or eval, got 'test'",
    }


def test_answers_found_nowhere_are_counted_and_reported(tmp_path, documents, caplog):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "Who founded the company?", "answer": "ada  WHITLOCK."},  # normalised
            {"question": "Why was it founded?", "answer": "to study tides"},  # abstractive
            {"question": "Number of staff?", "answer": 120},  # numbers become strings
            {"question": "Badge?", "answer": "Building C", "doc_id": "faq.txt"},  # other document
        ],
    )
    with caplog.at_level(logging.WARNING, logger="rag.qa.sets"):
        pairs, report = load_qa_file(path, documents)
    assert pairs[2].answers == ["120"]
    assert report.answers_not_found == 2 and report.answers_not_found_share == 0.5
    assert report.not_found_examples == ["Why was it founded?", "Number of staff?"]
    assert report.answers_outside_support == 1
    assert "for 2 of 4 questions (50.0%) no answer occurs in the corpus" in caplog.text


def test_duplicates_and_unknown_document_references(tmp_path, documents):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"id": "a", "question": "Who founded it?", "answer": "Ada Whitlock", "doc_id": "nope"},
            {"id": "b", "question": "who founded it", "answer": "Ada Whitlock"},
            {"id": "a", "question": "Another?", "answer": "Kessel"},
        ],
    )
    with pytest.raises(QAFileError, match="line 3: duplicate id 'a'"):
        load_qa_file(path, documents)
    pairs, report = load_qa_file(path, documents, on_error="skip")
    assert [q.qa_id for q in pairs] == ["a"] and pairs[0].supporting_doc_ids == []
    assert report.duplicates == 1 and report.unknown_doc_ids == 1


def test_file_level_errors(tmp_path):
    with pytest.raises(QAFileError, match="qa.path: .*missing.jsonl does not exist"):
        load_qa_file(tmp_path / "missing.jsonl")
    (tmp_path / "qa.txt").write_text("x")
    with pytest.raises(QAFileError, match=r"must be one of \.jsonl, \.json, \.csv"):
        load_qa_file(tmp_path / "qa.txt")
    (tmp_path / "qa.csv").write_text("prompt,response\na,b\n")
    with pytest.raises(QAFileError, match="needs the columns 'question' and 'answer'.*prompt"):
        load_qa_file(tmp_path / "qa.csv")
    (tmp_path / "qa.json").write_text('{"question": "x"}')
    with pytest.raises(QAFileError, match="expected a JSON array"):
        load_qa_file(tmp_path / "qa.json")
    write_jsonl(tmp_path / "bad.jsonl", [{"question": "x"}])
    with pytest.raises(QAFileError, match="no usable question"):
        load_qa_file(tmp_path / "bad.jsonl", on_error="skip")
    with pytest.raises(QAFileError, match="qa.on_error"):
        load_qa_file(tmp_path / "bad.jsonl", on_error="ignore")


def test_json_array_without_documents(tmp_path):
    (tmp_path / "qa.json").write_text(
        json.dumps([{"question": "Q?", "answer": "A", "fact_id": "f"}])
    )
    pairs, report = load_qa_file(tmp_path / "qa.json")
    assert pairs[0].fact_id == "f" and pairs[0].qa_id == "qa-1"
    assert report.answers_not_found == 0  # not measured without documents


def test_sample_questions_spreads_over_fact_groups():
    from rag.core.types import QAPair

    pairs = [
        QAPair(f"{f}-{p}", f"q {f} {p}", ["a"], [], fact_id=f"F{f}", split="eval")
        for f in range(5)
        for p in range(3)
    ]
    first = sample_questions(pairs, 5, seed=1)
    assert len({q.fact_id for q in first}) == 5  # one per fact before any second
    assert first == sample_questions(pairs, 5, seed=1)
    assert len(sample_questions(pairs, -1, seed=1)) == 15


def test_documents_are_found_by_file_stem_and_unknown_ones_are_named(tmp_path, documents, caplog):
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {
                "id": "s",
                "question": "Who founded it?",
                "answer": "Ada Whitlock",
                "doc_id": "history",
            },
            {"id": "u", "question": "Where?", "answer": "Kessel", "doc_id": "doc0000"},
        ],
    )
    with caplog.at_level("WARNING"):
        pairs, report = load_qa_file(path, documents)
    by_id = {q.qa_id: q for q in pairs}
    history = next(d.doc_id for d in documents if d.metadata["path"] == "history.html")
    assert by_id["s"].supporting_doc_ids == [history]  # "history" is history.html's stem
    assert by_id["u"].supporting_doc_ids == [] and report.unknown_doc_ids == 1
    assert "'doc0000'" in caplog.text and "left out of recall@k" in caplog.text


@pytest.mark.parametrize(
    "answer,kind",
    [({"x": "y"}, "dict"), ([["a"]], "list"), (True, "bool"), (1.5, "float")],
    ids=["object", "nested-list", "boolean", "fraction"],
)
def test_answers_of_the_wrong_type_are_rejected_with_the_line(tmp_path, answer, kind):
    rows = [
        {"question": "When was it built?", "answer": "1871"},
        {"question": "Who built it?", "answers": answer},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(QAFileError) as err:
        load_qa_file(path)
    assert f"line 2: 'answers' must be a text or a list of texts, got {kind}" in str(err.value)
    pairs, report = load_qa_file(path, on_error="skip")
    assert [p.answers for p in pairs] == [["1871"]] and len(report.skipped) == 1
