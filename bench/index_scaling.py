"""Build time, peak memory, search latency and recall@10 of FAISS index types at N vectors.

    .venv/bin/python bench/index_scaling.py --n 100000
    .venv/bin/python bench/index_scaling.py            # 1,000,000 x 384: tens of minutes on 2 cores

N random vectors (standard normal, then L2-normalised; seeded) are streamed to a float32 .npy
file in batches, and each index type is built from that file in its own fresh process with
``rag.retrieval.faiss_build.build_streaming`` (train on a sample, then add batch by batch), so the
peak
resident set size (VmHWM) reported is that index type's alone: the vectors are never all
in memory except inside a Flat or HNSW index itself (1M x 384 x 4 B = 1.5 GB). ``start_rss_mb``
is the process after importing numpy and FAISS, before building.

Recall@10 is measured against the exact neighbours the Flat index returns for the same queries
(``|approx top-10 ∩ exact top-10| / 10``, averaged). Latency is batch-1 search, p50/p95 over the
queries after 10 warm-up searches. Random data has no cluster structure, the hardest case for IVF
and PQ: expect their recall on real embeddings to be higher at the same ``nprobe``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

WARMUP_QUERIES = 10
CLUSTER_SPREAD = 0.5


def default_factories(n: int, dim: int) -> list[str]:
    """Flat, HNSW32, and IVF with about 4 * sqrt(N) lists (FAISS wiki: 4*sqrt(N) to 16*sqrt(N),
    rounded to a power of two) and PQ with up to 64 sub-quantizers dividing the dimension."""
    nlist = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    m = next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if dim % m == 0)
    return ["Flat", "HNSW32", f"IVF{nlist},PQ{m}"]


def sample_vectors(rng, count: int, dim: int, centers: np.ndarray | None) -> np.ndarray:
    """Unit vectors: isotropic (no structure) or, with ``centers``, a Gaussian around a random
    center each (noise norm about CLUSTER_SPREAD against unit centers)."""
    batch = rng.standard_normal((count, dim), dtype=np.float32)
    if centers is not None:
        batch *= CLUSTER_SPREAD / math.sqrt(dim)
        batch += centers[rng.integers(len(centers), size=count)]
    return batch / np.linalg.norm(batch, axis=1, keepdims=True)


def write_vectors(path: Path, n: int, dim: int, seed: int, centers, batch_rows: int = 65536):
    from rag.retrieval.vectors import NpyWriter

    rng = np.random.default_rng(seed)
    with NpyWriter(path, n, dim) as writer:
        for start in range(0, n, batch_rows):
            writer.write(sample_vectors(rng, min(batch_rows, n - start), dim, centers))
        writer.close()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far. Linux: VmHWM, which starts afresh at
    exec, unlike ru_maxrss, which a spawned child inherits from the parent it was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(
    factory: str,
    vectors_path: str,
    queries: np.ndarray,
    k: int,
    nprobe: int,
    ef_search: int,
    train_size: int | None,
    search_threads: int,
    exact: np.ndarray | None,
    ef_sweep: tuple[int, ...] = (),
    ef_construction: int | None = None,
) -> dict:
    """Runs in a fresh process: build, time searches, compare with the exact neighbours; for
    HNSW also at every efSearch of ``ef_sweep`` (p50 and recall at each)."""
    import faiss

    from rag.retrieval.faiss_build import apply_search_params, build_streaming

    base_mb = peak_rss_mb()
    stats: dict = {}
    started = time.perf_counter()
    index = build_streaming(
        Path(vectors_path),
        factory,
        train_size=train_size,
        progress=False,
        stats=stats,
        ef_construction=ef_construction if "HNSW" in factory else None,
    )
    build_s = time.perf_counter() - started
    apply_search_params(
        index,
        factory,
        nprobe=nprobe if "IVF" in factory else None,
        ef_search=ef_search if "HNSW" in factory else None,
    )
    faiss.omp_set_num_threads(search_threads)
    latencies, found = _timed_search(index, queries, k)
    with tempfile.TemporaryDirectory() as folder:
        faiss.write_index(index, f"{folder}/index.faiss")
        index_mb = Path(f"{folder}/index.faiss").stat().st_size / 2**20
    recall = 1.0 if exact is None else _recall(found, exact, k)
    sweep = []
    if "HNSW" in factory and exact is not None:
        for ef in ef_sweep:  # efSearch is a search-time knob: the same index, wider searches
            apply_search_params(index, factory, nprobe=None, ef_search=ef)
            times, ids = _timed_search(index, queries, k)
            sweep.append(
                {
                    "ef_search": ef,
                    "search_p50_ms": round(1000 * float(np.percentile(times, 50)), 3),
                    f"recall_at_{k}": round(_recall(ids, exact, k), 4),
                }
            )
    return {
        "factory": factory,
        "build_s": round(build_s, 2),
        "train_s": round(stats["train_s"], 2),
        "train_vectors": stats["train_vectors"],
        "add_s": round(stats["add_s"], 2),
        "index_mb": round(index_mb, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "start_rss_mb": round(base_mb, 1),
        "search_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 3),
        "search_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 3),
        f"recall_at_{k}": round(recall, 4),
        "ids": found if exact is None else None,
        "ef_sweep": sweep,
    }


def _timed_search(index, queries: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    """Batch-1 search of every query after WARMUP_QUERIES untimed ones."""
    for query in queries[:WARMUP_QUERIES]:
        index.search(query[None, :], k)
    latencies, found = [], []
    for query in queries:
        began = time.perf_counter()
        _, ids = index.search(query[None, :], k)
        latencies.append(time.perf_counter() - began)
        found.append(ids[0])
    return latencies, np.stack(found)


def _recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact, strict=True)]))


def run_scaling(
    n: int,
    dim: int = 384,
    queries: int = 500,
    k: int = 10,
    nprobe: int = 16,
    ef_search: int = 64,
    train_size: int | None = None,
    factories: list[str] | None = None,
    search_threads: int = 1,
    clusters: int = 0,
    seed: int = 0,
    workdir: Path | None = None,
    log=print,
    ef_sweep: tuple[int, ...] = (),
    ef_construction: int | None = None,
) -> list[dict]:
    """One row per index type (Flat first: it gives the exact neighbours), each measured in a
    fresh process; ``log`` receives progress lines."""
    factories = factories or default_factories(n, dim)
    factories = ["Flat", *[f for f in factories if f != "Flat"]]
    centers = None
    if clusters > 0:
        centers = sample_vectors(np.random.default_rng(seed + 2), clusters, dim, None)
    probes = sample_vectors(np.random.default_rng(seed + 1), queries, dim, centers)
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        path = Path(folder) / "vectors.npy"
        started = time.perf_counter()
        write_vectors(path, n, dim, seed, centers)
        log(f"wrote {n} x {dim} vectors in {time.perf_counter() - started:.1f} s")
        exact = None
        for factory in factories:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                job = (factory, str(path), probes, k, nprobe, ef_search)
                row = pool.submit(
                    measure,
                    *job,
                    train_size,
                    search_threads,
                    exact,
                    tuple(ef_sweep),
                    ef_construction,
                ).result()
            if exact is None:
                exact = row["ids"]
            row.pop("ids")
            rows.append(row)
            log(json.dumps(row))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=384, help="all-MiniLM-L6-v2 has 384")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists visited per query")
    parser.add_argument("--ef-search", type=int, default=64, help="HNSW search breadth")
    parser.add_argument(
        "--ef-sweep",
        type=int,
        nargs="*",
        default=[],
        help="also time HNSW at these efSearch values (p50 and recall at each)",
    )
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=None,
        help="HNSW build breadth (retriever.ef_construction); default: FAISS's 40",
    )
    parser.add_argument("--train-size", type=int, default=None, help="default: 64 per centroid")
    parser.add_argument("--factories", nargs="+", default=None, help="default: see --help")
    parser.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="OpenMP threads while searching (builds use all): 1 = one query per core, as a "
        "server answering concurrent requests",
    )
    parser.add_argument(
        "--clusters", type=int, default=0, help="0: isotropic random vectors; C > 0: C clusters"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--workdir", type=Path, default=None, help="where the .npy goes")
    args = parser.parse_args()
    rows = run_scaling(
        args.n,
        args.dim,
        args.queries,
        args.k,
        args.nprobe,
        args.ef_search,
        args.train_size,
        args.factories,
        args.search_threads,
        args.clusters,
        args.seed,
        args.workdir,
        log=lambda line: print(line, flush=True),
        ef_sweep=tuple(args.ef_sweep),
        ef_construction=args.ef_construction,
    )
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), "rows": rows}, default=str))
    return 0


def print_table(rows: list[dict], args) -> None:
    print(
        f"\nN={args.n:,} dim={args.dim} queries={args.queries} nprobe={args.nprobe} "
        f"efSearch={args.ef_search} search_threads={args.search_threads} "
        f"data={'isotropic' if args.clusters == 0 else f'{args.clusters} clusters'}"
    )
    columns = [c for c in rows[0] if c not in ("train_vectors", "ef_sweep")]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[c]).rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        for point in row.get("ef_sweep", []):
            print(f"{row['factory']} " + "  ".join(f"{k}={v}" for k, v in point.items()))


if __name__ == "__main__":
    raise SystemExit(main())
