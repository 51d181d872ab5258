"""Time ingestion and chunking of 10,000 small generated documents (target: <= 30 s on 2 cores).

    .venv/bin/python bench/ingest_bench.py [--documents 10000] [--tokenizer tiny|minilm|none]

Writes a mixed folder (a quarter each of .txt, .md and .html files, and JSON Lines rows in files
of 500) into a temporary directory, then times ``load_user_corpus`` and ``chunk_corpus`` with
every strategy, and the offline cloze QA synthesis on the sentence chunks. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.corpus.chunking import STRATEGIES, chunk_corpus  # noqa: E402
from rag.corpus.ingest import load_user_corpus  # noqa: E402
from rag.qa.synthesis import synthesize_qa  # noqa: E402

ROWS_PER_JSONL = 500
WORDS = (
    "harbour lighthouse ledger cargo quay tide ferry warehouse customs pier rope anchor "
    "market council bridge river mill school library archive census merchant"
).split()


def paragraph(rng: random.Random, number: int) -> str:
    """Three to six sentences, one with a year and a two-word name, as real notes would have."""
    first, family = rng.choice(["Ada", "Bram", "Cora"]), rng.choice(["Whitlock", "Marsh"])
    year = rng.randint(1800, 2020)
    sentences = [f"Archive item {number} was catalogued in {year} by {first} {family}."]
    for _ in range(rng.randint(2, 5)):
        words = rng.choices(WORDS, k=rng.randint(8, 18))
        sentences.append(f"{' '.join(words).capitalize()}.")
    return " ".join(sentences)


def write_corpus(root: Path, documents: int, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    quarter = documents // 4
    rows = documents - 3 * quarter
    for i in range(quarter):
        (root / "txt").mkdir(exist_ok=True)
        (root / "txt" / f"note-{i:05d}.txt").write_text(paragraph(rng, i), encoding="utf-8")
        (root / "md").mkdir(exist_ok=True)
        (root / "md" / f"page-{i:05d}.md").write_text(
            f"# Page {i}\n\n{paragraph(rng, i)}\n\n## Details\n\n{paragraph(rng, i)}\n",
            encoding="utf-8",
        )
        (root / "html").mkdir(exist_ok=True)
        (root / "html" / f"doc-{i:05d}.html").write_text(
            f"<html><head><title>Doc {i}</title><script>track()</script></head><body>"
            f"<h1>Doc {i}</h1><p>{paragraph(rng, i)}</p></body></html>",
            encoding="utf-8",
        )
    (root / "rows").mkdir(exist_ok=True)
    for start in range(0, rows, ROWS_PER_JSONL):
        lines = [
            json.dumps({"id": f"row-{n}", "text": paragraph(rng, n)})
            for n in range(start, min(start + ROWS_PER_JSONL, rows))
        ]
        (root / "rows" / f"part-{start:05d}.jsonl").write_text("\n".join(lines), encoding="utf-8")
    return {"txt": quarter, "md": quarter, "html": quarter, "jsonl_rows": rows}


def load_tokenizer(name: str):
    if name == "none":
        return None
    if name == "tiny":
        from rag.core.tiny import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    from rag.core.models import resolve_embedder

    return AutoTokenizer.from_pretrained(resolve_embedder("all-minilm-l6-v2"))


def run_ingest(
    documents: int = 10_000, tokenizer_name: str = "minilm", size: int = 128, overlap: int = 16
) -> dict:
    """Write the corpus, then time ingestion, every chunking strategy and cloze synthesis."""
    tokenizer = load_tokenizer(tokenizer_name)
    result: dict = {"documents_asked": documents, "tokenizer": tokenizer_name}
    with tempfile.TemporaryDirectory(prefix="ragtune-ingest-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        result["written"] = write_corpus(root, documents)
        result["write_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        loaded, report = load_user_corpus(root, id_column="id")
        result["ingest_s"] = round(time.perf_counter() - started, 2)
    result["documents"] = report.documents
    result["words"] = report.words
    result["by_format"] = report.documents_by_format
    result["skipped"] = len(report.skipped)
    result["chunking"] = {}
    for strategy in STRATEGIES:
        if strategy == "tokens" and tokenizer is None:
            continue
        started = time.perf_counter()
        chunks = chunk_corpus(loaded, strategy, size, overlap, tokenizer=tokenizer)
        result["chunking"][strategy] = {
            "chunks": len(chunks),
            "seconds": round(time.perf_counter() - started, 2),
        }
        if strategy == "sentences":
            started = time.perf_counter()
            pairs, stats = synthesize_qa(chunks, "cloze", max_per_chunk=2)
            result["cloze"] = {
                "pairs": len(pairs),
                "seconds": round(time.perf_counter() - started, 2),
            }
    result["ingest_plus_slowest_chunking_s"] = round(
        result["ingest_s"] + max(c["seconds"] for c in result["chunking"].values()), 2
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--tokenizer", default="minilm", choices=["minilm", "tiny", "none"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=16)
    args = parser.parse_args()
    result = run_ingest(args.documents, args.tokenizer, args.size, args.overlap)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
