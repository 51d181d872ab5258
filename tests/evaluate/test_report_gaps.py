"""Report tables show what runs have and mark what they lack."""

from __future__ import annotations

from evaluate.records.tracking import RunRecord
from evaluate.report import GAP, comparison_rows, swept_params, write_report


def run(name: str, metrics: dict, params: dict | None = None, status: str = "FINISHED"):
    return RunRecord(name, name, status, 0, params or {}, metrics, {"arms": "closed_book,rag"})


def test_missing_metrics_are_marked_not_invented(tmp_path):
    complete = run(
        "a",
        {
            "rag/contains": 0.5,
            "rag/contains_ci95_low": 0.3,
            "rag/contains_ci95_high": 0.7,
            "latency/rag/ttft_p50_s": 0.25,
            "closed_book/contains": 0.0,
        },
    )
    failed = run("b", {}, status="FAILED")
    rows = {r[0]: r for r in comparison_rows(complete)}
    assert rows["rag"][1] == "0.500 [0.30, 0.70]"
    assert rows["rag"][3] == "0.250"  # TTFT p50
    assert rows["rag"][2] == GAP  # exact match was not logged
    assert all(cell == GAP for cell in comparison_rows(failed)[0][1:])
    out = write_report([complete, failed], "t", tmp_path)
    text = (out / "report.md").read_text()
    assert "Run b (FAILED)" in text and GAP in text


def test_swept_parameters_are_the_ones_that_differ():
    runs = [
        run("a", {}, {"retriever.top_k": "3", "paths.cache_dir": "/x", "seed": "0"}),
        run("b", {}, {"retriever.top_k": "5", "paths.cache_dir": "/y", "seed": "0"}),
    ]
    assert swept_params(runs) == ["retriever.top_k"]
