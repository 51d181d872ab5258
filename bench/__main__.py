"""Run the benchmark suite and write bench/results/latest.json and latest.md.

    .venv/bin/python -m bench                      # everything at full size (about an hour)
    .venv/bin/python -m bench --quick              # a few-minute smoke of every part
    .venv/bin/python -m bench --only overhead,roofline
    .venv/bin/python -m bench --only index --index-n 100000
    .venv/bin/python -m bench --only bigfile --bigfile-mb 200

Parts: e2e (default experiment cold, then warm), overhead (ours vs the bare library per stage),
roofline (decode vs memory bandwidth, with a torch.profiler breakdown), compute (FP32 matmul
peak, LoRA step's share of it), index (FAISS scaling), ingest (documents per second),
embed_processes (embedding 100k chunks with one process and with a pool of 2: the speed-up),
bigfile (peak memory of a run on one large text file; --bigfile-mb 200 for the 200 MB case),
setup (`make setup` in a fresh clone of the committed HEAD).
Parts not selected keep their previous numbers in latest.json (each part says when it was
measured); --no-merge starts the files afresh.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

from bench.parts import PARTS, Settings, run_part  # noqa: E402
from bench.report import (  # noqa: E402
    RESULTS_DIR,
    machine,
    merge_results,
    read_previous,
    render_markdown,
    write_results,
)

# Which settings each part uses (recorded with its numbers).
PART_SETTINGS = {
    "e2e": ("experiment",),
    "overhead": (
        "encode_texts",
        "search_sizes",
        "generate_tokens",
        "repeats",
        "lora_seq_len",
        "lora_steps_per_block",
        "lora_blocks",
    ),
    "roofline": ("bandwidth_bytes", "generate_tokens", "repeats"),
    "compute": ("repeats", "lora_seq_len", "lora_steps_per_block", "lora_blocks"),
    "index": ("index_n", "index_clusters", "index_ef_construction"),
    "ingest": ("ingest_documents",),
    "embed_processes": ("embed_chunks",),
    "bigfile": ("bigfile_mb",),
    "setup": (),
}


def parse_parts(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        what = f"unknown part {unknown[0]!r}" if unknown else "no part named"
        raise argparse.ArgumentTypeError(f"{what}; choose from {','.join(PARTS)}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0], epilog=", ".join(PARTS)
    )
    p.add_argument(
        "--only",
        type=parse_parts,
        default=list(PARTS),
        help=f"comma-separated parts to run, of: {','.join(PARTS)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and experiment=smoke: checks every part works in a few minutes",
    )
    p.add_argument(
        "--index-n", type=int, default=None, help="vectors in the index part (default 1,000,000)"
    )
    p.add_argument(
        "--index-clusters",
        type=int,
        default=1000,
        help="index part: C > 0 = C Gaussian clusters (default 1000, closer to real embeddings), "
        "0 = isotropic random vectors (approximate search's worst case)",
    )
    p.add_argument(
        "--index-ef-construction",
        type=int,
        default=128,
        help="index part: HNSW build breadth (retriever.ef_construction; FAISS's default is 40)",
    )
    p.add_argument(
        "--bigfile-mb",
        type=float,
        default=None,
        help="bigfile part: MB of the single text file (default 20, --quick 2; 200 reproduces "
        "the large-file case)",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where latest.* go")
    p.add_argument("--no-merge", action="store_true", help="drop parts not run from latest.*")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.index_n is not None and args.index_n < 1000:
        parser().error(f"--index-n must be >= 1000 (IVF trains on them), got {args.index_n}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings.quick_run() if args.quick else Settings.full()
    if args.index_n is not None:
        settings = replace(settings, index_n=args.index_n)
    if args.bigfile_mb is not None:
        if args.bigfile_mb <= 0:
            parser().error(f"--bigfile-mb must be > 0, got {args.bigfile_mb}")
        settings = replace(settings, bigfile_mb=args.bigfile_mb)
    if args.index_clusters < 0:
        parser().error(f"--index-clusters must be >= 0, got {args.index_clusters}")
    if args.index_ef_construction < 1:
        parser().error(f"--index-ef-construction must be >= 1, got {args.index_ef_construction}")
    settings = replace(
        settings,
        index_clusters=args.index_clusters,
        index_ef_construction=args.index_ef_construction,
    )
    values = asdict(settings)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    parts = {}
    for name in args.only:
        part_settings = {"quick": settings.quick, **{k: values[k] for k in PART_SETTINGS[name]}}
        measure = PARTS[name]
        part = run_part(name, lambda p, m=measure: m(p, settings), part_settings)
        # each part names its machine: merged results keep parts measured on other runs
        parts[name] = {"command": command.strip(), "machine": machine(), **part.to_dict()}
    run = {
        "command": command.strip(),
        "machine": machine(),
        "parts": parts,
    }
    previous = None if args.no_merge else read_previous(args.results_dir)
    results = merge_results(previous, run)
    json_path, md_path = write_results(results, args.results_dir)
    print(render_markdown(results))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if any(p.get("error") for p in parts.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
