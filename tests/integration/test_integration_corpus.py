"""The entry point on your own documents: file questions, synthesised questions, leakage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration

BYOC = Path(__file__).parents[1] / "data" / "byoc"
ARMS = ["closed_book", "rag", "finetune", "finetune_rag"]


def run_cli(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return ragtune(
        cwd,
        "experiment=smoke",
        "corpus=files",
        f"corpus.paths=[{BYOC / 'docs'}]",
        "tracking=none",
        "hydra.run.dir=out",
        *overrides,
    )


def test_folder_of_mixed_formats_with_a_question_file(tmp_path):
    proc = run_cli(
        tmp_path,
        "qa=file",
        f"qa.path={BYOC / 'questions.jsonl'}",
        "qa.eval_fraction=0.5",
        "retriever.chunk_strategy=sentences",
        "retriever.chunk_size=40",
        "retriever.chunk_overlap=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out/results.json").read_text())
    corpus = results["stages"]["corpus"]
    formats = corpus["ingest"]["documents_by_format"]
    assert {"txt", "md", "html"} <= set(formats), formats
    assert corpus["ingest"]["documents"] == corpus["documents"] >= 3
    assert corpus["leakage"]["overlap_count"] == 0
    assert list(results["arms"]) == ARMS
    asked = {p["question"] for p in results["predictions"]}
    trained = {
        json.loads(line)["question"]
        for line in (BYOC / "questions.jsonl").read_text().splitlines()
        if line.strip()
    } - asked
    assert asked and trained  # both sides of the split are used, and they are disjoint


def test_synthesised_cloze_questions_drive_the_same_experiment(tmp_path):
    proc = run_cli(tmp_path, "qa=cloze", "qa.eval_fraction=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out/results.json").read_text())
    assert results["stages"]["corpus"]["synthesis"]["accepted"] >= 2
    assert results["stages"]["corpus"]["eval_questions"] >= 1
    for p in results["predictions"]:
        assert p["answers"] and p["question"].endswith("?")


def test_a_planted_leaked_question_stops_the_run(tmp_path):
    rows = [
        json.loads(line)
        for line in (BYOC / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    # A training question that is a near-copy (token Jaccard 10/11) of a held-out one, filed
    # as different facts so the split keeps their sides (exact copies are merged on loading).
    base = {"answer": "1987", "doc_id": "history.html"}
    held_out = dict(
        base,
        id="leak-eval",
        split="eval",
        fact_id="copy-b",
        question="In which year was the Harbourview Labs research lab founded?",
    )
    leaked = dict(
        base,
        id="leak-train",
        split="train",
        fact_id="copy-a",
        question="In which year was the Harbourview Labs research lab first founded?",
    )
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in [*rows[1:], leaked, held_out]) + "\n")
    proc = run_cli(tmp_path, "qa=file", f"qa.path={questions}", "qa.max_eval_questions=-1")
    assert proc.returncode != 0
    assert "qa.allow_leakage=true" in proc.stderr + proc.stdout
    assert not (tmp_path / "out/results.json").exists()


def test_a_missing_corpus_path_is_one_clear_line(tmp_path):
    proc = run_cli(tmp_path, "corpus.paths=[no/such/folder]", "qa=cloze")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "corpus.paths" in output and "no/such/folder" in output
    assert "Traceback" not in output
    assert not (tmp_path / "out/results.json").exists()


def test_malformed_jsonl_lines_and_duplicate_documents_are_reported(tmp_path):
    import shutil

    docs = shutil.copytree(BYOC / "docs", tmp_path / "docs")
    # sorted before faq.txt ('-' < '.'): the copy is kept, faq.txt is the dropped duplicate
    shutil.copy(docs / "faq.txt", docs / "faq-copy.txt")
    rows = docs / "notes.jsonl"
    rows.write_text(
        '{"text": "The sailing club of Harbourview Labs meets on Fridays."}\n'
        '{"text": "The library is open\n'  # line 2: cut short, not JSON
        '{"text": "Parking permits are issued by the facilities team."}\n'
        '{"text": "The summer party is held in the courtyard."}\n'
    )
    proc = ragtune(
        tmp_path, "experiment=smoke", "corpus=files", f"corpus.paths=[{docs}]", "qa=file",
        f"qa.path={BYOC / 'questions.jsonl'}", "qa.eval_fraction=0.5", "eval.arms=[rag]",
        "tracking=none", "hydra.run.dir=out",
        # the three shortest chunks (the rows, 8 or 9 words each) exceed 16 tokens: a warning
        "retriever.top_k=3", "retriever.context_budget_tokens=16",
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    corpus = json.loads((tmp_path / "out/results.json").read_text())["stages"]["corpus"]
    ingest = corpus["ingest"]
    # 3 files of the example (faq.txt dropped for its copy) + the 3 valid rows
    assert ingest["documents"] == corpus["documents"] == 6
    assert ingest["documents_by_format"]["jsonl"] == 3
    assert ingest["malformed_lines"] == 1 and ingest["malformed_line_numbers"] == {str(rows): [2]}
    assert ingest["duplicate_documents"] == 1
    assert corpus["qa_file"]["unknown_doc_ids"] == 0  # "faq.txt" names the kept copy
    warnings = [line for line in output.splitlines() if "malformed line" in line]
    assert len(warnings) == 1 and str(rows) in warnings[0] and "(line 2)" in warnings[0]
    assert "dropped 1 duplicate document(s)" in output
    assert "over retriever.context_budget_tokens=16; every question keeps fewer chunks" in output
