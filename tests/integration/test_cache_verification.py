"""Cached adapters are verified on every reuse, as index entries are: a truncated or a
bit-flipped ``adapter_model.safetensors`` is found, logged and trained again, through ``ragtune``,
and the re-run's fine-tune answers equal those of the intact adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration

RUN = [
    "experiment=smoke",
    "tracking=none",
    "eval.arms=[finetune]",
    "eval.throughput_batch_size=0",
    "eval.semantic_similarity=false",
    "eval.warmup_requests=0",
    "eval.reuse_answers=false",  # answer with the cached adapter, not from the answer journal
    "qa.max_eval_questions=3",
]


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _flip_a_bit(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor's data: same size, header still valid
    file.write_bytes(bytes(data))


def _answers(folder: Path) -> list[tuple[str, str]]:
    results = json.loads((folder / "results.json").read_text())
    return [(p["qa_id"], p["prediction"]) for p in results["predictions"] if p["arm"] == "finetune"]


@pytest.mark.parametrize("damage", [_truncate, _flip_a_bit], ids=["truncated", "bit-flipped"])
def test_a_damaged_cached_adapter_is_trained_again(damage, tmp_path, tiny_model_dir):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    first = ragtune(tmp_path, *RUN, "hydra.run.dir=first", cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    (entry,) = [p for p in (cache / "adapters").iterdir() if not p.name.endswith(".lock")]
    weights = entry / "adapter_model.safetensors"
    damage(weights)

    second = ragtune(tmp_path, *RUN, "hydra.run.dir=second", cache=cache)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert f"cached adapter {entry.name} failed verification" in output, output[-3000:]
    assert "adapter_model.safetensors" in output and "training it again" in output
    assert "reusing cached adapter" not in output
    # The entry was rebuilt and verifies again; the answers match the intact adapter's.
    from rag.core.store import verify_checksums

    verify_checksums(entry)
    assert _answers(tmp_path / "second") == _answers(tmp_path / "first")
    third = ragtune(tmp_path, *RUN, "hydra.run.dir=third", cache=cache)
    assert third.returncode == 0 and "reusing cached adapter" in third.stdout + third.stderr
