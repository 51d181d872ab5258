"""FAISS indexes from ``index_factory`` strings, trained and filled from an on-disk matrix.

- ``make_index`` turns a factory string and a metric into an empty index, or a clear error.
- ``build_streaming`` trains it on a random sample of the rows (when it needs training) and adds
  the rows batch by batch, so peak memory is the index itself plus one batch (and the training
  sample), never the whole matrix a second time.
- ``apply_search_params`` sets ``nprobe`` (IVF) and ``efSearch`` (HNSW) via ParameterSpace.
- ``to_gpu`` moves a built index to every visible GPU for searching.

Training sample sizes follow the FAISS wiki ("Guidelines to choose an index"): k-means with K
centroids needs at least K points, and 30*K to 256*K are advisable; FAISS itself warns below
39*K (``ClusteringParameters.min_points_per_centroid``). A product quantizer with ``nbits``
bits trains K = 2**nbits centroids per sub-space.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rag.core.errors import UserError
from rag.retrieval.vectors import iter_rows, npy_shape, read_rows

logger = logging.getLogger(__name__)

METRICS = ("inner_product", "l2")
MIN_POINTS_PER_CENTROID = 39  # FAISS ClusteringParameters default: it warns below this
DEFAULT_POINTS_PER_CENTROID = 64  # training sample per centroid unless told otherwise
MIN_DEFAULT_TRAIN_SIZE = 10_000  # for trained indexes without k-means (SQ, OPQ): a fair sample
DEFAULT_ADD_BATCH_ROWS = 16384


class IndexSpecError(UserError, ValueError):
    """An index factory string, metric or search parameter that cannot be used."""


class IndexTrainingError(UserError, ValueError):
    """Too few vectors to train the requested index."""


def faiss_metric(metric: str) -> int:
    import faiss

    if metric not in METRICS:
        raise IndexSpecError(f"retriever.metric={metric!r} must be one of {', '.join(METRICS)}")
    return faiss.METRIC_INNER_PRODUCT if metric == "inner_product" else faiss.METRIC_L2


def make_index(
    factory: str, dim: int, metric: str = "inner_product", ef_construction: int | None = None
):
    """An empty index, or ``IndexSpecError`` naming the factory string and FAISS's reason.
    ``ef_construction`` is HNSW's build-time search breadth (FAISS default 40): larger builds a
    better graph (higher recall at the same ``efSearch``) more slowly."""
    import faiss

    code = faiss_metric(metric)
    try:
        index = faiss.index_factory(int(dim), factory, code)
    except RuntimeError as err:
        reason = _faiss_reason(err)
        raise IndexSpecError(
            f"retriever.index_factory={factory!r} is not a usable FAISS index for "
            f"{dim}-dimensional vectors with metric {metric}: {reason}. Examples: 'Flat', "
            "'HNSW32', 'IVF1024,Flat', 'IVF4096,PQ64' (PQ m must divide the dimension)."
        ) from None
    # index_factory turns on polysemous training for PQ codes (unless the string ends in "np").
    # It only serves polysemous Hamming filtering (``polysemous_ht``), which is never enabled
    # here, and it is slow: training IVF512,PQ64 on 20k vectors took 250 s with it and 55 s
    # without it on two busy cores. Search results are the same either way.
    inner = inner_index(index)
    if getattr(inner, "do_polysemous_training", False):
        inner.do_polysemous_training = False
    if ef_construction is not None:
        if int(ef_construction) < 1:
            raise IndexSpecError(f"retriever.ef_construction must be >= 1, got {ef_construction}")
        quantizer = getattr(inner, "quantizer", None)  # IVF..._HNSW32: the coarse quantizer's
        if quantizer is not None:
            quantizer = faiss.downcast_index(quantizer)
        hnsw = getattr(inner, "hnsw", None) or getattr(quantizer, "hnsw", None)
        if hnsw is None:
            logger.warning(
                "retriever.ef_construction=%s does not apply to %r (no HNSW graph); ignored",
                ef_construction,
                factory,
            )
        else:
            hnsw.efConstruction = int(ef_construction)
    return index


def _faiss_reason(err: Exception) -> str:
    """The last line of a FAISS C++ exception without its source location."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
    return text.split(": ", 1)[-1] if " at /" in text else text


def inner_index(index):
    """The innermost index (under IndexPreTransform, IDMap and refine wrappers), downcast."""
    import faiss

    index = faiss.downcast_index(index)
    for attribute in ("index", "base_index"):
        inner = getattr(index, attribute, None)
        if inner is not None and not isinstance(index, faiss.IndexIVF):
            return inner_index(inner)
    return index


def training_requirement(index) -> tuple[int, int]:
    """``(minimum, recommended)`` training vectors for an untrained index, (0, 0) if trained."""
    import faiss

    if index.is_trained:
        return 0, 0
    centroids = 1
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        centroids = max(centroids, int(ivf.nlist))
    for part in (inner_index(index), ivf):
        pq = getattr(part, "pq", None)
        if pq is not None:
            centroids = max(centroids, int(pq.ksub))
    return centroids, MIN_POINTS_PER_CENTROID * centroids


def train_sample_size(index, rows: int, train_size: int | None) -> int:
    minimum, recommended = training_requirement(index)
    if train_size is None:
        train_size = max(DEFAULT_POINTS_PER_CENTROID * minimum, MIN_DEFAULT_TRAIN_SIZE)
    return min(rows, max(train_size, minimum))


def check_trainable(index, factory: str, rows: int, warn: bool = True) -> None:
    """Raise ``IndexTrainingError`` if ``rows`` vectors cannot train the index."""
    minimum, recommended = training_requirement(index)
    if rows < minimum:
        nlist = _suggest_nlist(rows)
        smaller = f"fewer IVF lists (e.g. 'IVF{nlist},Flat'), " if nlist >= 4 else ""
        raise IndexTrainingError(
            f"retriever.index_factory={factory!r} must be trained on at least {minimum} vectors "
            f"(about {recommended} recommended, {MIN_POINTS_PER_CENTROID} per centroid) but the "
            f"corpus has only {rows}. Use {smaller}fewer PQ bits (e.g. PQ16x4), or an index "
            "that needs no training ('Flat', 'HNSW32')."
        )
    if warn and rows < recommended:
        logger.warning(
            "training %s on %d vectors, fewer than the %d recommended", factory, rows, recommended
        )


def _suggest_nlist(rows: int) -> int:
    nlist = 1
    while nlist * 2 * MIN_POINTS_PER_CENTROID <= rows:
        nlist *= 2
    return nlist


def build_streaming(
    vectors_path: Path,
    factory: str,
    metric: str = "inner_product",
    *,
    train_size: int | None = None,
    seed: int = 0,
    batch_rows: int = DEFAULT_ADD_BATCH_ROWS,
    progress: bool = True,
    stats: dict | None = None,
    ef_construction: int | None = None,
):
    """Build a CPU index over the rows of a float32 ``.npy`` file, reading it batch by batch.
    ``stats``, if given, receives ``train_vectors``, ``train_s`` and ``add_s``."""
    stats = {} if stats is None else stats
    stats.update(train_vectors=0, train_s=0.0)
    (rows, dim), _ = npy_shape(vectors_path)
    index = make_index(factory, dim, metric, ef_construction)
    started = time.perf_counter()
    if not index.is_trained:
        check_trainable(index, factory, rows)
        size = train_sample_size(index, rows, train_size)
        sample_rows = np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))
        logger.info("training %s on %d of %d vectors", factory, size, rows)
        sample = read_rows(vectors_path, sample_rows)
        try:
            index.train(sample)
        except RuntimeError as err:
            raise IndexSpecError(f"training {factory!r} failed: {_faiss_reason(err)}") from None
        del sample
        stats.update(train_vectors=size, train_s=time.perf_counter() - started)
    started = time.perf_counter()
    reserve_storage(index, rows)
    batches = tqdm(
        iter_rows(vectors_path, batch_rows),
        total=-(-rows // batch_rows),
        desc=f"adding to {factory}",
        unit="batch",
        disable=not progress,
    )
    for _, batch in batches:
        index.add(batch)
    stats["add_s"] = time.perf_counter() - started
    return index


def reserve_storage(index, rows: int) -> None:
    """Give the growable arrays of Flat / PQ / SQ codes and of the HNSW graph their final
    capacity before adding. They are std::vectors that double when full, so the old and the new
    buffer coexist at every growth: adding 200k x 384 vectors to a Flat index in batches peaked
    at 1.47x the data without this and 1.08x with it. Resizing up then down to zero keeps the
    capacity (a std::vector never shrinks on resize), and later adds fill it in place."""
    import faiss

    inner = inner_index(index)
    storage = faiss.downcast_index(inner.storage) if hasattr(inner, "storage") else inner
    if isinstance(storage, faiss.IndexFlatCodes) and storage.ntotal == 0:
        storage.codes.resize(rows * storage.code_size)
        storage.codes.resize(0)
    hnsw = getattr(inner, "hnsw", None)
    if hnsw is not None and inner.ntotal == 0:
        # level 0 holds 2M neighbours per vector, upper levels M / (M - 1) on average
        hnsw.neighbors.resize(rows * (hnsw.nb_neighbors(0) + 2))
        hnsw.neighbors.resize(0)


def apply_search_params(
    index, factory: str, nprobe: int | None = None, ef_search: int | None = None
) -> dict[str, int]:
    """Set the search-time knobs that apply to this CPU index; returns what was set. A knob the
    index does not have is logged and ignored, so one config can sweep several index types.
    Call it before ``to_gpu``: the GPU copy takes ``nprobe`` over from the CPU index."""
    import faiss

    space = faiss.ParameterSpace()
    applied: dict[str, int] = {}
    for name, key, value in (("nprobe", "nprobe", nprobe), ("efSearch", "ef_search", ef_search)):
        if value is None:
            continue
        if int(value) < 1:
            raise IndexSpecError(f"retriever.{key} must be >= 1, got {value}")
        try:
            space.set_index_parameter(index, name, int(value))
        except RuntimeError:
            logger.warning("retriever.%s=%s does not apply to %r; ignored", key, value, factory)
            continue
        applied[name] = int(value)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and nprobe is not None and nprobe > ivf.nlist:
        logger.warning("retriever.nprobe=%d exceeds the %d IVF lists", nprobe, ivf.nlist)
    return applied


def gpu_count() -> int:
    import faiss

    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def require_gpu() -> None:
    """Raise a clear error unless FAISS was built with GPU support and sees a GPU."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or gpu_count() == 0:
        raise IndexSpecError(
            "retriever.use_gpu=true but this FAISS build sees no GPU (faiss-cpu is installed, or "
            "no CUDA device is visible). Install faiss-gpu on a CUDA machine, or set "
            "retriever.use_gpu=false."
        )


def to_gpu(index, factory: str):
    """The index copied to every visible GPU (sharded), or a clear error without GPU FAISS."""
    import faiss

    require_gpu()
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as err:
        raise IndexSpecError(
            f"index {factory!r} cannot run on GPU FAISS: {_faiss_reason(err)} (plain HNSW has "
            "no GPU version); use retriever.use_gpu=false or a GPU-capable type such as IVF."
        ) from None
