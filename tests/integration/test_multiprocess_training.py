"""Two data-parallel CPU processes (DDP over gloo) through ``accelerate launch`` on the smoke
experiment: both processes train one adapter, only rank 0 evaluates and records, and the loss
curve matches a single-process run with the same global batch.

``accelerate launch --num_processes 2 --cpu`` starts a single process in accelerate 1.15 (with
``--cpu`` it leaves starting more to ``mpirun``, ``--mpirun_hostfile``); ``--multi_gpu`` starts
the processes with torch's elastic launcher, and on a machine without CUDA they train on the
CPU over gloo. The README gives both lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.services import free_port

pytestmark = pytest.mark.integration

# Packed documents (every sequence exactly finetune.max_length tokens) and no dropout: the mean
# loss of two shards of 2 sequences is then the mean over the 4 sequences, and DDP's averaged
# gradient equals the 4-sequence gradient, so both runs take the same steps on the same data
# (the sampler's seeded order is split across ranks batch by batch). What remains is floating-
# point summation order, orders of magnitude below this tolerance.
LOSS_REL_TOLERANCE = 1e-3
GLOBAL_BATCH = 4
TRAINING = [
    "experiment=smoke",
    "finetune.mode=cpt",
    "finetune.packing=true",
    "finetune.dropout=0.0",
    "finetune.max_length=64",
    "finetune.max_steps=4",
    "eval.throughput_batch_size=0",
    "qa.max_eval_questions=2",
]
RUN_TIMEOUT_S = 900


def run(command: list[str], cwd: Path, cache: Path, name: str) -> dict:
    env = {
        **os.environ,
        "RAGTUNE_CACHE_DIR": str(cache),
        "OMP_NUM_THREADS": "1",  # two processes on two cores
    }
    env.pop("RAGTUNE_PARENT_RUN_ID", None)
    proc = subprocess.run(
        [*command, f"hydra.run.dir=out/{name}", f"tracking.uri=sqlite:///{cwd / name}.db"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    if proc.returncode != 0 and "gloo" in proc.stderr.lower() and "unsupported" in proc.stderr:
        pytest.skip("torch.distributed (gloo) is unavailable here")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((cwd / "out" / name / "results.json").read_text())


def model_cache(tmp_path: Path, name: str, tiny_model_dir: str) -> Path:
    """A cache of its own per run (no shared adapter), with the tiny model linked in."""
    cache = tmp_path / f"cache-{name}"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    return cache


def test_two_cpu_processes_train_like_one_with_the_same_global_batch(tmp_path, tiny_model_dir):
    from mlflow.tracking import MlflowClient

    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(free_port()), "-m", "evaluate.cli"]
    ddp = run(
        [*launch, *TRAINING, f"finetune.batch_size={GLOBAL_BATCH // 2}"],
        tmp_path,
        model_cache(tmp_path, "ddp", tiny_model_dir),
        "ddp",
    )
    single = run(
        [sys.executable, "-m", "evaluate.cli", *TRAINING, f"finetune.batch_size={GLOBAL_BATCH}"],
        tmp_path,
        model_cache(tmp_path, "single", tiny_model_dir),
        "single",
    )

    trained, alone = ddp["stages"]["finetune"], single["stages"]["finetune"]
    assert (trained["world_size"], alone["world_size"]) == (2, 1)
    assert trained["steps"] == alone["steps"] == 4
    steps = [step for step, _ in trained["loss_curve"]]
    assert steps == [step for step, _ in alone["loss_curve"]] == [1, 2, 3, 4]
    curves = zip(trained["loss_curve"], alone["loss_curve"], strict=True)
    for (_, loss_ddp), (_, loss_one) in curves:
        assert loss_ddp == pytest.approx(loss_one, rel=LOSS_REL_TOLERANCE)
    # The loss moved (the comparison is not between two untrained curves).
    assert trained["loss_curve"][-1][1] < trained["loss_curve"][0][1]

    # Only rank 0 evaluated and recorded: one run in MLflow, one results.json; the adapter
    # both ranks trained is the one the fine-tuned arms answered with.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'ddp'}.db")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    (recorded,) = [r for r in runs if r.data.tags.get("kind") == "job"]  # arms are nested runs
    assert recorded.info.run_id == ddp["mlflow_run_id"] and recorded.info.status == "FINISHED"
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "out").rglob("results.json"))
    assert written == [Path("out/ddp/results.json"), Path("out/single/results.json")]
    for arm in ("finetune", "finetune_rag"):
        assert ddp["arms"][arm]["accuracy"]["questions"] == 2
    adapters = [p for p in (tmp_path / "cache-ddp" / "adapters").iterdir()]
    assert [p.name for p in adapters] == [Path(trained["adapter_dir"]).name]
    saved = json.loads((adapters[0] / "train_result.json").read_text())
    assert saved["world_size"] == 2
