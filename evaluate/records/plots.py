"""Report plots (matplotlib, headless), sized and set for a paper: one colour per arm in every
plot, runs told apart by marker, legends instead of point labels, units as in the tables (per
1,000 queries). Each ``plot_*`` writes a PNG (and a PDF beside it) and returns the PNG path, or
None without data; each ``*_figure`` returns the open figure."""

from __future__ import annotations

import zlib
from pathlib import Path

from evaluate.records.tracking import RunRecord

# Okabe & Ito's colour-blind-safe palette ("Color Universal Design", 2008), yellow last as it
# reads poorly on white; arms beyond it take matplotlib's tab10 colours.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
FIGSIZE_IN = (6.4, 4.0)  # a single column at 100%, or two columns at about half width
DPI = 200
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
PARETO = {
    "usd": ("cost/usd_per_1k_queries", "USD per 1,000 queries", "Accuracy against cost"),
    "co2": (
        "co2/operational_kg_per_1k_queries",
        "kg CO2e (operational) per 1,000 queries",
        "Accuracy against carbon",
    ),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def arm_colour(arm: str) -> str:
    """The arm's colour, the same in every plot: registered arms by registry order, any other
    name by a stable hash of it."""
    from evaluate.arms.registry import ARM_NAMES

    if arm in ARM_NAMES:
        index = ARM_NAMES.index(arm)
    else:
        index = len(ARM_NAMES) + zlib.crc32(arm.encode()) % 10
    if index < len(PALETTE):
        return PALETTE[index]
    import matplotlib

    return matplotlib.colormaps["tab10"](index % 10)


def arm_order(arms) -> list[str]:
    """Arms in registry order, unregistered names after them alphabetically."""
    from evaluate.arms.registry import ARM_NAMES

    return sorted(set(arms), key=lambda a: (ARM_NAMES.index(a) if a in ARM_NAMES else 99, a))


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    _pyplot().close(fig)
    return path


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def scale_of(values: list[float]) -> tuple[float, str]:
    """A power of 1,000 that brings the values to between 0.01 and 1,000, and its label
    (``" (×10⁻⁶)"``), so tick labels stay short and the scale sits in the axis label, not in an
    offset text that can run into it."""
    import math

    largest = max((abs(v) for v in values), default=0.0)
    if largest == 0 or 1e-2 <= largest < 1e3:
        return 1.0, ""
    exponent = 3 * math.floor(math.log10(largest) / 3)
    return 10.0**-exponent, f" (×10{str(exponent).translate(SUPERSCRIPT)})"


def _readable_ticks(axis) -> None:
    """At most five ticks, plain numbers (the data are scaled by scale_of)."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    axis.set_major_locator(MaxNLocator(nbins=5))
    axis.set_major_formatter(formatter)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (lower x, higher y), by increasing x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _arm_legend(ax, arms: list[str], runs: list[str], extra=()) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=arm_colour(a), label=a) for a in arms]
    if len(runs) > 1:
        handles += [
            Line2D([], [], marker=MARKERS[i % len(MARKERS)], linestyle="", color="0.4", label=r)
            for i, r in enumerate(runs)
        ]
    handles += list(extra)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def pareto_figure(runs: list[RunRecord], kind: str):
    """Accuracy (contains) against USD or kg CO2e per 1,000 queries for every run x arm, with
    the Pareto front; None without data."""
    key, xlabel, title = PARETO[kind]
    points = []
    for index, run in enumerate(runs):
        for arm, arm_run in run.arms.items():
            x, y = arm_run.metrics.get(key), arm_run.metrics.get("accuracy/contains")
            if x is not None and y is not None:
                points.append((x, y, arm, index))
    if not points:
        return None
    factor, scale = scale_of([x for x, *_ in points])
    points = [(x * factor, y, arm, index) for x, y, arm, index in points]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    for x, y, arm, index in points:
        marker = MARKERS[index % len(MARKERS)]
        ax.scatter(x, y, s=45, marker=marker, color=arm_colour(arm), zorder=3)
    front = pareto_front([(x, y) for x, y, _, _ in points])
    extra = []
    if len(front) > 1:
        (line,) = ax.step(
            [p[0] for p in front],
            [p[1] for p in front],
            where="post",
            linestyle="--",
            color="0.5",
            zorder=2,
            label="Pareto front",
        )
        extra.append(line)
    else:  # one point dominates all others: it is the whole front
        (line,) = ax.plot(*front[0], marker="o", markersize=12, fillstyle="none", color="0.5")
        line.set_linestyle("")
        line.set_label("Pareto front")
        extra.append(line)
    ax.set_xlabel(xlabel + scale)
    ax.set_ylabel("accuracy (contains-answer)")
    ax.set_title(title)
    ax.set_ylim(-0.05, 1.05)
    _readable_ticks(ax.xaxis)
    runs_shown = sorted({index for *_, index in points})
    _arm_legend(
        ax,
        arm_order(a for _, _, a, _ in points),
        [runs[i].run_name for i in runs_shown],
        extra,
    )
    fig.tight_layout()
    return fig


def plot_pareto(runs: list[RunRecord], kind: str, out_dir: Path) -> Path | None:
    fig = pareto_figure(runs, kind)
    return None if fig is None else _save(fig, out_dir / f"pareto_{kind}.png")


def plot_latency_breakdown(run: RunRecord, out_dir: Path) -> Path | None:
    """Stacked mean latency per arm: retrieval, prefill (TTFT), decode (e2e - TTFT)."""
    rows = []
    for arm in arm_order(run.arms):
        m = run.arms[arm].metrics
        ttft, e2e = m.get("latency/ttft_mean_s"), m.get("latency/e2e_mean_s")
        if ttft is None or e2e is None:
            continue
        rows.append((arm, m.get("latency/retrieval_mean_s", 0.0), ttft, e2e - ttft))
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    names = [r[0] for r in rows]
    bottom = [0.0] * len(rows)
    parts = (("retrieval", "0.75"), ("prefill (TTFT)", "0.45"), ("decode", "0.2"))
    for index, (part, grey) in enumerate(parts):
        values = [r[index + 1] for r in rows]
        ax.bar(names, values, bottom=bottom, label=part, color=grey, edgecolor="white")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for tick, arm in zip(ax.get_xticklabels(), names, strict=True):
        tick.set_color(arm_colour(arm))
    ax.set_ylabel("seconds per request (mean)")
    ax.set_title("Latency breakdown")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, out_dir / "latency_breakdown.png")


def plot_break_even(run: RunRecord, out_dir: Path) -> Path | None:
    """Cumulative USD against thousands of queries: one-time cost + n x cost per 1k queries,
    with the crossings marked."""
    lines = []
    for arm in arm_order(run.arms):
        m = run.arms[arm].metrics
        once, per_1k = m.get("cost/one_time_usd"), m.get("cost/usd_per_1k_queries")
        if once is not None and per_1k is not None:
            lines.append((arm, once, per_1k))
    if not lines:
        return None
    crossings = [
        v / 1000.0 for k, v in run.metrics.items() if k.startswith("break_even/") and v > 0
    ]
    horizon_k = max([1.0] + [2.0 * c for c in crossings])
    ends = [once + per_1k * horizon_k for _, once, per_1k in lines]
    factor, scale = scale_of(ends + [once for _, once, _ in lines])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    for (arm, once, _), end in zip(lines, ends, strict=True):
        ax.plot([0, horizon_k], [once * factor, end * factor], color=arm_colour(arm), label=arm)
    for k in crossings:
        ax.axvline(k, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("thousands of queries")
    ax.set_ylabel("cumulative USD" + scale)
    ax.set_title("Break-even (dotted: crossings)")
    _readable_ticks(ax.yaxis)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, out_dir / "break_even.png")


def _number_or_text(value: str):
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def plot_sweep(runs: list[RunRecord], param: str, out_dir: Path) -> Path | None:
    """Each arm's accuracy against one swept parameter (numeric or categorical)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    plotted = False
    for arm in arm_order(a for r in runs for a in r.arms):
        pairs = [
            (r.params.get(param), r.arms[arm].metrics.get("accuracy/contains"))
            for r in runs
            if arm in r.arms
        ]
        pairs = sorted(
            ((_number_or_text(x), y) for x, y in pairs if x is not None and y is not None),
            key=lambda p: p[0],
        )
        if pairs:
            ax.plot(
                [str(p[0][1]) for p in pairs],
                [p[1] for p in pairs],
                marker="o",
                color=arm_colour(arm),
                label=arm,
            )
            plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy (contains-answer)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    safe = "".join(c if c.isalnum() else "_" for c in param)
    return _save(fig, out_dir / f"sweep_{safe}.png")


def plot_self_hosted_vs_api(run: RunRecord, out_dir: Path) -> Path | None:
    """USD per day against queries/day: each arm self-hosted (a step per replica) and each API
    model (a line), from the ``tokenomics/<arm>/<api>/...`` metrics; None without them."""
    import math

    keys = [
        k for k in run.metrics if k.startswith("tokenomics/") and k.endswith("/replica_day_usd")
    ]
    if not keys:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = [10 ** (i / 10) for i in range(10, 81)]  # 10 to 1e8 queries/day
    arms_drawn, apis_drawn = set(), set()
    for key in sorted(keys):
        _, arm, api, _ = key.split("/")
        day = run.metrics[key]
        capacity = run.metrics.get(f"tokenomics/{arm}/{api}/capacity_queries_per_day")
        per_query = run.metrics.get(f"tokenomics/{arm}/{api}/api_usd_per_query")
        if capacity and arm not in arms_drawn:
            ax.plot(
                xs, [day * max(1, math.ceil(x / capacity)) for x in xs], label=f"{arm} self-hosted"
            )
            arms_drawn.add(arm)
        if per_query is not None and api not in apis_drawn:
            ax.plot(xs, [x * per_query for x in xs], linestyle="--", label=f"{api} API")
            apis_drawn.add(api)
    ax.set(xscale="log", yscale="log", xlabel="queries per day", ylabel="USD per day")
    ax.set_title("Self-hosted versus API")
    ax.legend(fontsize=7)
    return _save(fig, out_dir / "self_hosted_vs_api.png")


def plot_cascade(run: RunRecord, out_dir: Path, arm: str = "cascade") -> Path | None:
    """The cascade's threshold sweep (metrics ``<arm>/sweep/NN/...``): accuracy against USD and
    kg CO2e per 1,000 queries and p95 latency, from edge-only (square) to cloud-only (triangle)."""
    points = []
    for i in range(1000):
        prefix = f"{arm}/sweep/{i:02d}"
        if f"{prefix}/accuracy" not in run.metrics:
            break
        points.append(
            {k.rsplit("/", 1)[1]: v for k, v in run.metrics.items() if k.startswith(prefix + "/")}
        )
    if not points:
        return None
    co2 = "co2_kg_per_1k_queries"
    if not any(co2 in p for p in points):  # no embodied figure for the device: operational only
        co2 = "co2_operational_kg_per_1k_queries"
    panels = [
        ("usd_per_1k_queries", "USD per 1,000 queries (measured)"),
        (
            co2,
            "kg CO2e per 1,000 queries (measured"
            + (")" if "operational" not in co2 else ", operational)"),
        ),
        ("latency_p95_s", "p95 latency, s (measured; round trip modelled)"),
    ]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4), sharey=True)
    for ax, (key, label) in zip(axes, panels, strict=True):
        shown = [p for p in points if key in p]
        ax.plot([p[key] for p in shown], [p["accuracy"] for p in shown], marker=".", color="C0")
        for p in shown:
            end = p.get("end_point")
            if end in (0.0, 1.0):
                marker, name = ("s", "edge only") if end == 0.0 else ("^", "cloud only")
                ax.scatter(p[key], p["accuracy"], marker=marker, s=60, color="C3", zorder=3)
                ax.annotate(
                    name,
                    (p[key], p["accuracy"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
        ax.set_xlabel(label)
    axes[0].set_ylabel("accuracy (contains)")
    fig.suptitle(f"{arm}: accuracy against cost and latency over the escalation threshold")
    return _save(fig, out_dir / f"{arm}_sweep.png")
