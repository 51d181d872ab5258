"""``ragtune-report``: read runs back from MLflow and write paper-style tables and plots.

    ragtune-report --experiment default                 # every run of an experiment
    ragtune-report --runs RUN_ID [RUN_ID ...]           # chosen runs
    ragtune-report --parent PARENT_RUN_ID               # a sweep's children

Writes report.md, report.html (its images embedded) and PNG and PDF plots to --out (default
reports/<name>/ in the current folder) and attaches them to the newest run read (or the parent
run) under the artifact folder ``report/``. Runs that lack a metric (older or failed runs) show a
gap mark instead of a number.
"""

from __future__ import annotations

import argparse
import base64
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
from evaluate.records.summary import GAP, bottom_line, fmt, summary_header, summary_rows
from evaluate.records.tables import html_table, markdown_table
from evaluate.records.tracking import (
    REUSED_TAG,
    RunRecord,
    TrackingReadError,
    fetch_runs,
    log_folder,
)

logger = logging.getLogger(__name__)
INTRO = (
    "Accuracy is the share of answers containing a gold answer (contains-answer), with its 95% "
    "bootstrap interval; latencies are medians (p50); costs and CO2e are per 1,000 queries on the "
    "measuring hardware; one-time cost is indexing and training."
)


def arm_metrics(run: RunRecord) -> dict[str, dict[str, float]]:
    return {arm: dict(arm_run.metrics) for arm, arm_run in run.arms.items()}


def comparison_rows(run: RunRecord) -> list[list[str]]:
    """The run's per-arm summary rows; a run without arm runs (failed, older) is one gap row."""
    if not run.arms:
        return [[GAP] * len(summary_header())]
    from evaluate.records.plots import arm_order

    arms = arm_metrics(run)
    return summary_rows({arm: arms[arm] for arm in arm_order(arms)})


def break_even_rows(run: RunRecord) -> list[list[str]]:
    arms = sorted(run.arms)
    rows = []
    for a in arms:
        for b in arms:
            if a < b:
                n = run.metrics.get(f"break_even/{a}_vs_{b}_queries")
                n = n if n is not None else run.metrics.get(f"break_even/{b}_vs_{a}_queries")
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
    """Config keys whose value differs between the measured runs (paths and names excluded).
    Only runs with arm results count: a run killed or failed before answering has parameters
    but no figures, and would otherwise make a one-point "sweep" of whatever it changed."""
    runs = [r for r in runs if r.params and r.arms]
    keys = set().union(*(r.params for r in runs)) if runs else set()
    ignore = ("paths.", "tracking.", "experiment.")
    return sorted(
        k for k in keys if not k.startswith(ignore) and len({r.params.get(k) for r in runs}) > 1
    )


def run_heading(run: RunRecord, swept: list[str]) -> str:
    """``Run NAME (key=value, ...)`` with the run's values of the swept keys, and its status
    when it did not finish."""
    values = ", ".join(f"{k}={run.params[k]}" for k in swept if k in run.params)
    status = "" if run.status == "FINISHED" else run.status
    details = "; ".join(x for x in (values, status) if x)
    return f"Run {run.run_name}" + (f" ({details})" if details else "")


def repeats(run: RunRecord, earlier: list[RunRecord]) -> RunRecord | None:
    """The earlier run whose figures this one repeats: it reused every answer of it."""
    if run.tags.get(REUSED_TAG) != "all":
        return None
    for other in reversed(earlier):
        if other.arms and arm_metrics(other) == arm_metrics(run):
            return other
    return None


def embedded(plot: Path) -> str:
    """An <img> carrying its PNG inline, so the page renders anywhere (MLflow's artifact viewer
    shows report.html without its sibling files)."""
    data = base64.b64encode(plot.read_bytes()).decode("ascii")
    alt = html.escape(plot.stem.replace("_", " "))
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"></figure>'


STYLE = (
    "<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:1rem auto;"
    "padding:0 1rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;font-variant-numeric:"
    "tabular-nums}td:first-child,th:first-child{text-align:left}figure{margin:1rem 0}"
    "img{max-width:100%;height:auto}</style>"
)


def write_report(runs: list[RunRecord], title: str, out_dir: Path) -> Path:
    """Write report.md, report.html (images embedded) and the plots; returns the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    measured = [r for r in runs if r.arms] or runs
    latest = measured[-1]
    plots = [
        plot_pareto(runs, "usd", out_dir),
        plot_pareto(runs, "co2", out_dir),
        plot_latency_breakdown(latest, out_dir),
        plot_break_even(latest, out_dir),
        plot_self_hosted_vs_api(latest, out_dir),
        plot_cascade(latest, out_dir),
    ]
    swept = swept_params(runs)
    plots += [plot_sweep([r for r in runs if r.arms], key, out_dir) for key in swept]
    plots = [p for p in plots if p is not None]
    md = [f"# {title}", "", f"{len(runs)} run(s). {INTRO}", ""]
    page = [f"<h1>{html.escape(title)}</h1>", f"<p>{len(runs)} run(s). {html.escape(INTRO)}</p>"]
    if latest.arms:
        lines = bottom_line(arm_metrics(latest), latest.metrics)
        md += [f"## Bottom line (run {latest.run_name})", "", *(f"- {x}" for x in lines), ""]
        page += [
            f"<h2>Bottom line (run {html.escape(latest.run_name)})</h2>",
            "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>",
        ]
    sections: list[tuple[str, list[str], list[list[str]] | str]] = []
    for index, run in enumerate(runs):
        heading = run_heading(run, swept)
        same = repeats(run, runs[:index])
        if same is not None:  # no second, identical table
            note = (
                f"Every answer was reused from an earlier run: the figures are those of run "
                f"{same.run_name}, not a new measurement."
            )
            sections.append((f"{heading}: reused", [], note))
        elif not run.arms and run.status == "RUNNING":
            note = "Still running: no arm is recorded yet; run ragtune-report again when it ends."
            sections.append((heading, [], note))
        elif not run.arms:  # killed or failed before any arm was measured: no row of gaps
            note = "No arm was measured: the run ended before answering (killed or failed)."
            sections.append((heading, [], note))
        else:
            sections.append((heading, summary_header(), comparison_rows(run)))
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
    for heading, header, rows in sections:
        md += [f"## {heading}", ""]
        page.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(rows, str):
            md += [rows, ""]
            page.append(f"<p>{html.escape(rows)}</p>")
        else:
            md += [markdown_table(header, rows), ""]
            page.append(html_table(header, rows))
    if swept:
        md += ["Swept parameters: " + ", ".join(f"`{k}`" for k in swept), ""]
        page.append("<p>Swept parameters: " + html.escape(", ".join(swept)) + "</p>")
    for plot in plots:
        md += [f"![{plot.stem}]({plot.name})", ""]
        page.append(embedded(plot))
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{STYLE}</head><body>" + "\n".join(page) + "</body></html>",
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
