"""Report tables show what runs have and mark what they lack; the bottom line, the plots and the
self-contained HTML page."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from evaluate.records.plots import arm_colour, pareto_figure, pareto_front
from evaluate.records.summary import GAP, arm_table_text, bottom_line
from evaluate.records.tracking import RunRecord
from evaluate.report import comparison_rows, swept_params, write_report


def run(
    name: str,
    arms: dict[str, dict[str, float]],
    params: dict | None = None,
    status: str = "FINISHED",
    metrics: dict | None = None,
    tags: dict | None = None,
) -> RunRecord:
    record = RunRecord(name, name, status, 0, params or {}, metrics or {}, tags or {})
    record.arms = {
        arm: RunRecord(f"{name}-{arm}", arm, status, 0, {}, m, {"arm": arm, "kind": "arm"})
        for arm, m in arms.items()
    }
    return record


def test_missing_metrics_are_marked_not_invented(tmp_path):
    complete = run(
        "a",
        {
            "rag": {
                "accuracy/contains": 0.5,
                "accuracy/contains_ci95_low": 0.3,
                "accuracy/contains_ci95_high": 0.7,
                "latency/ttft_p50_s": 0.25,
            },
            "closed_book": {"accuracy/contains": 0.0},
        },
    )
    failed = run("b", {}, status="FAILED")
    rows = {r[0]: r for r in comparison_rows(complete)}
    assert rows["rag"][1] == "0.500 [0.30, 0.70]"
    assert rows["rag"][3] == "0.250"  # TTFT p50
    assert rows["rag"][2] == GAP  # exact match was not logged
    assert list(rows) == ["closed_book", "rag"]  # registry order, whatever order they came in
    assert all(cell == GAP for cell in comparison_rows(failed)[0])
    out = write_report([complete, failed], "t", tmp_path)
    text = (out / "report.md").read_text()
    assert "Run b (FAILED)" in text and GAP in text


MEASURED = {"rag": {"accuracy/contains": 0.5}}


def test_swept_parameters_are_the_ones_that_differ():
    runs = [
        run("a", MEASURED, {"retriever.top_k": "3", "paths.cache_dir": "/x", "seed": "0"}),
        run("b", MEASURED, {"retriever.top_k": "5", "paths.cache_dir": "/y", "seed": "0"}),
    ]
    assert swept_params(runs) == ["retriever.top_k"]


def test_a_killed_run_is_a_note_and_sweeps_nothing(tmp_path):
    """A run killed before answering has parameters but no figures: it is neither a row of
    gaps nor the second point of a one-point "sweep" of the key it changed."""
    done = run("done", MEASURED, {"finetune.max_steps": "-1"})
    killed = run("killed", {}, {"finetune.max_steps": "5"}, status="FAILED")
    assert swept_params([done, killed]) == []
    text = (write_report([done, killed], "t", tmp_path) / "report.md").read_text()
    assert "## Run killed (FAILED)" in text and "No arm was measured" in text
    assert "max_steps" not in text
    assert not list(tmp_path.glob("sweep_*"))


def test_a_run_still_in_progress_is_not_called_killed(tmp_path):
    running = run("now", {}, status="RUNNING")
    text = (write_report([running], "t", tmp_path) / "report.md").read_text()
    assert "## Run now (RUNNING)" in text and "Still running" in text
    assert "ended before answering" not in text


def test_headings_of_a_sweep_show_each_runs_swept_values(tmp_path):
    runs = [
        run("sweep-0", MEASURED, {"retriever.top_k": "1", "seed": "0"}),
        run("sweep-1", MEASURED, {"retriever.top_k": "3", "seed": "0"}),
    ]
    text = (write_report(runs, "t", tmp_path) / "report.md").read_text()
    assert "## Run sweep-0 (retriever.top_k=1)" in text
    assert "## Run sweep-1 (retriever.top_k=3)" in text


# Two arms by hand: A costs nothing up front and 2 USD per 1k queries, B 10 USD up front and
# 1 USD per 1k. Their totals meet where 2n = 10 + n (n in thousands): n = 10, i.e. 10,000
# queries; below it A is cheaper, above it B.
HAND = {
    "A": {
        "accuracy/contains": 0.4,
        "latency/request_p50_s": 0.2,
        "cost/usd_per_1k_queries": 2.0,
        "cost/one_time_usd": 0.0,
        "co2/operational_kg_per_1k_queries": 0.5,
    },
    "B": {
        "accuracy/contains": 0.7,
        "latency/request_p50_s": 0.9,
        "cost/usd_per_1k_queries": 1.0,
        "cost/one_time_usd": 10.0,
        "co2/operational_kg_per_1k_queries": 0.3,
    },
}


def test_bottom_line_names_each_winner_and_both_sides_of_the_break_even():
    lines = bottom_line(HAND, {"break_even/A_vs_B_queries": 10_000.0})
    assert lines[0] == "Most accurate: B (0.700 contains-answer)"
    assert lines[1] == "Fastest: A (0.200 s request p50)"
    assert lines[2] == "Cheapest per query: B (1.000 USD per 1k queries)"
    assert lines[3] == "Lowest carbon: B (0.300 kg CO2e (operational) per 1k queries)"
    assert lines[4] == "Break-even A vs B: 10,000 queries; below it A is cheaper, above it B"
    assert any(line.startswith("QoE") for line in lines) and any(GAP in x for x in lines)


def test_bottom_line_says_tie_and_never_break_even():
    arms = {
        a: {"accuracy/contains": 0.0, "cost/usd_per_1k_queries": c} for a, c in [("x", 1), ("y", 2)]
    }
    arms["x"]["cost/one_time_usd"], arms["y"]["cost/one_time_usd"] = 0.0, 5.0
    lines = bottom_line(arms, {})
    assert lines[0] == "Most accurate: a tie, every arm at 0.000 contains-answer"
    assert "Break-even: none; x is cheapest up front and per query, at any traffic" in lines


def test_console_table_has_a_row_per_arm():
    text = arm_table_text(HAND).splitlines()
    assert text[0].split()[:3] == ["arm", "contains", "(95%"]
    assert [line.split()[0] for line in text[2:]] == ["A", "B"]


def test_pareto_front_by_hand():
    # (cost, accuracy): (1, .2) and (2, .5) and (4, .9) trade off; (3, .4) is beaten by (2, .5)
    points = [(3.0, 0.4), (1.0, 0.2), (4.0, 0.9), (2.0, 0.5), (5.0, 0.9)]
    assert pareto_front(points) == [(1.0, 0.2), (2.0, 0.5), (4.0, 0.9)]


def test_every_arm_keeps_its_colour_and_any_arm_name_gets_one():
    assert arm_colour("rag") == arm_colour("rag") != arm_colour("closed_book")
    assert arm_colour("an_arm_registered_later")  # an arm added to the registry later


def _many_runs() -> list[RunRecord]:
    """Three runs of four arms with costs spread over two orders of magnitude."""
    runs = []
    for r in range(3):
        arms = {}
        for i, arm in enumerate(["closed_book", "rag", "finetune", "finetune_rag"]):
            arms[arm] = {
                "accuracy/contains": 0.1 + 0.2 * i + 0.01 * r,
                "cost/usd_per_1k_queries": 0.00012 * (i + 1) * (r + 1),
                "co2/operational_kg_per_1k_queries": 1e-6 * (i + 1),
                "cost/one_time_usd": 0.001 * i,
                "latency/ttft_mean_s": 0.1 * (i + 1),
                "latency/e2e_mean_s": 0.3 * (i + 1),
            }
        runs.append(
            run(
                f"smoke-2026-12-03_20-0{r}-00",
                arms,
                metrics={"break_even/rag_vs_finetune_queries": 1500.0},
            )
        )
    return runs


@pytest.mark.parametrize("kind", ["usd", "co2"])
def test_pareto_plot_text_never_overlaps(kind):
    fig = pareto_figure(_many_runs(), kind)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    texts = fig.findobj(lambda a: isinstance(a, Text) and a.get_visible())
    boxes = [
        (t.get_text(), t.get_window_extent(renderer))
        for t in texts
        if t.get_text().strip() and t.get_window_extent(renderer).width > 0
    ]
    assert len(boxes) > 10  # title, axis labels, ticks, legend entries
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1 :]:
            assert not a.overlaps(b), f"{text_a!r} overlaps {text_b!r}"
    assert "1,000 queries" in fig.axes[0].get_xlabel()  # per 1k queries, as in the table


def test_report_html_is_self_contained_and_reused_runs_are_not_repeated(tmp_path):
    runs = _many_runs()
    again = run(
        "again",
        {a: dict(r.metrics) for a, r in runs[-1].arms.items()},
        tags={"reused_answers": "all"},
    )
    out = write_report([*runs, again], "t", tmp_path)
    page = (out / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "Bottom line" in page and "QoE" in page and "bootstrap interval" in page
    markdown = (out / "report.md").read_text()
    assert "Run again: reused" in markdown
    assert markdown.count("| closed_book |") == 3  # the three measured runs, not the repeat
    assert (out / "pareto_usd.pdf").read_bytes()[:4] == b"%PDF"


def test_report_module_imports_no_mlflow_of_its_own():
    code = "import sys, evaluate.report, evaluate.records.summary; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # mlflow is imported lazily, inside evaluate/records


def test_axis_scale_is_a_power_of_a_thousand_in_the_label():
    from evaluate.records.plots import scale_of

    assert scale_of([2e-6, 5e-6]) == (1e6, " (×10⁻⁶)")  # 5e-6 = 5 x 10^-6
    assert scale_of([0.02, 0.5]) == (1.0, "")  # already readable
    assert scale_of([1.2e4]) == (1e-3, " (×10³)")


def test_a_run_without_parameters_sweeps_nothing():
    runs = [run("a", MEASURED, {"retriever.top_k": "3"}), run("b", MEASURED, {})]
    assert swept_params(runs) == []
