"""Report plots (matplotlib, headless). Each returns the PNG path, or None without data."""

from __future__ import annotations

from pathlib import Path

from evaluate.records.tracking import RunRecord


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _arms(run: RunRecord) -> list[str]:
    return run.tags.get("arms", "").split(",") if run.tags.get("arms") else []


def plot_pareto(runs: list[RunRecord], kind: str, out_dir: Path) -> Path | None:
    """Accuracy against USD (kind='usd') or kg CO2e (kind='co2') per query, every run x arm."""
    key = "usd_per_1k_queries" if kind == "usd" else "co2_kg_per_1k_queries"
    points = []
    for run in runs:
        for arm in _arms(run):
            x, y = run.metrics.get(f"cost/{arm}/{key}"), run.metrics.get(f"{arm}/contains")
            if x is not None and y is not None:
                label = arm if len(runs) == 1 else f"{arm} ({run.run_name})"
                points.append((x / 1000.0, y, label))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for x, y, label in points:
        ax.scatter(x, y)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("USD per query" if kind == "usd" else "kg CO2e per query")
    ax.set_ylabel("accuracy (contains)")
    ax.set_title("accuracy vs cost" if kind == "usd" else "accuracy vs carbon")
    return _save(fig, out_dir / f"pareto_{kind}.png")


def plot_latency_breakdown(run: RunRecord, arms: list[str], out_dir: Path) -> Path | None:
    """Stacked mean latency per arm: retrieval, prefill (TTFT), decode (e2e - TTFT)."""
    rows = []
    for arm in arms:
        m = run.metrics
        ttft, e2e = m.get(f"latency/{arm}/ttft_mean_s"), m.get(f"latency/{arm}/e2e_mean_s")
        if ttft is None or e2e is None:
            continue
        rows.append((arm, m.get(f"latency/{arm}/retrieval_mean_s", 0.0), ttft, e2e - ttft))
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [r[0] for r in rows]
    bottom = [0.0] * len(rows)
    for index, part in enumerate(("retrieval", "prefill (TTFT)", "decode")):
        values = [r[index + 1] for r in rows]
        ax.bar(names, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("seconds per request (mean)")
    ax.set_title(f"latency breakdown ({run.run_name})")
    ax.legend()
    return _save(fig, out_dir / "latency_breakdown.png")


def plot_break_even(run: RunRecord, arms: list[str], out_dir: Path) -> Path | None:
    """Cumulative USD against the number of queries: one-time cost + n x per-query cost."""
    lines = []
    for arm in arms:
        once = run.metrics.get(f"cost/{arm}/one_time_usd")
        per_1k = run.metrics.get(f"cost/{arm}/usd_per_1k_queries")
        if once is not None and per_1k is not None:
            lines.append((arm, once, per_1k / 1000.0))
    if not lines:
        return None
    crossings = [v for k, v in run.metrics.items() if k.startswith("break_even/usd/")]
    horizon = max([1000.0] + [2.0 * c for c in crossings if c > 0])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, once, per_query in lines:
        ax.plot([0, horizon], [once, once + per_query * horizon], label=arm)
    ax.set_xlabel("queries")
    ax.set_ylabel("cumulative USD")
    ax.set_title("break-even")
    ax.legend()
    return _save(fig, out_dir / "break_even.png")


def _number_or_text(value: str):
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def plot_sweep(runs: list[RunRecord], param: str, out_dir: Path) -> Path | None:
    """Each arm's accuracy against one swept parameter (numeric or categorical)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    plotted = False
    for arm in sorted({a for r in runs for a in _arms(r)}):
        pairs = [(r.params.get(param), r.metrics.get(f"{arm}/contains")) for r in runs]
        pairs = sorted(
            ((_number_or_text(x), y) for x, y in pairs if x is not None and y is not None),
            key=lambda p: p[0],
        )
        if pairs:
            ax.plot([str(p[0][1]) for p in pairs], [p[1] for p in pairs], marker="o", label=arm)
            plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy (contains)")
    ax.legend()
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
