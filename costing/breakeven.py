"""Break-even between every pair of arms: when does the up-front investment pay for itself?

Totals are one_time + n * per_query. For each pair the arm with the larger one-time cost is the
"investor" (typically fine-tuning, whose training outweighs RAG's index build); it is repaid once
its cheaper queries have saved the difference: n = (O_a - O_b) / (p_b - p_a). If its queries are
not cheaper it never is, and the summary says so in words.
"""

from __future__ import annotations

import itertools
from typing import Any

from costing.cost import Cost

_UNITS = {"usd": "USD", "co2_kg": "kg CO2e", "co2_operational_kg": "kg CO2e", "energy_kwh": "kWh"}
METRICS = tuple(_UNITS)


def pairwise_break_even(
    costs: dict[str, tuple[Cost, Cost]], metric: str, queries_per_day: float
) -> list[dict[str, Any]]:
    """One entry per unordered pair of arms; ``costs`` maps arm -> (one-time, per-query)."""
    return [
        break_even_pair(a, costs[a], b, costs[b], metric, queries_per_day)
        for a, b in itertools.combinations(costs, 2)
    ]


def break_even_pair(
    name_a: str,
    cost_a: tuple[Cost, Cost],
    name_b: str,
    cost_b: tuple[Cost, Cost],
    metric: str,
    queries_per_day: float,
) -> dict[str, Any]:
    unit = _UNITS[metric]
    entry: dict[str, Any] = {"arms": [name_a, name_b], "metric": metric}
    values = {}
    for name, (one_time, per_query) in ((name_a, cost_a), (name_b, cost_b)):
        o, p = getattr(one_time, metric), getattr(per_query, metric)
        if o is None or p is None:
            reason = (one_time if o is None else per_query).reason(metric)
            entry.update(
                investor=None,
                break_even_queries=None,
                break_even_days=None,
                verdict="unknown",
                summary=f"unknown: {metric} of {name} is unknown ({reason})",
            )
            return entry
        values[name] = (o, p)
    (a, (o_a, p_a)), (b, (o_b, p_b)) = sorted(values.items(), key=lambda kv: -kv[1][0])
    entry["investor"] = a
    entry["one_time"] = {a: o_a, b: o_b}
    entry["per_query"] = {a: p_a, b: p_b}
    if o_a == o_b and p_a == p_b:
        n, verdict = 0.0, "equal"
        summary = f"{a} and {b} cost the same up front and per query"
    elif o_a == o_b:
        cheap, dear = (a, b) if p_a < p_b else (b, a)
        n, verdict = 0.0, "immediately"
        summary = f"{cheap} is never dearer: same up-front cost, cheaper per query than {dear}"
    elif p_a < p_b:
        n = (o_a - o_b) / (p_b - p_a)
        verdict = "crossing"
        summary = (
            f"{a} repays its extra up-front {o_a - o_b:.4g} {unit} after {n:,.0f} queries"
            f"{_days(n, queries_per_day)}, saving {p_b - p_a:.4g} {unit} per query; "
            f"below that {b} is cheaper"
        )
    else:
        n, verdict = None, "never"
        summary = (
            f"never: {a} costs more up front ({o_a:.4g} vs {o_b:.4g} {unit}) and "
            f"{'the same' if p_a == p_b else 'more'} per query ({p_a:.4g} vs {p_b:.4g} {unit}), "
            f"so {b} stays cheaper at any traffic"
        )
    entry["break_even_queries"] = n
    entry["break_even_days"] = None if n is None or queries_per_day <= 0 else n / queries_per_day
    entry["verdict"] = verdict
    entry["summary"] = summary
    return entry


def _days(n: float, queries_per_day: float) -> str:
    if queries_per_day <= 0:
        return ""
    return f" ({n / queries_per_day:,.1f} days at {queries_per_day:,.0f} queries/day)"
