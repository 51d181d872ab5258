"""ragtune-report renders the cost report's self-hosted versus API section: a table and a plot."""

from __future__ import annotations

from evaluate.records.results import tokenomics_metrics
from evaluate.records.tracking import RunRecord
from evaluate.report import self_hosted_vs_api_rows, write_report


def section():
    def arm(crossing_usd, capacity):
        return {
            "crossing": {
                "usd": {"queries_per_day": crossing_usd},
                "co2_kg": {"queries_per_day": None},  # unknown: never logged, shown as a gap
            },
            "self_hosted": {"replica_day": {"usd": 48.0}, "capacity_queries_per_day": capacity},
            "api_per_query": {"usd": 0.000255},
        }

    return {"arms": {"rag": {"gpt-4o-mini": arm(188_235.3, 5e6)}}}


def test_section_metrics_table_and_plot(tmp_path):
    metrics = tokenomics_metrics(section())
    assert metrics == {
        "tokenomics/rag/gpt-4o-mini/crossing_usd_queries_per_day": 188_235.3,
        "tokenomics/rag/gpt-4o-mini/replica_day_usd": 48.0,
        "tokenomics/rag/gpt-4o-mini/capacity_queries_per_day": 5e6,
        "tokenomics/rag/gpt-4o-mini/api_usd_per_query": 0.000255,
    }
    run = RunRecord("r", "r", "FINISHED", 0, {}, metrics, {"arms": "rag"})
    rows = self_hosted_vs_api_rows(run)
    assert rows == [["rag", "gpt-4o-mini", "48.000", "0.000255", "188235.300", "–"]]
    out = write_report([run], "t", tmp_path)
    text = (out / "report.md").read_text()
    assert "## Self-hosted versus API (run r)" in text
    assert (out / "self_hosted_vs_api.png").stat().st_size > 1000
    assert "self_hosted_vs_api.png" in text


def test_runs_without_the_section_have_neither():
    run = RunRecord("r", "r", "FINISHED", 0, {}, {}, {"arms": "rag"})
    assert self_hosted_vs_api_rows(run) == []
    assert tokenomics_metrics(None) == {}
