"""Kill -9 during ingestion, embedding and the index write, then run again: the re-run completes,
trusts nothing half-built, and scores exactly like an uninterrupted run (greedy decoding, same
seed). Training is covered by tests/finetune/test_finetune_resume.py.

The process is stopped at a named point by the test hook in rag/core/pause.py, then SIGKILLed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import cache_with_tiny_model, finish, kill_at_pause, start_ragtune

pytestmark = pytest.mark.integration

BYOC = Path(__file__).parents[1] / "data" / "byoc"
OVERRIDES = [
    "experiment=smoke",
    "corpus=files",
    f"corpus.paths=[{BYOC / 'docs'}]",
    "qa=file",
    f"qa.path={BYOC / 'questions.jsonl'}",
    "qa.eval_fraction=0.5",
    "eval.arms=[rag]",
    "tracking=none",
    "eval.throughput_batch_size=0",
    "eval.semantic_similarity=false",
    "eval.warmup_requests=0",
]


def _run(cwd: Path, cache: Path, run_dir: str, pause_at: str | None = None):
    return start_ragtune(
        cwd, *OVERRIDES, f"hydra.run.dir={run_dir}", cache=cache, pause_at=pause_at
    )


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob(".*") if ".tmp-" in p.name)


def _entries(cache: Path, kind: str) -> list[str]:
    folder = cache / kind
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scores(results: dict) -> dict:
    """What must not depend on an interruption: accuracy, answers and retrieved chunks."""
    return {
        "accuracy": results["arms"]["rag"]["accuracy"],
        "answers": [
            (p["qa_id"], p["prediction"], p["retrieved_chunk_ids"]) for p in results["predictions"]
        ],
        "index_key": results["stages"]["index"]["key"],
        "index_vectors": results["stages"]["index"]["vectors"],
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir) -> dict:
    cwd = tmp_path_factory.mktemp("uninterrupted")
    cache = cache_with_tiny_model(cwd / "cache", tiny_model_dir)
    finish(_run(cwd, cache, "out"))
    return json.loads((cwd / "out" / "results.json").read_text())


# ingest: after the first corpus file is read; embed: inside the index build and its nested
# embeddings build; index: between index.faiss and the manifest of the entry.
@pytest.mark.parametrize("point", ["ingest", "embed", "index"])
def test_killed_run_resumes_to_the_same_scores(point, uninterrupted, tmp_path, tiny_model_dir):
    cache = cache_with_tiny_model(tmp_path / "cache", tiny_model_dir)
    kill_at_pause(_run(tmp_path, cache, "killed", pause_at=point), tmp_path, point)
    assert not (tmp_path / "killed" / "results.json").exists()
    if point == "ingest":
        assert not (cache / "indexes").exists()
    else:  # killed inside a build: a hidden temp folder, never a finished-looking entry
        assert _leftovers(cache), "the kill did not land inside a build"
        assert _entries(cache, "indexes") == []

    output = finish(_run(tmp_path, cache, "resumed"))
    resumed = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert _scores(resumed) == _scores(uninterrupted)
    assert resumed["stages"]["index"]["reused"] is False  # rebuilt, not trusted half-written
    assert _leftovers(cache) == []  # the re-run removed what the killed build left
    assert len(_entries(cache, "indexes")) == len(_entries(cache, "embeddings")) == 1
    assert "Traceback" not in output
