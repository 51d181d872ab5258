"""Targets, checks against them, and the JSON and Markdown the suite writes.

A part returns a :class:`PartResult`: its settings, the :class:`Check` rows that compare a
measured value with a target (met or missed, and by how much), free-form details and notes.
A part that raised keeps its error text instead of its checks, so one failure loses nothing else.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evaluate.records import tables
from rag.core.cache import atomic_write_text
from rag.core.machine import cpu_flags, cpu_model, isa, torch_threads

OPERATORS = ("<=", ">=")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Check:
    """``measured`` compared with ``target`` by ``op`` (``<=``: at most, ``>=``: at least)."""

    metric: str
    measured: float
    target: float
    op: str
    unit: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"check {self.metric!r}: op must be one of {OPERATORS}, got {self.op}")

    @property
    def met(self) -> bool | None:
        """None when nothing was measured (NaN)."""
        if not math.isfinite(self.measured):
            return None
        return self.measured <= self.target if self.op == "<=" else self.measured >= self.target

    @property
    def margin(self) -> str:
        """'met, 12% under target' or 'missed by 0.35 s (+12%)'."""
        if self.met is None:
            return "not measured"
        gap = self.measured - self.target
        relative = gap / self.target if self.target else math.inf
        if self.met:
            side = "under" if self.op == "<=" else "over"
            return f"met, {abs(relative):.0%} {side} target"
        return f"missed by {format_value(abs(gap), self.unit)} ({relative:+.0%})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met, "margin": self.margin}


@dataclass
class PartResult:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    measured_utc: str = ""
    load_avg_1min: list[float] = field(default_factory=list)  # before and after: other load

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        return data


def format_value(value: float | None, unit: str = "") -> str:
    """Four significant figures with the unit (so a recall of 0.9498 never shows as 0.95);
    ratios with three, as '1.02x'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit == "x":
        return f"{value:.3g}x"
    if unit == "%":
        return f"{value:.1%}"
    text = f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def check_line(check: dict[str, Any]) -> str:
    return (
        f"{check['metric']}: {format_value(check['measured'], check['unit'])} "
        f"(target {check['op']} {format_value(check['target'], check['unit'])}) "
        f"-> {check['margin']}"
    )


# Environment variables that choose threads or the instruction set a library dispatches to.
# ATEN_CPU_CAPABILITY caps PyTorch's kernels (default, avx2, avx512); MKL_ENABLE_INSTRUCTIONS and
# ONEDNN_MAX_CPU_ISA cap MKL's and oneDNN's, OPENBLAS_CORETYPE=Haswell numpy's OpenBLAS (the
# decoder's products): setting all four to AVX2 emulates an AVX2-only CPU on an AVX-512 one
# (README "Benchmarks").
THREAD_AND_ISA_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "OPENBLAS_CORETYPE",
)


def thread_settings() -> dict[str, Any]:
    """Threads each library will use in this process, and the environment that set them."""
    info: dict[str, Any] = {
        "usable_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "env": {name: os.environ.get(name) for name in THREAD_AND_ISA_ENV},
    }
    try:
        import torch

        info.update(torch_threads())
        info["torch_mkl"] = torch.backends.mkl.is_available()
        info["torch_mkldnn"] = torch.backends.mkldnn.is_available()
    except ImportError:
        pass
    try:
        import faiss

        info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        pass
    try:  # every BLAS loaded (numpy's, and scipy's or faiss's own copies once imported): its
        # kernels (e.g. SkylakeX, Haswell, Zen) and threads
        import numpy  # noqa: F401  (loads the BLAS threadpoolctl reports)
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
            for pool in threadpool_info()
            if pool.get("user_api") == "blas"
        ]
    except ImportError:
        pass
    return info


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, instruction sets, cores, thread settings,
    the 1-minute load average (others' work on a shared machine) and library versions."""
    from importlib import metadata

    versions = {}
    for name in ("torch", "transformers", "sentence-transformers", "peft", "faiss-cpu", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
        "isa": isa(cpu_flags()),
        "threads": thread_settings(),
        "load_avg_1min": os.getloadavg()[0],
    }


def merge_results(previous: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """Parts measured now replace their earlier entry; parts not run keep their last numbers
    (each part records when and with which settings it was measured)."""
    parts = dict((previous or {}).get("parts", {}))
    parts.update(run["parts"])
    order = [p for p in PART_ORDER if p in parts] + [p for p in parts if p not in PART_ORDER]
    return {**run, "parts": {name: parts[name] for name in order}}


PART_ORDER = ("setup", "e2e", "overhead", "roofline", "compute", "index", "ingest", "bigfile")


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{results.get('command', '')}`  ",
        f"Machine: {_machine_line(results.get('machine', {}))}",
        "",
        "| part | metric | target | measured | result |",
        "|---|---|---|---|---|",
    ]
    for name, part in results["parts"].items():
        if part.get("error"):
            lines.append(
                f"| {name} | (failed) | | | {tables.cell(part['error'].splitlines()[-1])} |"
            )
        for check in part.get("checks", []):
            lines.append(
                f"| {name} | {check['metric']} | {check['op']} "
                f"{format_value(check['target'], check['unit'])} | "
                f"{format_value(check['measured'], check['unit'])} | {check['margin']} |"
            )
    for name, part in results["parts"].items():
        lines += ["", f"## {name}", ""]
        settings = ", ".join(f"{k}={v}" for k, v in part.get("settings", {}).items())
        lines.append(
            f"Measured {part.get('measured_utc', '?')} in {part.get('seconds', 0):.0f} s by "
            f"`{part.get('command', '?')}`; settings: {settings or 'defaults'}; "
            f"1-min load average before/after: {_loads(part.get('load_avg_1min', []))}."
        )
        if part.get("error"):
            lines += ["", "**Failed:**", "", "```", part["error"].strip()[-2000:], "```"]
        for check in part.get("checks", []):
            note = f" ({check['note']})" if check["note"] else ""
            lines.append(f"- {check_line(check)}{note}")
        for table in part.get("details", {}).get("tables", []):
            lines += ["", *markdown_table(table["columns"], table["rows"])]
        for note in part.get("notes", []):
            lines += ["", note]
    return "\n".join(lines) + "\n"


def markdown_table(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    cells = [
        [format_value(v) if isinstance(v, float) else v for v in (row.get(c, "") for c in columns)]
        for row in rows
    ]
    return tables.markdown_table(columns, cells).split("\n")


def _loads(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) or "n/a"


def _machine_line(info: dict[str, Any]) -> str:
    if not info:
        return "unknown"
    skip = ("cpu", "cores", "python", "isa", "threads", "load_avg_1min")
    libs = ", ".join(
        f"{k} {v}" for k, v in info.items() if k not in skip and v and not isinstance(v, dict)
    )
    sets = ", ".join(name for name, present in info.get("isa", {}).items() if present) or "n/a"
    threads = info.get("threads", {})
    dispatch = threads.get("torch_cpu_capability")
    return (
        f"{info.get('cpu')}, {info.get('cores')} cores (ISA: {sets}; torch dispatch: {dispatch}; "
        f"torch threads: {threads.get('torch_threads')}; load {info.get('load_avg_1min')}), "
        f"Python {info.get('python')}; {libs}"
    )


def write_results(results: dict[str, Any], folder: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """``latest.json`` and ``latest.md`` in ``folder``, each written atomically."""
    json_path, md_path = folder / "latest.json", folder / "latest.md"
    atomic_write_text(json_path, json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_text(md_path, render_markdown(results))
    return json_path, md_path


def read_previous(folder: Path = RESULTS_DIR) -> dict[str, Any] | None:
    path = folder / "latest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise SystemExit(
            f"error: {path} is not valid JSON ({err}); delete it or run with --no-merge"
        ) from None
