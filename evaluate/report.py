"""``ragtune-report``: read runs back from MLflow and write paper-style tables and plots.

    ragtune-report --experiment default                 # every run of an experiment
    ragtune-report --runs RUN_ID [RUN_ID ...]           # chosen runs
    ragtune-report --parent PARENT_RUN_ID               # a sweep's children

Writes report.md, report.html and PNG plots to --out (default reports/<name>/) and attaches them
to the newest run read (or the parent run) under the artifact folder ``report/``. Runs that lack
a metric (older or failed runs) show a gap mark instead of a number.
"""

from __future__ import annotations

import argparse
import html
import logging
import sys
from pathlib import Path

from evaluate.records.plots import (
    plot_break_even,
    plot_cascade,
    plot_latency_breakdown,
    plot_pareto,
    plot_self_hosted_vs_api,
    plot_sweep,
)
from evaluate.records.tables import html_table, markdown_table
from evaluate.records.tracking import RunRecord, TrackingReadError, fetch_runs, log_folder

logger = logging.getLogger(__name__)
GAP = "–"  # shown where a run lacks the metric


def arms_of(run: RunRecord) -> list[str]:
    if run.tags.get("arms"):
        return run.tags["arms"].split(",")
    return sorted({k.split("/")[0] for k in run.metrics if k.endswith("/exact_match")})


def fmt(value: float | None, digits: int = 3) -> str:
    return (
        GAP
        if value is None
        else f"{value:.{digits}g}"
        if abs(value) < 1e-3
        else (f"{value:.{digits}f}")
    )


def accuracy_cell(run: RunRecord, arm: str, metric: str = "contains") -> str:
    m = run.metrics
    value = m.get(f"{arm}/{metric}")
    low, high = m.get(f"{arm}/{metric}_ci95_low"), m.get(f"{arm}/{metric}_ci95_high")
    if value is None:
        return GAP
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{value:.3f}{interval}"


COLUMNS = [
    ("arm", None),
    ("contains (95% CI)", None),
    ("exact match", "{arm}/exact_match"),
    ("TTFT p50 s", "latency/{arm}/ttft_p50_s"),
    ("TPOT p50 s", "latency/{arm}/tpot_p50_s"),
    ("request p50 s", "latency/{arm}/request_p50_s"),
    ("USD / 1k queries", "cost/{arm}/usd_per_1k_queries"),
    ("kg CO2e / 1k queries", "cost/{arm}/co2_kg_per_1k_queries"),
    ("one-time USD", "cost/{arm}/one_time_usd"),
    ("QoE score", "qoe/{arm}/qoe_score"),
    ("failed questions", "{arm}/failures"),
]


def comparison_rows(run: RunRecord) -> list[list[str]]:
    rows = []
    for arm in arms_of(run):
        row = [arm, accuracy_cell(run, arm)]
        row += [fmt(run.metrics.get(key.format(arm=arm))) for _, key in COLUMNS[2:]]
        rows.append(row)
    return rows


def break_even_rows(run: RunRecord) -> list[list[str]]:
    arms = arms_of(run)
    rows = []
    for a in arms:
        for b in arms:
            if a < b:
                n = run.metrics.get(f"break_even/usd/{a}_vs_{b}_queries")
                n = n if n is not None else run.metrics.get(f"break_even/usd/{b}_vs_{a}_queries")
                verdict = run.tags.get(f"compare/{a}_vs_{b}/verdict") or run.tags.get(
                    f"compare/{b}_vs_{a}/verdict", GAP
                )
                rows.append([f"{a} vs {b}", GAP if n is None else f"{n:,.0f}", verdict])
    return rows


def self_hosted_vs_api_rows(run: RunRecord) -> list[list[str]]:
    """Per arm and API model: crossing points in queries/day (USD, CO2e), from the metrics."""
    rows = []
    for key in sorted(run.metrics):
        if key.startswith("tokenomics/") and key.endswith("/replica_day_usd"):
            prefix = key.rsplit("/", 1)[0]
            _, arm, api = prefix.split("/")
            rows.append(
                [
                    arm,
                    api,
                    fmt(run.metrics[key]),
                    fmt(run.metrics.get(f"{prefix}/api_usd_per_query")),
                    fmt(run.metrics.get(f"{prefix}/crossing_usd_queries_per_day")),
                    fmt(run.metrics.get(f"{prefix}/crossing_co2_queries_per_day")),
                ]
            )
    return rows


def swept_params(runs: list[RunRecord]) -> list[str]:
    """Config keys whose value differs between runs (paths and names excluded)."""
    keys = set().union(*(r.params for r in runs)) if runs else set()
    ignore = ("paths.", "tracking.", "experiment.")
    return sorted(
        k for k in keys if not k.startswith(ignore) and len({r.params.get(k) for r in runs}) > 1
    )


def write_report(runs: list[RunRecord], title: str, out_dir: Path) -> Path:
    """Write report.md, report.html and the plots; returns the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    latest = runs[-1]
    plots = [
        plot_pareto(runs, "usd", out_dir),
        plot_pareto(runs, "co2", out_dir),
        plot_latency_breakdown(latest, arms_of(latest), out_dir),
        plot_break_even(latest, arms_of(latest), out_dir),
        plot_self_hosted_vs_api(latest, out_dir),
        plot_cascade(latest, out_dir),
    ]
    swept = swept_params(runs)
    plots += [plot_sweep(runs, key, out_dir) for key in swept]
    plots = [p for p in plots if p is not None]
    sections: list[tuple[str, list[str], list[list[str]]]] = []
    for run in runs:
        status = "" if run.status == "FINISHED" else f" ({run.status})"
        sections.append(
            (f"Run {run.run_name}{status}", [c for c, _ in COLUMNS], comparison_rows(run))
        )
    sections.append(
        (
            f"Break-even and significance (run {latest.run_name})",
            ["pair", "break-even queries (USD)", "verdict"],
            break_even_rows(latest),
        )
    )
    tokenomics = self_hosted_vs_api_rows(latest)
    if tokenomics:
        header = ["arm", "API", "USD per replica-day", "API USD per query"]
        header += ["crossing queries/day (USD)", "crossing queries/day (CO2e)"]
        sections.append((f"Self-hosted versus API (run {latest.run_name})", header, tokenomics))
    md = [
        f"# {title}",
        "",
        f"{len(runs)} run(s). Accuracy is contains-answer with its 95% "
        "bootstrap interval; latencies are medians; costs are on the measuring hardware.",
        "",
    ]
    page = [f"<h1>{html.escape(title)}</h1>"]
    for heading, header, rows in sections:
        md += [f"## {heading}", "", markdown_table(header, rows), ""]
        page += [f"<h2>{html.escape(heading)}</h2>", html_table(header, rows)]
    if swept:
        md += ["Swept parameters: " + ", ".join(f"`{k}`" for k in swept), ""]
    for plot in plots:
        md += [f"![{plot.stem}]({plot.name})", ""]
        page.append(f'<p><img src="{html.escape(plot.name)}" alt="{html.escape(plot.stem)}"></p>')
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")
    style = "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}</style>"
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>"
        + "\n".join(page)
        + "</body></html>",
        encoding="utf-8",
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ragtune-report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--experiment", help="an MLflow experiment name (experiment.name)")
    chosen.add_argument("--runs", nargs="+", help="run ids")
    chosen.add_argument("--parent", help="a sweep's parent run id")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--out", type=Path, default=None, help="default: reports/<name>")
    parser.add_argument("--no-log", action="store_true", help="do not attach to MLflow")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        runs = fetch_runs(args.tracking_uri, args.experiment, args.runs, args.parent)
    except TrackingReadError as err:
        print(f"ragtune-report: error: {err}", file=sys.stderr)
        return 2
    if not runs:
        print("ragtune-report: error: no runs to report", file=sys.stderr)
        return 2
    name = args.experiment or args.parent or runs[-1].run_name
    out_dir = write_report(runs, f"ragtune report: {name}", args.out or Path("reports") / name)
    if not args.no_log:
        log_folder(args.tracking_uri, args.parent or runs[-1].run_id, out_dir, "report")
    print(f"report: {out_dir / 'report.md'} (and report.html, {len(runs)} run(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
