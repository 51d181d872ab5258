"""Who wins: the per-arm summary table and its bottom line, from each arm's curated metrics
(evaluate/records/results.py ``arm_run_metrics``). One implementation for the console summary,
the job run's description in MLflow and ``ragtune-report``."""

from __future__ import annotations

from collections.abc import Mapping

from evaluate.records.tables import markdown_table

GAP = "–"  # shown where an arm or run lacks the figure
ArmMetrics = Mapping[str, Mapping[str, float]]  # arm -> curated metric name -> value

# header, metric name; accuracy comes first with its interval (accuracy_cell)
SUMMARY_COLUMNS: list[tuple[str, str]] = [
    ("contains (95% CI)", "accuracy/contains"),
    ("exact match", "accuracy/exact_match"),
    ("TTFT p50 s", "latency/ttft_p50_s"),
    ("TPOT p50 s", "latency/tpot_p50_s"),
    ("request p50 s", "latency/request_p50_s"),
    ("USD / 1k queries", "cost/usd_per_1k_queries"),
    ("kg CO2e / 1k queries (operational)", "co2/operational_kg_per_1k_queries"),
    ("one-time USD", "cost/one_time_usd"),
    ("QoE", "qoe/score"),
    ("failed", "eval/failures"),
]
EXPLANATIONS = [
    "QoE (0 to 1) scores only how long the user waits for the first token and whether tokens "
    "arrive faster than reading speed; it ignores correctness, so a QoE of 1.000 with accuracy "
    "0 is a fast wrong answer.",
    f"{GAP} marks a figure the run did not produce (no retrieval in an arm without it, no cost "
    "when costing failed, nothing for a failed run).",
]


def fmt(value: float | None, digits: int = 3) -> str:
    """Fixed decimals, or significant digits for small magnitudes; GAP for a missing value."""
    if value is None:
        return GAP
    if value != 0 and abs(value) < 10 ** (-digits + 1):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def accuracy_cell(metrics: Mapping[str, float], name: str = "accuracy/contains") -> str:
    value = metrics.get(name)
    if value is None:
        return GAP
    low, high = metrics.get(f"{name}_ci95_low"), metrics.get(f"{name}_ci95_high")
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{value:.3f}{interval}"


def summary_header() -> list[str]:
    return ["arm"] + [header for header, _ in SUMMARY_COLUMNS]


def summary_rows(arms: ArmMetrics) -> list[list[str]]:
    rows = []
    for arm, metrics in arms.items():
        row = [arm, accuracy_cell(metrics)]
        for _, name in SUMMARY_COLUMNS[1:]:
            value = metrics.get(name)
            whole = name == "eval/failures" and value is not None
            row.append(f"{value:.0f}" if whole else fmt(value))
        rows.append(row)
    return rows


def arm_table_markdown(arms: ArmMetrics) -> str:
    return markdown_table(summary_header(), summary_rows(arms))


def arm_table_text(arms: ArmMetrics) -> str:
    """The summary as aligned plain text, for a terminal."""
    table = [summary_header(), *summary_rows(arms)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _best(arms: ArmMetrics, name: str, lowest: bool) -> tuple[list[str], float] | None:
    values = {arm: m[name] for arm, m in arms.items() if m.get(name) is not None}
    if not values:
        return None
    best = min(values.values()) if lowest else max(values.values())
    return [arm for arm, v in values.items() if v == best], best


def _winner(arms: ArmMetrics, label: str, name: str, lowest: bool, unit: str) -> str:
    found = _best(arms, name, lowest)
    if found is None:
        return f"{label}: {GAP} (no arm has {name})"
    winners, value = found
    if len(winners) == len(arms) and len(arms) > 1:
        return f"{label}: a tie, every arm at {fmt(value)}{unit}"
    who = winners[0] if len(winners) == 1 else "a tie between " + ", ".join(winners)
    return f"{label}: {who} ({fmt(value)}{unit})"


def bottom_line(arms: ArmMetrics, job_metrics: Mapping[str, float]) -> list[str]:
    """One line per question: who wins accuracy, latency, cost and CO2; where break-even lies and
    who is cheaper on each side; then what QoE and the gap mark mean."""
    lines = [
        _winner(arms, "Most accurate", "accuracy/contains", False, " contains-answer"),
        _winner(arms, "Fastest", "latency/request_p50_s", True, " s request p50"),
        _winner(arms, "Cheapest per query", "cost/usd_per_1k_queries", True, " USD per 1k queries"),
        _winner(
            arms,
            "Lowest carbon",
            "co2/operational_kg_per_1k_queries",
            True,
            " kg CO2e (operational) per 1k queries",
        ),
    ]
    crossings = 0
    for key, queries in sorted(job_metrics.items()):
        if not (key.startswith("break_even/") and key.endswith("_queries")):
            continue
        pair = key.removeprefix("break_even/").removesuffix("_queries")
        a, _, b = pair.partition("_vs_")
        if a not in arms or b not in arms:
            continue
        once = {arm: arms[arm].get("cost/one_time_usd") for arm in (a, b)}
        per_1k = {arm: arms[arm].get("cost/usd_per_1k_queries") for arm in (a, b)}
        if None in once.values() or None in per_1k.values():
            continue
        below = min((a, b), key=lambda arm: (once[arm], per_1k[arm]))
        above = min((a, b), key=lambda arm: (per_1k[arm], once[arm]))
        lines.append(
            f"Break-even {a} vs {b}: {queries:,.0f} queries; below it {below} is cheaper, "
            f"above it {above}"
        )
        crossings += 1
    if not crossings:
        cheapest = _best(arms, "cost/usd_per_1k_queries", True)
        if cheapest and len(cheapest[0]) == 1:
            arm = cheapest[0][0]
            upfront = _best(arms, "cost/one_time_usd", True)
            if upfront and arm in upfront[0]:
                lines.append(
                    f"Break-even: none; {arm} is cheapest up front and per query, at any traffic"
                )
            else:
                lines.append("Break-even: none within the arms' cost lines")
    return lines + EXPLANATIONS
